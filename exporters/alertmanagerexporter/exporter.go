package alertmanagerexporter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
// parallel. ConsumeLogs never blocks on the network.
type amExporter struct {
	cfg       *Config
	logger    *zap.Logger
	tel       *metadata.TelemetryBuilder
	settings  component.TelemetrySettings
	userAgent string

	mu     sync.Mutex
	alerts *alertSet

	q      *queue
	wake   chan struct{} // one slot: the alert set changed
	client *http.Client
	ams    []*target
	pass   string // basic auth password, resolved at start

	lifecycle   sync.Mutex
	started     bool
	stopped     bool
	stop        chan struct{}
	shutdownCtx context.Context // set before stop is closed; bounds the drain
	done        sync.WaitGroup

	lastRecordLog time.Time // guarded by mu

	exporterAttr attribute.KeyValue // the component ID, on every measurement
}

// target is one Alertmanager. Only the sender goroutine touches it.
type target struct {
	postURL  string
	name     string // base URL without credentials, the metric attribute
	attrs    metric.MeasurementOption
	okAttrs  metric.MeasurementOption
	errAttrs metric.MeasurementOption
	failing  bool
	lastLog  time.Time
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
	for _, raw := range cfg.alertmanagers() {
		u, err := url.Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("cannot parse alertmanager URL %q: %w", raw, err)
		}
		name := *u
		name.User = nil
		post := *u
		post.Path = strings.TrimSuffix(u.Path, "/") + alertsPath
		post.RawPath = ""
		am := attribute.String("alertmanager", name.String())
		e.ams = append(e.ams, &target{
			postURL:  post.String(),
			name:     name.String(),
			attrs:    metric.WithAttributeSet(attribute.NewSet(e.exporterAttr, am)),
			okAttrs:  metric.WithAttributeSet(attribute.NewSet(e.exporterAttr, am, attribute.String("outcome", "ok"))),
			errAttrs: metric.WithAttributeSet(attribute.NewSet(e.exporterAttr, am, attribute.String("outcome", "error"))),
		})
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
	e.started = true
	e.done.Add(2)
	go e.schedule()
	go e.send()
	return nil
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
		close(e.stop)
		e.done.Wait()
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
	for _, t := range e.ams {
		wg.Go(func() { e.postTo(ctx, t, body, len(batch)) })
	}
	wg.Wait()
}

func (e *amExporter) postTo(ctx context.Context, t *target, body []byte, n int) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	start := time.Now()
	err := e.do(ctx, t, body)
	took := time.Since(start).Seconds()
	bg := context.Background()
	if err == nil {
		e.tel.ExporterAlertmanagerAlertsSent.Add(bg, int64(n), t.attrs)
		e.tel.ExporterAlertmanagerRequestDuration.Record(bg, took, t.okAttrs)
		if t.failing {
			t.failing = false
			e.logger.Info("Alertmanager accepts alerts again", zap.String("alertmanager", t.name))
		}
		return
	}
	e.tel.ExporterAlertmanagerAlertsFailed.Add(bg, int64(n), t.attrs)
	e.tel.ExporterAlertmanagerRequestDuration.Record(bg, took, t.errAttrs)
	if now := time.Now(); !t.failing || now.Sub(t.lastLog) >= time.Minute {
		t.lastLog = now
		e.logger.Warn("cannot send alerts to Alertmanager; they are sent again within resend_delay (logged at most once a minute)",
			zap.String("alertmanager", t.name), zap.Int("alerts", n), zap.Error(err))
	}
	t.failing = true
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
	resp, err := e.client.Do(req)
	if err != nil {
		return fmt.Errorf("cannot post alerts: %w", err)
	}
	defer resp.Body.Close()
	// The status decides; the body only explains a refusal, so a body that
	// cannot be read in full does not turn a 2xx into a failure.
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	return checkResponse(resp.StatusCode, answer)
}
