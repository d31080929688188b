package alertmanagerexporter

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-openapi/strfmt"
	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/bearertokenauthextension"
	"github.com/prometheus/alertmanager/api/v2/models"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configauth"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/config/configtls"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/vigilhq/vigil/exporters/alertmanagerexporter/internal/metadata"
	"github.com/vigilhq/vigil/internal/alertevent"
)

// amDouble is an Alertmanager API v2 double: it checks every request the way
// Alertmanager does (method, path, content type, the postableAlerts schema,
// label names, startsAt <= endsAt) and keeps the batches it accepted.
type amDouble struct {
	t   *testing.T
	srv *httptest.Server

	mu      sync.Mutex
	batches []models.PostableAlerts
	times   []time.Time
	headers []http.Header
	bad     []string

	status atomic.Int32  // answer with this status if non-zero (the batch is not kept)
	delay  atomic.Int64  // sleep this long (ns) before answering
	block  chan struct{} // if non-nil, wait for it (or the client to give up) before answering
	inside atomic.Int32  // requests being handled
}

func newAMDouble(t *testing.T, tlsServer bool) *amDouble {
	return newBlockingAMDouble(t, tlsServer, nil)
}

// newBlockingAMDouble answers each request only once block is closed (or the
// client gives up).
func newBlockingAMDouble(t *testing.T, tlsServer bool, block chan struct{}) *amDouble {
	d := &amDouble{t: t, block: block}
	h := http.HandlerFunc(d.serve)
	if tlsServer {
		d.srv = httptest.NewTLSServer(h)
	} else {
		d.srv = httptest.NewServer(h)
	}
	t.Cleanup(d.srv.Close)
	return d
}

func (d *amDouble) serve(w http.ResponseWriter, r *http.Request) {
	d.inside.Add(1)
	defer d.inside.Add(-1)
	// Read the body first: the server notices a client that gave up only
	// once the body is consumed.
	body, err := io.ReadAll(r.Body)
	if ch := d.block; ch != nil {
		select {
		case <-ch:
		case <-r.Context().Done():
			return
		}
	}
	if ns := d.delay.Load(); ns > 0 {
		select {
		case <-time.After(time.Duration(ns)):
		case <-r.Context().Done():
			return
		}
	}
	if s := d.status.Load(); s != 0 {
		w.WriteHeader(int(s))
		_, _ = io.WriteString(w, `"the double says no"`)
		return
	}
	fail := func(format string, args ...any) {
		d.mu.Lock()
		d.bad = append(d.bad, fmt.Sprintf(format, args...))
		d.mu.Unlock()
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(fmt.Sprintf(format, args...))
	}
	if r.Method != http.MethodPost || r.URL.Path != "/api/v2/alerts" {
		fail("%s %s", r.Method, r.URL.Path)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		fail("content type %q", ct)
		return
	}
	if err != nil {
		fail("read: %v", err)
		return
	}
	var alerts models.PostableAlerts
	if err := json.Unmarshal(body, &alerts); err != nil {
		fail("decode: %v: %s", err, body)
		return
	}
	if err := alerts.Validate(strfmt.Default); err != nil {
		fail("schema: %v: %s", err, body)
		return
	}
	for _, a := range alerts {
		if len(a.Labels) == 0 {
			fail("alert without labels")
			return
		}
		for k := range a.Labels {
			if !labelNameRe.MatchString(k) {
				fail("label name %q", k)
				return
			}
		}
		for k := range a.Annotations {
			if !labelNameRe.MatchString(k) {
				fail("annotation name %q", k)
				return
			}
		}
		if time.Time(a.EndsAt).Before(time.Time(a.StartsAt)) {
			fail("endsAt %s before startsAt %s", a.EndsAt, a.StartsAt)
			return
		}
	}
	d.mu.Lock()
	d.batches = append(d.batches, alerts)
	d.times = append(d.times, time.Now())
	d.headers = append(d.headers, r.Header.Clone())
	d.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (d *amDouble) received() ([]models.PostableAlerts, []time.Time, []http.Header) {
	d.mu.Lock()
	defer d.mu.Unlock()
	require.Empty(d.t, d.bad, "the double refused requests")
	return append([]models.PostableAlerts(nil), d.batches...), append([]time.Time(nil), d.times...), append([]http.Header(nil), d.headers...)
}

func (d *amDouble) alerts() []*models.PostableAlert {
	b, _, _ := d.received()
	var out []*models.PostableAlert
	for _, batch := range b {
		out = append(out, batch...)
	}
	return out
}

type harness struct {
	exp exporter.Logs
	tel *componenttest.Telemetry
}

func startExporter(t *testing.T, cfg *Config, host component.Host) *harness {
	t.Helper()
	require.NoError(t, cfg.Validate())
	tel := componenttest.NewTelemetry()
	set := exportertest.NewNopSettings(metadata.Type)
	set.TelemetrySettings = tel.NewTelemetrySettings()
	set.BuildInfo.Version = "test"
	set.ID = component.NewIDWithName(metadata.Type, "primary")
	exp, err := NewFactory().CreateLogs(context.Background(), set, cfg)
	require.NoError(t, err)
	if host == nil {
		host = componenttest.NewNopHost()
	}
	require.NoError(t, exp.Start(context.Background(), host))
	t.Cleanup(func() {
		require.NoError(t, exp.Shutdown(context.Background()))
		require.NoError(t, tel.Shutdown(context.Background()))
	})
	return &harness{exp: exp, tel: tel}
}

func (h *harness) consume(t *testing.T, evs ...*alertevent.Event) {
	t.Helper()
	ld := plog.NewLogs()
	sl := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty()
	for _, ev := range evs {
		ev.AppendTo(sl, time.Now())
	}
	require.NoError(t, h.exp.ConsumeLogs(context.Background(), ld))
}

// counter returns the sum of a counter's points whose attributes include attrs.
func (h *harness) counter(t *testing.T, name string, attrs map[string]string) int64 {
	t.Helper()
	m, err := h.tel.GetMetric(name)
	if err != nil {
		return 0
	}
	var n int64
next:
	for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
		for k, v := range attrs {
			if got, ok := dp.Attributes.Value(attribute.Key(k)); !ok || got.AsString() != v {
				continue next
			}
		}
		n += dp.Value
	}
	return n
}

