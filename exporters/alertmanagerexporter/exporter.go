package alertmanagerexporter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/vigilhq/vigil/exporters/alertmanagerexporter/internal/metadata"
	"github.com/vigilhq/vigil/internal/alertevent"
)

// alertsPath is Alertmanager's API v2 endpoint for posting alerts.
const alertsPath = "/api/v2/alerts"

// amExporter keeps the current alert set from the red-flag connector's alert
// events and pushes it to every configured Alertmanager. Two goroutines: the
// scheduler turns the set into due alerts (first sends, resends) and queues
// them; the sender posts queued alerts in batches to every Alertmanager in
// parallel. Each dns+ or dnssrv+ URL has a third, which looks its name up
// (dns.go). ConsumeLogs never blocks on the network.
type amExporter struct {
	cfg       *Config
	logger    *zap.Logger
	tel       *metadata.TelemetryBuilder
	settings  component.TelemetrySettings
	userAgent string

	mu     sync.Mutex
	alerts *alertSet

	q        *queue
	wake     chan struct{} // one slot: the alert set changed
	client   *http.Client
	dests    []*destination
	resolver resolver
	host     component.Host // set at start: the extensions of the clients built per address
	pass     string         // basic auth password, resolved at start

	lifecycle     sync.Mutex
	started       bool
	stopped       bool
	stop          chan struct{}
	shutdownCtx   context.Context // set before stop is closed; bounds the drain
	cancelLookups context.CancelFunc
	done          sync.WaitGroup

	lastRecordLog time.Time // guarded by mu

	exporterAttr attribute.KeyValue // the component ID, on every measurement
}

// destination is one URL of endpoint or endpoints: a plain URL is one
// target, a dns+ or dnssrv+ URL one target per address its name resolves to.
// Its targets share its metric attributes, the configured URL, so the series
// stay bounded while pod IPs come and go.
type destination struct {
	name     string // the configured URL without credentials
	attrs    metric.MeasurementOption
	okAttrs  metric.MeasurementOption
	errAttrs metric.MeasurementOption

	fixed *target  // a plain URL
	dns   *dnsName // a dns+ or dnssrv+ URL

	// The sender's view of dns: targets built for the address set snap, by
	// address, kept across refreshes for their failure state. Sender
	// goroutine only.
	snap    *[]address
	targets []*target
	byAddr  map[address]*target
	noAddr  flapLog
}

// target is one Alertmanager address. Only the sender goroutine touches it.
type target struct {
	postURL string
	name    string       // URL posted to, without credentials: logs
	client  *http.Client // nil: the exporter's
	err     error        // its client could not be built; every send fails with it
	log     flapLog
}

func newExporter(set exporter.Settings, cfg *Config) (*amExporter, error) {
	e := &amExporter{
		cfg:       cfg,
		logger:    set.Logger,
		settings:  set.TelemetrySettings,
		userAgent: "vigil/" + set.BuildInfo.Version,
		alerts:    newAlertSet(cfg),
		q:         newQueue(cfg.QueueSize),
		wake:      make(chan struct{}, 1),
		stop:      make(chan struct{}),

		exporterAttr: attribute.String("exporter", set.ID.String()),
	}
	if set.BuildInfo.Version == "" {
		e.userAgent = "vigil"
	}
	e.resolver = net.DefaultResolver
	for _, raw := range cfg.alertmanagers() {
		kind, u, err := parseAlertmanagerURL(raw)
		if err != nil {
			return nil, fmt.Errorf("cannot parse alertmanager URL %q: %w", raw, err)
		}
		name := *u
		name.User = nil
		nameStr := name.String()
		if kind != lookupNone {
			nameStr = string(kind) + "+" + nameStr
		}
		am := attribute.String("alertmanager", nameStr)
		d := &destination{
			name:     nameStr,
			attrs:    metric.WithAttributeSet(attribute.NewSet(e.exporterAttr, am)),
			okAttrs:  metric.WithAttributeSet(attribute.NewSet(e.exporterAttr, am, attribute.String("outcome", "ok"))),
			errAttrs: metric.WithAttributeSet(attribute.NewSet(e.exporterAttr, am, attribute.String("outcome", "error"))),
		}
		if kind == lookupNone {
			d.fixed = &target{postURL: postURL(*u), name: nameStr}
		} else {
			d.dns = newDNSName(kind, u, nameStr)
		}
		e.dests = append(e.dests, d)
	}
	tel, err := newTelemetry(set.TelemetrySettings, e)
	if err != nil {
		return nil, err
	}
	e.tel = tel
	return e, nil
}

