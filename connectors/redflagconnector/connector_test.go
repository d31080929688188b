package redflagconnector

import (
	"context"
	"io"
	"maps"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/open-telemetry/opentelemetry-collector-contrib/exporter/prometheusexporter"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/connector/connectortest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigilhq/vigil/connectors/redflagconnector/internal/detect"
	"github.com/vigilhq/vigil/connectors/redflagconnector/internal/metadata"
	"github.com/vigilhq/vigil/internal/alertevent"
)

func defaultSLO(objective float64) detect.SLOConfig {
	return detect.SLOConfig{Service: "checkout", Name: "availability", Objective: objective}
}

func newTestCore(t testing.TB, cfg *Config) *core {
	c, err := newCore(connectortest.NewNopSettings(metadata.Type), cfg, clockwork.NewRealClock(), func() {})
	require.NoError(t, err)
	return c
}

// cascadeTraces: checkout's calls to payments fail (503) and checkout's own
// requests fail with them; frontend's calls to checkout fail in turn.
func cascadeTraces(n int, fail bool) ptrace.Traces { return cascadeTracesIn(n, fail, nil) }

// cascadeTracesIn is cascadeTraces with k8s.namespace.name set on the
// resources of the services namespaces names.
func cascadeTracesIn(n int, fail bool, namespaces map[string]string) ptrace.Traces {
	td := ptrace.NewTraces()
	now := time.Now()
	add := func(svc string) ptrace.SpanSlice {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", svc)
		if ns := namespaces[svc]; ns != "" {
			rs.Resource().Attributes().PutStr("k8s.namespace.name", ns)
		}
		return rs.ScopeSpans().AppendEmpty().Spans()
	}
	checkout, frontend := add("checkout"), add("frontend")
	for i := 0; i < n; i++ {
		failed := fail && i%2 == 0
		id := func(b byte) pcommon.SpanID { return pcommon.SpanID{b, byte(i), byte(i >> 8), 1} }
		span := func(ss ptrace.SpanSlice, kind ptrace.SpanKind, self, parent byte, attrs map[string]any) {
			sp := ss.AppendEmpty()
			sp.SetKind(kind)
			sp.SetTraceID(pcommon.TraceID{byte(i), byte(i >> 8), 9})
			sp.SetSpanID(id(self))
			if parent != 0 {
				sp.SetParentSpanID(id(parent))
			}
			sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now))
			sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now.Add(15 * time.Millisecond)))
			if failed {
				sp.Status().SetCode(ptrace.StatusCodeError)
			}
			_ = sp.Attributes().FromRaw(attrs)
		}
		code := 200
		if failed {
			code = 503
		}
		span(frontend, ptrace.SpanKindServer, 1, 0, nil)
		span(frontend, ptrace.SpanKindClient, 2, 1, map[string]any{"server.address": "checkout", "http.response.status_code": code})
		span(checkout, ptrace.SpanKindServer, 3, 2, nil)
		span(checkout, ptrace.SpanKindClient, 4, 3, map[string]any{"server.address": "payments", "http.response.status_code": code})
	}
	return td
}

func fastConfig() *Config {
	cfg := createDefaultConfig().(*Config)
	cfg.EvaluationInterval = time.Second
	cfg.ErrorSpike.For = 0
	cfg.ErrorSpike.MinCalls = 20
	cfg.Cascade.For = 0
	cfg.JoinSampleRatio = 1
	return cfg
}

// clocked is a connector ID's shared state on a fake clock: the detectors
// judge ten-second buckets of processing time, so a test feeds a bucket's
// spans, then moves the clock on by one evaluation interval.
type clocked struct {
	clock *clockwork.FakeClock
	f     *factory
	cfg   *Config
}