// gauge returns the sum of an int64 gauge's points whose attributes include attrs.
func (h *harness) gauge(t *testing.T, name string, attrs map[string]string) int64 {
	t.Helper()
	m, err := h.tel.GetMetric(name)
	if err != nil {
		return -1
	}
	var n int64
next:
	for _, dp := range m.Data.(metricdata.Gauge[int64]).DataPoints {
		for k, v := range attrs {
			if got, ok := dp.Attributes.Value(attribute.Key(k)); !ok || got.AsString() != v {
				continue next
			}
		}
		n += dp.Value
	}
	return n
}

func testConfig(endpoint string) *Config {
	cfg := createDefaultConfig().(*Config)
	cfg.Endpoint = endpoint
	return cfg
}

func firing(name string, at time.Time) *alertevent.Event {
	ev := cascadeEvent(alertevent.StateFiring, at)
	ev.Labels["origin_service"] = name
	return ev
}

func TestFiringAlertReachesAlertmanager(t *testing.T) {
	am := newAMDouble(t, false)
	cfg := testConfig(am.srv.URL)
	cfg.ResendDelay = 300 * time.Millisecond
	cfg.ExternalLabels = map[string]string{"cluster": "prod-eu"}
	cfg.GeneratorURL = "http://vigil.example:8890/"
	h := startExporter(t, cfg, nil)

	firedAt := time.Now().Add(-time.Second).UTC().Truncate(time.Millisecond)
	ev := cascadeEvent(alertevent.StateFiring, firedAt)
	h.consume(t, ev, cascadeEvent(alertevent.StatePending, firedAt))

	require.Eventually(t, func() bool { _, ts, _ := am.received(); return len(ts) >= 3 }, 5*time.Second, 10*time.Millisecond,
		"sent at once, then re-sent every resend_delay")
	batches, times, headers := am.received()
	for i, b := range batches[:3] {
		require.Len(t, b, 1, "the pending alert is not sent")
		a := b[0]
		assert.Equal(t, models.LabelSet{
			"alertname": "CascadingFailure", "severity": "critical", "origin_service": "payments",
			"cascade_id": "c2ecfc05cc56", "cluster": "prod-eu",
		}, a.Labels)
		assert.Equal(t, ev.Annotations["summary"], a.Annotations["summary"])
		assert.Equal(t, ev.TraceID.String(), a.Annotations[exampleTraceAnnotation])
		assert.Equal(t, "http://vigil.example:8890/", string(a.GeneratorURL))
		assert.True(t, firedAt.Equal(time.Time(a.StartsAt)), "startsAt %s, fired %s", a.StartsAt, firedAt)
		// endsAt = send time + 4 x max(10 s evaluation, resend_delay).
		assert.WithinDuration(t, times[i].Add(40*time.Second), time.Time(a.EndsAt), 2*time.Second)
		assert.Equal(t, "vigil/test", headers[i].Get("User-Agent"))
		if i > 0 {
			gap := times[i].Sub(times[i-1])
			assert.GreaterOrEqual(t, gap, 250*time.Millisecond, "resend %d after %s", i, gap)
		}
	}
	assert.Equal(t, int64(len(batches)), h.counter(t, "otelcol_exporter_alertmanager_alerts_sent",
		map[string]string{"alertmanager": am.srv.URL, "exporter": "alertmanager/primary"}))
}