func (e *amExporter) start(ctx context.Context, host component.Host) error {
	client, err := e.cfg.ClientConfig.ToClient(ctx, host.GetExtensions(), e.settings)
	if err != nil {
		return fmt.Errorf("cannot create the HTTP client for Alertmanager: %w", err)
	}
	if b := e.cfg.BasicAuth; b != nil {
		e.pass = string(b.Password)
		if b.PasswordFile != "" {
			raw, err := os.ReadFile(b.PasswordFile)
			if err != nil {
				return fmt.Errorf("cannot read basic_auth::password_file: %w", err)
			}
			e.pass = strings.TrimRight(string(raw), "\r\n")
		}
	}
	e.lifecycle.Lock()
	defer e.lifecycle.Unlock()
	if e.started || e.stopped {
		return nil
	}
	e.client = client
	e.host = host
	e.started = true
	lookups, cancel := context.WithCancel(context.Background())
	e.cancelLookups = cancel
	e.done.Add(2)
	go e.schedule()
	go e.send()
	for _, d := range e.dests {
		if d.dns != nil {
			e.done.Add(1)
			go e.refreshLoop(lookups, d)
		}
	}
	return nil
}

// postURL returns the alerts endpoint under an Alertmanager's base URL.
func postURL(u url.URL) string {
	u.Path = strings.TrimSuffix(u.Path, "/") + alertsPath
	u.RawPath = ""
	return u.String()
}

// shutdown stops scheduling, sends what is still queued while ctx allows
// (each call bounded by timeout), and counts the rest as dropped. It is
// idempotent and safe without start.
func (e *amExporter) shutdown(ctx context.Context) error {
	e.lifecycle.Lock()
	if e.stopped {
		e.lifecycle.Unlock()
		return nil
	}
	e.stopped = true
	started := e.started
	e.shutdownCtx = ctx
	e.lifecycle.Unlock()
	if started {
		e.cancelLookups()
		close(e.stop)
		e.done.Wait()
		// The clients built per address (https names) end with the targets.
		for _, d := range e.dests {
			for _, t := range d.byAddr {
				if t.client != nil {
					t.client.CloseIdleConnections()
				}
			}
		}
	}
	e.tel.Shutdown()
	return nil
}