func newClocked() *clocked {
	cfg := fastConfig()
	cfg.EvaluationInterval = 10 * time.Second
	clock := clockwork.NewFakeClockAt(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	return &clocked{clock: clock, f: newFactory(clock), cfg: cfg}
}

// step feeds td to every consumer (the collector fans the same data out to
// each instance), waits for the detector loop to take it, and moves the
// clock on one interval, which runs an evaluation.
func (c *clocked) step(t *testing.T, td ptrace.Traces, consumers ...consumer.Traces) {
	t.Helper()
	for _, in := range consumers {
		require.NoError(t, in.ConsumeTraces(context.Background(), td))
	}
	c.idle(t)
	c.clock.Advance(c.cfg.EvaluationInterval)
}

// idle waits until the loop has taken every batch (it applies a batch before
// it can see the next tick).
func (c *clocked) idle(t *testing.T) {
	c.f.mu.Lock()
	cores := slices.Collect(maps.Values(c.f.cores))
	c.f.mu.Unlock()
	for _, co := range cores {
		require.Eventually(t, func() bool { return len(co.batches) == 0 }, 5*time.Second, time.Millisecond)
	}
	time.Sleep(5 * time.Millisecond)
}

// warm feeds two minutes of healthy traffic: a rate is judged against the
// edge's own history, learned a minute behind the present.
func (c *clocked) warm(t *testing.T, consumers ...consumer.Traces) {
	for range 12 {
		c.step(t, cascadeTraces(20, false), consumers...)
	}
}

func TestConnectorRaisesAndDeliversAlerts(t *testing.T) {
	ctx := context.Background()
	cl := newClocked()
	f := cl.f
	cfg := cl.cfg
	set := connectortest.NewNopSettings(metadata.Type)
	msink, lsink := new(consumertest.MetricsSink), new(consumertest.LogsSink)
	tm, err := f.tracesToMetrics(ctx, set, cfg, msink)
	require.NoError(t, err)
	tl, err := f.tracesToLogs(ctx, set, cfg, lsink)
	require.NoError(t, err)
	// As the collector builds it when traces, metrics and logs pipelines all
	// export to the connector: one instance per input, the same downstream.
	ml, err := f.metricsToLogs(ctx, set, cfg, lsink)
	require.NoError(t, err)
	ll, err := f.logsToLogs(ctx, set, cfg, lsink)
	require.NoError(t, err)
	host := componenttest.NewNopHost()
	require.NoError(t, tm.Start(ctx, host))
	require.NoError(t, tl.Start(ctx, host))
	require.NoError(t, ml.Start(ctx, host))
	require.NoError(t, ll.Start(ctx, host))

	cl.warm(t, tm, tl)
	for range 3 {
		cl.step(t, cascadeTraces(100, true), tm, tl)
	}

	var events []alertevent.Event
	require.Eventually(t, func() bool {
		events = events[:0]
		for _, ld := range lsink.AllLogs() {
			for _, rl := range ld.ResourceLogs().All() {
				for _, sl := range rl.ScopeLogs().All() {
					for _, lr := range sl.LogRecords().All() {
						ev, err := alertevent.FromRecord(lr)
						require.NoError(t, err)
						events = append(events, ev)
					}
				}
			}
		}
		for _, ev := range events {
			if ev.Name() == "CascadingFailure" && ev.State == alertevent.StateFiring {
				return true
			}
		}
		return false
	}, 10*time.Second, 50*time.Millisecond)

	var cascade alertevent.Event
	n := 0
	for _, ev := range events {
		if ev.Name() == "CascadingFailure" && ev.State == alertevent.StateFiring {
			cascade = ev
			n++
		}
	}
	assert.Equal(t, 1, n, "the firing event is delivered once, not once per input signal")
	assert.Equal(t, "payments", cascade.Labels["origin_service"])
	assert.Equal(t, detect.CascadeID("payments"), cascade.Labels["cascade_id"])
	assert.Equal(t, "critical", cascade.Labels["severity"])
	assert.Equal(t, "checkout,frontend", cascade.Annotations["affected_services"])
	assert.False(t, cascade.TraceID.IsEmpty(), "an example trace")
	assert.Equal(t, 10*time.Second, cascade.EvalInterval)

	// The metrics output: ALERTS as Prometheus writes it, and edge calls
	// counted once although two instances received the spans.
	var last pmetric.Metrics
	require.Eventually(t, func() bool {
		all := msink.AllMetrics()
		last = all[len(all)-1]
		calls := findPoint([]pmetric.Metrics{last}, "vigil.edge.calls", map[string]string{"service": "checkout", "callee": "payments"})
		return findPoint(msink.AllMetrics(), "ALERTS", map[string]string{"alertname": "CascadingFailure", "alertstate": "firing", "origin_service": "payments"}) != nil &&
			calls != nil && calls.DoubleValue() == float64(12*20+3*100)
	}, 5*time.Second, 50*time.Millisecond)
	calls := findPoint([]pmetric.Metrics{last}, "vigil.edge.calls", map[string]string{"service": "checkout", "callee": "payments"})
	require.NotNil(t, calls)
	assert.Equal(t, float64(12*20+3*100), calls.DoubleValue())
	errs := findPoint([]pmetric.Metrics{last}, "vigil.edge.errors", map[string]string{"service": "checkout", "callee": "payments", "class": "overload"})
	require.NotNil(t, errs)
	assert.Equal(t, 150.0, errs.DoubleValue())
	forState := findPoint([]pmetric.Metrics{last}, "ALERTS_FOR_STATE", map[string]string{"alertname": "CascadingFailure"})
	require.NotNil(t, forState)
	assert.InDelta(t, float64(cascade.ActiveAt.Unix()), forState.DoubleValue(), 0)

	require.NoError(t, ml.Shutdown(ctx))
	require.NoError(t, ll.Shutdown(ctx))
	require.NoError(t, tm.Shutdown(ctx))
	require.NoError(t, tl.Shutdown(ctx))
	require.NoError(t, tl.Shutdown(ctx), "shutdown is idempotent")
}

// A service's Kubernetes namespace (k8s.namespace.name on its resource)
// labels its edges, its service metrics and the alerts about it, so the
// dashboard's namespace filter works; a service of unknown namespace gets no
// such label. An alert carries it twice: as k8s_namespace_name, and as
// namespace, which kube-prometheus-stack's Alertmanager config groups and
// inhibits on; in every delivery (ALERTS, ALERTS_FOR_STATE, alert events).
func TestNamespaceLabels(t *testing.T) {
	ctx := context.Background()
	cl := newClocked()
	set := connectortest.NewNopSettings(metadata.Type)
	msink, lsink := new(consumertest.MetricsSink), new(consumertest.LogsSink)
	tm, err := cl.f.tracesToMetrics(ctx, set, cl.cfg, msink)
	require.NoError(t, err)
	tl, err := cl.f.tracesToLogs(ctx, set, cl.cfg, lsink)
	require.NoError(t, err)
	require.NoError(t, tm.Start(ctx, componenttest.NewNopHost()))
	require.NoError(t, tl.Start(ctx, componenttest.NewNopHost()))
	defer func() {
		require.NoError(t, tm.Shutdown(ctx))
		require.NoError(t, tl.Shutdown(ctx))
	}()
	cl.warm(t, tm, tl)
	for range 3 {
		cl.step(t, cascadeTracesIn(100, true, map[string]string{"checkout": "shop", "frontend": "web"}), tm, tl)
	}

	var spike, cascade *pmetric.NumberDataPoint
	require.Eventually(t, func() bool {
		spike = findPoint(msink.AllMetrics(), "ALERTS", map[string]string{"alertname": "DependencyErrorSpike", "service": "checkout", "callee": "payments"})
		cascade = findPoint(msink.AllMetrics(), "ALERTS", map[string]string{"alertname": "CascadingFailure", "origin_service": "payments"})
		return spike != nil && cascade != nil
	}, 10*time.Second, 50*time.Millisecond)
	for _, k := range []string{"k8s_namespace_name", "namespace"} {
		ns, ok := spike.Attributes().Get(k)
		require.Truef(t, ok, "the alert about checkout carries its namespace as %s", k)
		assert.Equal(t, "shop", ns.Str(), k)
		_, ok = cascade.Attributes().Get(k)
		assert.Falsef(t, ok, "payments sent no telemetry: its namespace is unknown (%s)", k)
	}
	forState := findPoint(msink.AllMetrics(), "ALERTS_FOR_STATE", map[string]string{
		"alertname": "DependencyErrorSpike", "service": "checkout", "callee": "payments", "k8s_namespace_name": "shop", "namespace": "shop",
	})
	assert.NotNil(t, forState, "ALERTS_FOR_STATE carries the same labels")
	var events int
	for _, ld := range lsink.AllLogs() {
		for _, rl := range ld.ResourceLogs().All() {
			for _, sl := range rl.ScopeLogs().All() {
				for _, lr := range sl.LogRecords().All() {
					ev, err := alertevent.FromRecord(lr)
					require.NoError(t, err)
					if ev.Name() == "DependencyErrorSpike" && ev.Labels["service"] == "checkout" && ev.Labels["callee"] == "payments" {
						events++
						assert.Equal(t, "shop", ev.Labels["k8s_namespace_name"], ev.State)
						assert.Equal(t, "shop", ev.Labels["namespace"], ev.State)
					}
				}
			}
		}
	}
	assert.Positive(t, events, "alert events of the spike")

	all := msink.AllMetrics()
	last := []pmetric.Metrics{all[len(all)-1]}
	for _, c := range []struct{ metric, service, callee, ns string }{
		{"vigil.edge.calls", "checkout", "payments", "shop"},
		{"vigil.edge.calls", "frontend", "checkout", "web"},
		{"vigil.edge.duration", "frontend", "checkout", "web"},
		{"vigil.service.requests", "checkout", "", "shop"},
	} {
		want := map[string]string{"service": c.service, "k8s_namespace_name": c.ns}
		if c.callee != "" {
			want["callee"] = c.callee
		}
		assert.True(t, hasPoint(last, c.metric, want), "%s %v", c.metric, want)
	}
}

func TestConnectorHealthyTrafficRaisesNothing(t *testing.T) {
	ctx := context.Background()
	cfg := fastConfig()
	lsink := new(consumertest.LogsSink)
	tl, err := NewFactory().CreateTracesToLogs(ctx, connectortest.NewNopSettings(metadata.Type), cfg, lsink)
	require.NoError(t, err)
	require.NoError(t, tl.Start(ctx, componenttest.NewNopHost()))
	for range 3 {
		require.NoError(t, tl.ConsumeTraces(ctx, cascadeTraces(200, false)))
		time.Sleep(time.Second)
	}
	time.Sleep(1500 * time.Millisecond)
	require.NoError(t, tl.Shutdown(ctx))
	assert.Zero(t, lsink.LogRecordCount())
}

func TestShutdownWithoutStart(t *testing.T) {
	tl, err := NewFactory().CreateTracesToLogs(context.Background(), connectortest.NewNopSettings(metadata.Type), fastConfig(), new(consumertest.LogsSink))
	require.NoError(t, err)
	require.NoError(t, tl.Shutdown(context.Background()))
}

// ALERTS series end when an alert changes state or resolves: a point with the
// no-recorded-value flag, which Prometheus sees as staleness.
func TestAlertSeriesEnd(t *testing.T) {
	c := newTestCore(t, fastConfig())
	now := time.Now()
	a := detect.Alert{Labels: map[string]string{"alertname": "X", "severity": "warning", "service": "s"}, State: detect.Pending, ActiveAt: now}
	md := c.buildMetrics(now, []detect.Alert{a}, nil, nil)
	p := findPoint([]pmetric.Metrics{md}, "ALERTS", map[string]string{"alertname": "X", "alertstate": "pending"})
	require.NotNil(t, p)
	assert.False(t, p.Flags().NoRecordedValue())

	a.State = detect.Firing
	md = c.buildMetrics(now.Add(10*time.Second), []detect.Alert{a}, nil, nil)
	ended := findPoint([]pmetric.Metrics{md}, "ALERTS", map[string]string{"alertstate": "pending"})
	require.NotNil(t, ended)
	assert.True(t, ended.Flags().NoRecordedValue(), "the pending series ends")
	firing := findPoint([]pmetric.Metrics{md}, "ALERTS", map[string]string{"alertstate": "firing"})
	require.NotNil(t, firing)
	assert.Equal(t, 1.0, firing.DoubleValue())

	md = c.buildMetrics(now.Add(20*time.Second), nil, nil, nil)
	ended = findPoint([]pmetric.Metrics{md}, "ALERTS", map[string]string{"alertstate": "firing"})
	require.NotNil(t, ended)
	assert.True(t, ended.Flags().NoRecordedValue())
	endedFor := findPoint([]pmetric.Metrics{md}, "ALERTS_FOR_STATE", map[string]string{"alertname": "X"})
	require.NotNil(t, endedFor)
	assert.True(t, endedFor.Flags().NoRecordedValue())

	md = c.buildMetrics(now.Add(30*time.Second), nil, nil, nil)
	assert.Nil(t, findPoint([]pmetric.Metrics{md}, "ALERTS", nil), "ended once, not forever")
}

func findPoint(mds []pmetric.Metrics, name string, labels map[string]string) *pmetric.NumberDataPoint {
	var found *pmetric.NumberDataPoint
	for _, md := range mds {
		for _, rm := range md.ResourceMetrics().All() {
			for _, sm := range rm.ScopeMetrics().All() {
				for _, m := range sm.Metrics().All() {
					if m.Name() != name {
						continue
					}
					var dps pmetric.NumberDataPointSlice
					switch m.Type() {
					case pmetric.MetricTypeGauge:
						dps = m.Gauge().DataPoints()
					case pmetric.MetricTypeSum:
						dps = m.Sum().DataPoints()
					default:
						continue
					}
				next:
					for _, dp := range dps.All() {
						for k, v := range labels {
							got, ok := dp.Attributes().Get(k)
							if !ok || got.Str() != v {
								continue next
							}
						}
						dp := dp
						found = &dp
					}
				}
			}
		}
	}
	return found
}

// hasPoint says whether a point of the named metric (number or histogram)
// has all of labels.
func hasPoint(mds []pmetric.Metrics, name string, labels map[string]string) bool {
	if findPoint(mds, name, labels) != nil {
		return true
	}
	for _, md := range mds {
		for _, rm := range md.ResourceMetrics().All() {
			for _, sm := range rm.ScopeMetrics().All() {
				for _, m := range sm.Metrics().All() {
					if m.Name() != name || m.Type() != pmetric.MetricTypeHistogram {
						continue
					}
				next:
					for _, dp := range m.Histogram().DataPoints().All() {
						for k, v := range labels {
							if got, ok := dp.Attributes().Get(k); !ok || got.Str() != v {
								continue next
							}
						}
						return true
					}
				}
			}
		}
	}
	return false
}

// On the agent's Prometheus endpoint (the prometheus exporter) the ALERTS
// series look like Prometheus's own, with no OTel scope labels, and all end at
// once when several alerts resolve in one evaluation. The exporter stops
// reading a metric's points at its first no-recorded-value point, so each
// ending series must come in a metric of its own.
func TestAlertSeriesThroughThePrometheusExporter(t *testing.T) {
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	pf := prometheusexporter.NewFactory()
	pcfg := pf.CreateDefaultConfig().(*prometheusexporter.Config)
	pcfg.ServerConfig.NetAddr.Endpoint = addr
	exp, err := pf.CreateMetrics(ctx, exportertest.NewNopSettings(pf.Type()), pcfg)
	require.NoError(t, err)
	require.NoError(t, exp.Start(ctx, componenttest.NewNopHost()))
	defer func() { require.NoError(t, exp.Shutdown(ctx)) }()
	scrape := func() string {
		resp, err := http.Get("http://" + addr + "/metrics")
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return string(b)
	}
	alertLines := regexp.MustCompile(`(?m)^ALERTS(_FOR_STATE)?\{.*$`)

	c := newTestCore(t, fastConfig())
	now := time.Now()
	var alerts []detect.Alert
	for _, callee := range []string{"payments", "inventory", "shipping"} {
		alerts = append(alerts, detect.Alert{
			Labels: map[string]string{"alertname": "DependencyErrorSpike", "severity": "warning", "service": "checkout", "callee": callee},
			State:  detect.Pending, ActiveAt: now,
		})
	}
	require.NoError(t, exp.ConsumeMetrics(ctx, c.buildMetrics(now, alerts, nil, nil)))
	for i := range alerts {
		alerts[i].State = detect.Firing
	}
	require.NoError(t, exp.ConsumeMetrics(ctx, c.buildMetrics(now.Add(10*time.Second), alerts, nil, nil)))
	lines := alertLines.FindAllString(scrape(), -1)
	require.Len(t, lines, 6, "three firing ALERTS, three ALERTS_FOR_STATE; the pending series ended:\n%s", strings.Join(lines, "\n"))
	for _, l := range lines {
		assert.NotRegexp(t, `otel_scope_name="[^"]`, l)
		if strings.HasPrefix(l, "ALERTS{") {
			assert.Contains(t, l, `alertstate="firing"`)
			assert.Regexp(t, ` 1$`, l)
		}
	}

	require.NoError(t, exp.ConsumeMetrics(ctx, c.buildMetrics(now.Add(20*time.Second), nil, nil, nil)))
	assert.Empty(t, alertLines.FindAllString(scrape(), -1), "every resolved alert's series ended")
}