func TestResolvedAlertIsSentWithItsEndsAtThenForgotten(t *testing.T) {
	am := newAMDouble(t, false)
	cfg := testConfig(am.srv.URL)
	cfg.ResendDelay = 100 * time.Millisecond
	cfg.ResolvedRetention = 600 * time.Millisecond
	h := startExporter(t, cfg, nil)

	firedAt := time.Now().Add(-time.Minute).UTC().Truncate(time.Millisecond)
	h.consume(t, firing("payments", firedAt))
	require.Eventually(t, func() bool { return len(am.alerts()) >= 1 }, 5*time.Second, 10*time.Millisecond)

	resolvedAt := time.Now().UTC().Truncate(time.Millisecond)
	res := cascadeEvent(alertevent.StateResolved, resolvedAt)
	res.FiredAt = firedAt
	h.consume(t, res)
	resolvedSends := func() int {
		n := 0
		for _, a := range am.alerts() {
			if time.Time(a.EndsAt).Equal(resolvedAt) {
				n++
			}
		}
		return n
	}
	require.Eventually(t, func() bool { return resolvedSends() >= 3 }, 5*time.Second, 10*time.Millisecond,
		"the resolution is sent with its endsAt, and re-sent")
	// After retention (600 ms from resolvedAt) the alert is forgotten and
	// nothing more is sent.
	require.Eventually(t, func() bool {
		return time.Since(resolvedAt) > 600*time.Millisecond && h.gauge(t, "otelcol_exporter_alertmanager_alerts", map[string]string{"state": "resolved"}) == 0
	}, 5*time.Second, 10*time.Millisecond)
	time.Sleep(200 * time.Millisecond) // a send already queued may still land
	n := len(am.alerts())
	time.Sleep(500 * time.Millisecond)
	assert.Equal(t, n, len(am.alerts()), "nothing sent after resolved_retention")
	assert.LessOrEqual(t, resolvedSends(), 8)
	for _, a := range am.alerts() {
		assert.True(t, firedAt.Equal(time.Time(a.StartsAt)))
	}
}

func TestBatchesOfAtMostMaxBatchSize(t *testing.T) {
	am := newAMDouble(t, false)
	h := startExporter(t, testConfig(am.srv.URL), nil)
	evs := make([]*alertevent.Event, 600)
	for i := range evs {
		evs[i] = firing(fmt.Sprintf("svc-%03d", i), time.Now())
	}
	h.consume(t, evs...)
	require.Eventually(t, func() bool { return len(am.alerts()) == 600 }, 5*time.Second, 10*time.Millisecond)
	batches, _, _ := am.received()
	sizes := []int{}
	for _, b := range batches {
		sizes = append(sizes, len(b))
	}
	assert.Equal(t, []int{256, 256, 88}, sizes)
}