// consumeLogs applies the alert events among the records; other records are
// counted and skipped. It never fails: a bad event must not stall the
// pipeline, and alert state is re-sent anyway.
func (e *amExporter) consumeLogs(ctx context.Context, ld plog.Logs) error {
	var notAlert, malformed int64
	var lastErr error
	drops := map[outcome]int64{}
	changed := false
	e.mu.Lock()
	for _, rl := range ld.ResourceLogs().All() {
		for _, sl := range rl.ScopeLogs().All() {
			for _, lr := range sl.LogRecords().All() {
				ev, err := alertevent.FromRecord(lr)
				switch {
				case errors.Is(err, alertevent.ErrNotAlert):
					notAlert++
					continue
				case err != nil:
					malformed++
					lastErr = err
					continue
				}
				if o := e.alerts.apply(&ev); o != applied {
					drops[o]++
					continue
				}
				changed = true
			}
		}
	}
	logBad := (malformed > 0 || len(drops) > 0) && time.Since(e.lastRecordLog) >= time.Minute
	if logBad {
		e.lastRecordLog = time.Now()
	}
	e.mu.Unlock()

	if notAlert > 0 {
		e.tel.ExporterAlertmanagerRecordsIgnored.Add(ctx, notAlert, metric.WithAttributes(e.exporterAttr, attribute.String("reason", "not_alert")))
	}
	if malformed > 0 {
		e.tel.ExporterAlertmanagerRecordsIgnored.Add(ctx, malformed, metric.WithAttributes(e.exporterAttr, attribute.String("reason", "malformed")))
	}
	for o, n := range drops {
		e.tel.ExporterAlertmanagerAlertsDropped.Add(ctx, n, metric.WithAttributes(e.exporterAttr, attribute.String("reason", string(o))))
	}
	if logBad {
		e.logger.Warn("alert events not applied (logged at most once a minute; see otelcol_exporter_alertmanager_records_ignored and _alerts_dropped)",
			zap.Int64("malformed", malformed), zap.Any("dropped", drops), zap.Error(lastErr))
	}
	if changed {
		select {
		case e.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

// schedule queues the alerts that are due, then sleeps until the next one is
// or the set changes.
func (e *amExporter) schedule() {
	defer e.done.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var buf []postableAlert
	for {
		now := time.Now()
		e.mu.Lock()
		buf = e.alerts.due(now, buf[:0])
		next := e.alerts.next(now)
		e.mu.Unlock()
		if n := e.q.push(buf); n > 0 {
			e.tel.ExporterAlertmanagerAlertsDropped.Add(context.Background(), int64(n), metric.WithAttributes(e.exporterAttr, attribute.String("reason", "queue_full")))
		}
		clear(buf)
		wait := time.Hour
		if !next.IsZero() {
			wait = max(next.Sub(now), 10*time.Millisecond)
		}
		timer.Reset(wait)
		select {
		case <-e.stop:
			return
		default:
		}
		select {
		case <-e.stop:
			return
		case <-e.wake:
		case <-timer.C:
		}
	}
}

// send posts queued alerts in batches of at most max_batch_size.
func (e *amExporter) send() {
	defer e.done.Done()
	for {
		select {
		case <-e.stop:
			e.drain()
			return
		case <-e.q.more:
		}
		for {
			select {
			case <-e.stop:
				e.drain()
				return
			default:
			}
			batch := e.q.pop(e.cfg.MaxBatchSize)
			if len(batch) == 0 {
				break
			}
			e.post(context.Background(), batch)
		}
	}
}

// drain sends what is left in the queue while the shutdown context allows.
func (e *amExporter) drain() {
	ctx := e.shutdownCtx
	for ctx.Err() == nil {
		batch := e.q.pop(e.cfg.MaxBatchSize)
		if len(batch) == 0 {
			return
		}
		e.post(ctx, batch)
	}
	if left := e.q.pop(e.cfg.QueueSize); len(left) > 0 {
		e.tel.ExporterAlertmanagerAlertsDropped.Add(context.Background(), int64(len(left)), metric.WithAttributes(e.exporterAttr, attribute.String("reason", "shutdown")))
	}
}

// post sends one batch to every Alertmanager in parallel and waits for all.
// A failed request is not retried: the alert set re-sends every alert within
// resend_delay, and endsAt outlives four of those.
func (e *amExporter) post(ctx context.Context, batch []postableAlert) {
	body, err := json.Marshal(batch)
	if err != nil { // string maps and times always encode; keep the guard honest
		e.logger.Error("cannot encode alerts", zap.Error(err))
		return
	}
	var wg sync.WaitGroup
	for _, d := range e.dests {
		wg.Go(func() { e.postToDestination(ctx, d, body, len(batch)) })
	}
	wg.Wait()
}

// postToDestination sends a batch to each of d's targets in parallel. A
// dns+ or dnssrv+ name without any address yet fails the send, counted as
// any failed request is.
func (e *amExporter) postToDestination(ctx context.Context, d *destination, body []byte, n int) {
	if d.fixed != nil {
		e.postTo(ctx, d, d.fixed, body, n)
		return
	}
	// The name's first lookup runs at start, bounded by timeout; wait for it
	// rather than fail the alerts that were due at once.
	select {
	case <-d.dns.first:
	case <-ctx.Done():
	}
	targets := e.targetsOf(d)
	if len(targets) == 0 {
		e.tel.ExporterAlertmanagerAlertsFailed.Add(context.Background(), int64(n), d.attrs)
		if d.noAddr.fail(time.Now()) {
			e.logger.Warn("cannot send alerts to Alertmanager: its name has no address yet; they are sent again within resend_delay (logged at most once a minute; see otelcol_exporter_alertmanager_dns_failures)",
				zap.String("alertmanager", d.name), zap.Int("alerts", n))
		}
		return
	}
	d.noAddr.ok()
	var wg sync.WaitGroup
	for _, t := range targets {
		wg.Go(func() { e.postTo(ctx, d, t, body, n) })
	}
	wg.Wait()
}

// targetsOf returns a target per address d's name resolves to now, keeping
// the targets of addresses it already had.
func (e *amExporter) targetsOf(d *destination) []*target {
	snap := d.dns.addrs.Load()
	if snap == d.snap {
		return d.targets // the set published last time: every send but the first after a change
	}
	byAddr := make(map[address]*target, len(*snap))
	targets := make([]*target, 0, len(*snap))
	for _, a := range *snap {
		t := d.byAddr[a]
		if t == nil {
			t = e.newAddressTarget(d, a)
		}
		byAddr[a] = t
		targets = append(targets, t)
	}
	for a, t := range d.byAddr {
		if byAddr[a] == nil && t.client != nil {
			t.client.CloseIdleConnections()
		}
	}
	d.snap, d.targets, d.byAddr = snap, targets, byAddr
	return targets
}

// newAddressTarget builds the target of one address of d's name: its URL
// with the address for host, so the dial goes there. Over https, TLS
// verifies the name the address was found under (the URL's host, or the SRV
// record's target) unless tls::server_name_override sets one; that takes a
// client of its own.
func (e *amExporter) newAddressTarget(d *destination, a address) *target {
	u := d.dns.base
	u.Host = a.hostPort
	name := u
	name.User = nil
	t := &target{postURL: postURL(u), name: name.String()}
	if u.Scheme == "https" && e.cfg.TLS.ServerName == "" {
		cc := e.cfg.ClientConfig
		cc.TLS.ServerName = a.serverName
		t.client, t.err = cc.ToClient(context.Background(), e.host.GetExtensions(), e.settings)
		if t.err != nil {
			t.err = fmt.Errorf("cannot create the HTTP client for %s: %w", a.serverName, t.err)
		}
	}
	return t
}

func (e *amExporter) postTo(ctx context.Context, d *destination, t *target, body []byte, n int) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	start := time.Now()
	err := t.err
	if err == nil {
		err = e.do(ctx, t, body)
	}
	took := time.Since(start).Seconds()
	bg := context.Background()
	fields := []zap.Field{zap.String("alertmanager", d.name)}
	if t.name != d.name {
		fields = append(fields, zap.String("address", t.name))
	}
	if err == nil {
		e.tel.ExporterAlertmanagerAlertsSent.Add(bg, int64(n), d.attrs)
		e.tel.ExporterAlertmanagerRequestDuration.Record(bg, took, d.okAttrs)
		if t.log.ok() {
			e.logger.Info("Alertmanager accepts alerts again", fields...)
		}
		return
	}
	e.tel.ExporterAlertmanagerAlertsFailed.Add(bg, int64(n), d.attrs)
	e.tel.ExporterAlertmanagerRequestDuration.Record(bg, took, d.errAttrs)
	if t.log.fail(time.Now()) {
		e.logger.Warn("cannot send alerts to Alertmanager; they are sent again within resend_delay (logged at most once a minute)",
			append(fields, zap.Int("alerts", n), zap.Error(err))...)
	}
}

// maxResponseBytes bounds how much of an Alertmanager's answer is read.
const maxResponseBytes = 64 << 10

func (e *amExporter) do(ctx context.Context, t *target, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.postURL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("cannot build the request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", e.userAgent)
	if b := e.cfg.BasicAuth; b != nil {
		req.SetBasicAuth(b.Username, e.pass)
	}
	client := e.client
	if t.client != nil {
		client = t.client
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("cannot post alerts: %w", err)
	}
	defer resp.Body.Close()
	// The status decides; the body only explains a refusal, so a body that
	// cannot be read in full does not turn a 2xx into a failure.
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	return checkResponse(resp.StatusCode, answer)
}