func TestFullQueueDropsTheOldest(t *testing.T) {
	release := make(chan struct{})
	am := newBlockingAMDouble(t, false, release)
	cfg := testConfig(am.srv.URL)
	cfg.QueueSize, cfg.MaxBatchSize = 10, 10
	h := startExporter(t, cfg, nil)

	h.consume(t, firing("first", time.Now()))
	require.Eventually(t, func() bool { return am.inside.Load() == 1 }, 5*time.Second, 5*time.Millisecond, "the first send is in flight")
	for i := range 25 {
		h.consume(t, firing(fmt.Sprintf("svc-%02d", i), time.Now()))
	}
	require.Eventually(t, func() bool {
		return h.counter(t, "otelcol_exporter_alertmanager_alerts_dropped", map[string]string{"reason": "queue_full"}) == 15
	}, 5*time.Second, 5*time.Millisecond)
	close(release)

	require.Eventually(t, func() bool { return len(am.alerts()) == 11 }, 5*time.Second, 10*time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	got := map[string]bool{}
	for _, a := range am.alerts() {
		got[a.Labels["origin_service"]] = true
	}
	require.Len(t, got, 11, "the one in flight and the ten the queue kept (which ten: queue_test.go)")
	assert.True(t, got["first"])
	assert.Equal(t, int64(15), h.counter(t, "otelcol_exporter_alertmanager_alerts_dropped", nil))
}

func TestEveryCallHasATimeout(t *testing.T) {
	am := newAMDouble(t, false)
	am.delay.Store(int64(5 * time.Second))
	cfg := testConfig(am.srv.URL)
	cfg.Timeout = 100 * time.Millisecond
	h := startExporter(t, cfg, nil)
	start := time.Now()
	h.consume(t, firing("payments", time.Now()))
	require.Eventually(t, func() bool {
		return h.counter(t, "otelcol_exporter_alertmanager_alerts_failed", map[string]string{"alertmanager": am.srv.URL}) == 1
	}, 3*time.Second, 5*time.Millisecond)
	assert.Less(t, time.Since(start), 2*time.Second)
	m, err := h.tel.GetMetric("otelcol_exporter_alertmanager_request_duration")
	require.NoError(t, err)
	dp := m.Data.(metricdata.Histogram[float64]).DataPoints[0]
	assert.Equal(t, uint64(1), dp.Count)
	assert.Less(t, dp.Sum, 1.0)
}

func TestEveryAlertmanagerGetsEveryBatch(t *testing.T) {
	good, bad := newAMDouble(t, false), newAMDouble(t, false)
	bad.status.Store(http.StatusInternalServerError)
	cfg := testConfig(good.srv.URL)
	cfg.Endpoints = []string{bad.srv.URL + "/"}
	h := startExporter(t, cfg, nil)
	h.consume(t, firing("payments", time.Now()), firing("inventory", time.Now()))
	require.Eventually(t, func() bool { return len(good.alerts()) == 2 }, 5*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		return h.counter(t, "otelcol_exporter_alertmanager_alerts_failed", map[string]string{"alertmanager": bad.srv.URL + "/"}) == 2
	}, 5*time.Second, 10*time.Millisecond)
	assert.Equal(t, int64(2), h.counter(t, "otelcol_exporter_alertmanager_alerts_sent", map[string]string{"alertmanager": good.srv.URL}))
	assert.Zero(t, h.counter(t, "otelcol_exporter_alertmanager_alerts_failed", map[string]string{"alertmanager": good.srv.URL}))
}

func TestAlertArrivesOnceAlertmanagerIsBack(t *testing.T) {
	am := newAMDouble(t, false)
	am.status.Store(http.StatusServiceUnavailable)
	cfg := testConfig(am.srv.URL)
	cfg.ResendDelay = 200 * time.Millisecond
	h := startExporter(t, cfg, nil)
	h.consume(t, firing("payments", time.Now()))
	require.Eventually(t, func() bool {
		return h.counter(t, "otelcol_exporter_alertmanager_alerts_failed", nil) >= 2
	}, 5*time.Second, 10*time.Millisecond, "failed sends are not retried at once, but the resend carries the alert")
	am.status.Store(0)
	require.Eventually(t, func() bool { return len(am.alerts()) >= 1 }, 5*time.Second, 10*time.Millisecond)
}

func TestBearerTokenOverTLS(t *testing.T) {
	am := newAMDouble(t, true)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: am.srv.Certificate().Raw}), 0o600))

	bf := bearertokenauthextension.NewFactory()
	bcfg := bf.CreateDefaultConfig().(*bearertokenauthextension.Config)
	bcfg.BearerToken = "s3cret"
	ext, err := bf.Create(context.Background(), extensiontest.NewNopSettings(bf.Type()), bcfg)
	require.NoError(t, err)
	require.NoError(t, ext.Start(context.Background(), componenttest.NewNopHost()))
	defer func() { require.NoError(t, ext.Shutdown(context.Background())) }()
	extID := component.NewID(bf.Type())

	cfg := testConfig(am.srv.URL)
	cfg.TLS = configtls.ClientConfig{Config: configtls.Config{CAFile: caFile}}
	cfg.Auth = configoptional.Some(configauth.Config{AuthenticatorID: extID})
	h := startExporter(t, cfg, hostWith{extID: ext})
	h.consume(t, firing("payments", time.Now()))
	require.Eventually(t, func() bool { _, ts, _ := am.received(); return len(ts) >= 1 }, 5*time.Second, 10*time.Millisecond)
	_, _, headers := am.received()
	assert.Equal(t, "Bearer s3cret", headers[0].Get("Authorization"))
}

func TestBasicAuthFromAFile(t *testing.T) {
	am := newAMDouble(t, false)
	pw := filepath.Join(t.TempDir(), "password")
	require.NoError(t, os.WriteFile(pw, []byte("hunter2\n"), 0o600))
	cfg := testConfig(am.srv.URL)
	cfg.BasicAuth = &BasicAuthConfig{Username: "vigil", PasswordFile: pw}
	h := startExporter(t, cfg, nil)
	h.consume(t, firing("payments", time.Now()))
	require.Eventually(t, func() bool { _, ts, _ := am.received(); return len(ts) >= 1 }, 5*time.Second, 10*time.Millisecond)
	_, _, headers := am.received()
	r := http.Request{Header: headers[0]}
	user, pass, ok := r.BasicAuth()
	require.True(t, ok)
	assert.Equal(t, [2]string{"vigil", "hunter2"}, [2]string{user, pass})
}

func TestOtherRecordsAreCountedNotSent(t *testing.T) {
	am := newAMDouble(t, false)
	h := startExporter(t, testConfig(am.srv.URL), nil)
	ld := plog.NewLogs()
	sl := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty()
	sl.LogRecords().AppendEmpty().Body().SetStr("just a log line")
	bad := sl.LogRecords().AppendEmpty()
	bad.SetEventName(alertevent.EventName)
	bad.Attributes().PutStr(alertevent.AttrState, "exploded")
	badLabels := cascadeEvent(alertevent.StateFiring, time.Now())
	badLabels.Labels["k8s.pod.name"] = "x"
	badLabels.AppendTo(sl, time.Now())
	firing("payments", time.Now()).AppendTo(sl, time.Now())
	require.NoError(t, h.exp.ConsumeLogs(context.Background(), ld))

	require.Eventually(t, func() bool { return len(am.alerts()) == 1 }, 5*time.Second, 10*time.Millisecond,
		"the good alert goes out; the bad one does not fail its batch")
	assert.Equal(t, int64(1), h.counter(t, "otelcol_exporter_alertmanager_records_ignored", map[string]string{"reason": "not_alert"}))
	assert.Equal(t, int64(1), h.counter(t, "otelcol_exporter_alertmanager_records_ignored", map[string]string{"reason": "malformed"}))
	assert.Equal(t, int64(1), h.counter(t, "otelcol_exporter_alertmanager_alerts_dropped", map[string]string{"reason": "invalid_labels"}))
}

func TestShutdownDrainsAndIsIdempotent(t *testing.T) {
	am := newAMDouble(t, false)
	am.delay.Store(int64(50 * time.Millisecond))
	cfg := testConfig(am.srv.URL)
	cfg.MaxBatchSize = 1
	tel := componenttest.NewTelemetry()
	set := exportertest.NewNopSettings(metadata.Type)
	set.TelemetrySettings = tel.NewTelemetrySettings()
	exp, err := NewFactory().CreateLogs(context.Background(), set, cfg)
	require.NoError(t, err)
	require.NoError(t, exp.Start(context.Background(), componenttest.NewNopHost()))
	h := &harness{exp: exp, tel: tel}
	h.consume(t, firing("a", time.Now()), firing("b", time.Now()), firing("c", time.Now()))
	require.Eventually(t, func() bool { return am.inside.Load() == 1 }, 5*time.Second, time.Millisecond)
	require.NoError(t, exp.Shutdown(context.Background()))
	assert.Len(t, am.alerts(), 3, "queued alerts are sent at shutdown")
	require.NoError(t, exp.Shutdown(context.Background()))
	require.NoError(t, tel.Shutdown(context.Background()))

	// Shutdown without Start.
	exp, err = NewFactory().CreateLogs(context.Background(), exportertest.NewNopSettings(metadata.Type), cfg)
	require.NoError(t, err)
	require.NoError(t, exp.Shutdown(context.Background()))
}

// hostWith is a component.Host with the given extensions.
type hostWith map[component.ID]component.Component

func (h hostWith) GetExtensions() map[component.ID]component.Component { return h }
