package simulate

import (
	"crypto/sha256"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

func faultCfg(scenario string, seed int64) Config {
	return Config{Scenario: scenario, Seed: seed, FaultAfter: 3 * time.Minute, FaultDuration: 5 * time.Minute}
}

func digest(t *testing.T, cfg Config, d time.Duration) [32]byte {
	s, err := New(cfg)
	require.NoError(t, err)
	h := sha256.New()
	var tm ptrace.ProtoMarshaler
	var lm plog.ProtoMarshaler
	var mm pmetric.ProtoMarshaler
	for s.Now().Before(s.Truth().Start.Add(d)) {
		b := s.Advance(7 * time.Second)
		for _, f := range []func() ([]byte, error){
			func() ([]byte, error) { return tm.MarshalTraces(b.Traces) },
			func() ([]byte, error) { return lm.MarshalLogs(b.Logs) },
			func() ([]byte, error) { return mm.MarshalMetrics(b.Metrics) },
		} {
			p, err := f()
			require.NoError(t, err)
			h.Write(p)
		}
	}
	return [32]byte(h.Sum(nil))
}

func TestDeterministicForASeed(t *testing.T) {
	for _, sc := range []string{"healthy", "retry-storm", "deploy"} {
		cfg := faultCfg(sc, 7)
		cfg.FaultAfter = time.Minute
		a, b := digest(t, cfg, 3*time.Minute), digest(t, cfg, 3*time.Minute)
		require.Equal(t, a, b, "%s: same seed, different output", sc)
		cfg.Seed = 8
		require.NotEqual(t, a, digest(t, cfg, 3*time.Minute), "%s: different seeds, same output", sc)
	}
}

func TestScenarioParametersVaryWithSeed(t *testing.T) {
	origins := map[string]bool{}
	for seed := int64(0); seed < 30; seed++ {
		s, err := New(faultCfg("error-dependency", seed))
		require.NoError(t, err)
		f := s.Truth().Faults[0]
		origins[f.Origin] = true
		require.GreaterOrEqual(t, f.Size, 0.3)
		require.LessOrEqual(t, f.Size, 0.7)
	}
	require.GreaterOrEqual(t, len(origins), 4, "origins drawn over 30 seeds: %v", origins)
}

func TestHealthyTrafficLooksHealthy(t *testing.T) {
	r := simulate(t, Config{Scenario: "healthy", Seed: 3}, 20*time.Minute)
	start := r.truth.Start
	fe := r.window(start.Add(time.Minute), start.Add(20*time.Minute), server("frontend"))
	// ~30 req/s with a diurnal swing of +-20%.
	require.InDelta(t, 30*19*60, len(fe), 30*19*60*0.25)
	fail := serverFailShare(fe)
	assert.Greater(t, fail, 0.0001, "some background errors")
	assert.Less(t, fail, 0.005, "about 0.1%% background errors")
	assert.Greater(t, p50(fe), 10*time.Millisecond)
	assert.Less(t, p50(fe), 200*time.Millisecond)
	for _, svc := range []string{"checkout", "payments", "inventory", "cart", "catalog", "search", "recommendation", "shipping", "currency"} {
		spans := r.window(start, start.Add(20*time.Minute), server(svc))
		require.NotEmpty(t, spans, svc)
		assert.Less(t, serverFailShare(spans), 0.01, svc)
	}
}

func TestErrorDependency(t *testing.T) {
	for _, seed := range []int64{1, 2, 4} {
		r := simulate(t, faultCfg("error-dependency", seed), 10*time.Minute)
		f := r.truth.Faults[0]
		t.Run(fmt.Sprintf("seed%d-%s", seed, f.Origin), func(t *testing.T) {
			b0, b1, d0, d1 := phases(f, r.truth.Start)
			before := serverFailShare(r.window(b0, b1, server(f.Origin)))
			during := serverFailShare(r.window(d0, d1, server(f.Origin)))
			assert.Less(t, before, 0.01)
			assert.InDelta(t, f.Size, during, 0.07, "origin fails the configured share")
			require.Contains(t, f.Affected, "frontend")
			for _, svc := range f.Affected {
				b := serverFailShare(r.window(b0, b1, server(svc)))
				d := serverFailShare(r.window(d0, d1, server(svc)))
				assert.Greater(t, d, math.Max(5*b, 0.01), "%s: failure propagates (before %.4f, during %.4f)", svc, b, d)
			}
			// After the fault it is over.
			after := serverFailShare(r.window(f.End.Add(30*time.Second), f.End.Add(2*time.Minute), server(f.Origin)))
			assert.Less(t, after, 0.01)
		})
	}
}

func TestSlowDependency(t *testing.T) {
	for _, seed := range []int64{1, 3} {
		r := simulate(t, faultCfg("slow-dependency", seed), 9*time.Minute)
		f := r.truth.Faults[0]
		t.Run(fmt.Sprintf("seed%d-%s", seed, f.Origin), func(t *testing.T) {
			require.True(t, f.External)
			caller := map[string]string{"inventory-db": "inventory", "catalog-db": "catalog"}[f.Origin]
			b0, b1, d0, d1 := phases(f, r.truth.Start)
			before := r.window(b0, b1, client(caller, f.Origin))
			during := r.window(d0, d1, client(caller, f.Origin))
			require.NotEmpty(t, before)
			require.NotEmpty(t, during)
			assert.Greater(t, p50(during), 50*p50(before), "queries slow down")
			// Callers time out: error spans ending at the 1 s statement timeout.
			timedOut := 0
			for _, s := range during {
				if s.isErr && s.dur() >= time.Second && s.dur() < 1100*time.Millisecond {
					timedOut++
				}
			}
			assert.Greater(t, float64(timedOut)/float64(len(during)), 0.2, "share of DB calls ending at the timeout")
			fe := serverFailShare(r.window(d0, d1, server("frontend")))
			assert.Greater(t, fe, 0.01, "the frontend fails")
		})
	}
}

func TestRetryStormAmplifiesAtTheOrigin(t *testing.T) {
	for _, seed := range []int64{1, 2, 5} {
		r := simulate(t, faultCfg("retry-storm", seed), 9*time.Minute)
		f := r.truth.Faults[0]
		t.Run(fmt.Sprintf("seed%d-%s", seed, f.Origin), func(t *testing.T) {
			b0, b1, d0, d1 := phases(f, r.truth.Start)
			isRoot := func(s rec) bool {
				return s.kind == ptrace.SpanKindServer && s.svc == "frontend" && s.route == "/api/checkout" && s.resend == 0
			}
			perRoot := func(from, to time.Time) float64 {
				calls := r.window(from, to, client("checkout", f.Origin))
				roots := r.window(from, to, isRoot)
				require.NotEmpty(t, roots)
				return float64(len(calls)) / float64(len(roots))
			}
			before, during := perRoot(b0, b1), perRoot(d0, d1)
			assert.InDelta(t, 1, before, 0.1)
			assert.GreaterOrEqual(t, during, 3*before, "amplification at the origin")
			resent := 0
			for _, s := range r.window(d0, d1, client("frontend", "checkout")) {
				if s.resend >= 1 {
					resent++
				}
			}
			assert.Positive(t, resent, "the frontend's retries carry http.request.resend_count")
		})
	}
}

func TestMetastableOverloadOutlivesItsTrigger(t *testing.T) {
	for seed, rate := range []float64{30, 30, 20, 60} {
		cfg := faultCfg("metastable", int64(seed))
		cfg.RootRate = rate
		cfg.FaultDuration = 8 * time.Minute
		r := simulate(t, cfg, 16*time.Minute)
		f := r.truth.Faults[0]
		t.Run(fmt.Sprintf("seed%d-rate%v", seed, rate), func(t *testing.T) {
			require.True(t, f.TriggerEnd.Before(f.End))
			fc := client("frontend", "catalog")
			before := errShare(r.window(r.truth.Start.Add(time.Minute), f.Start, fc))
			sustained := r.window(f.TriggerEnd.Add(time.Minute), f.End, fc)
			recovered := errShare(r.window(f.End.Add(2*time.Minute), f.End.Add(5*time.Minute), fc))
			assert.Less(t, before, 0.02)
			assert.Greater(t, errShare(sustained), 0.5, "overload persists after the trigger ended")
			assert.Less(t, recovered, 0.05, "mitigation ends it")
			// Retry load: more calls reach catalog than before.
			n0 := len(r.window(r.truth.Start.Add(time.Minute), f.Start, server("catalog"))) / 2
			n1 := len(r.window(f.TriggerEnd.Add(time.Minute), f.TriggerEnd.Add(3*time.Minute), server("catalog")))
			assert.Greater(t, float64(n1), 1.5*float64(n0), "retries amplify the load on catalog")
		})
	}
}

// gaugeSeries reads one int series of a service's metrics, in time order.
func (r run) intPoints(svc, metric string, attrs map[string]string) (ts []int64, vs []int64) {
	for _, md := range r.metrics {
		for _, rm := range md.ResourceMetrics().All() {
			if v, _ := rm.Resource().Attributes().Get("service.name"); v.Str() != svc {
				continue
			}
			for _, sm := range rm.ScopeMetrics().All() {
				for _, m := range sm.Metrics().All() {
					if m.Name() != metric {
						continue
					}
					var dps pmetric.NumberDataPointSlice
					switch m.Type() {
					case pmetric.MetricTypeSum:
						dps = m.Sum().DataPoints()
					case pmetric.MetricTypeGauge:
						dps = m.Gauge().DataPoints()
					}
				points:
					for _, dp := range dps.All() {
						for k, want := range attrs {
							if v, ok := dp.Attributes().Get(k); !ok || v.Str() != want {
								continue points
							}
						}
						ts = append(ts, int64(dp.Timestamp()))
						vs = append(vs, dp.IntValue())
					}
				}
			}
		}
	}
	return ts, vs
}

func TestPoolExhaustionShowsInMetrics(t *testing.T) {
	r := simulate(t, faultCfg("pool-exhaustion", 1), 10*time.Minute)
	f := r.truth.Faults[0]
	require.Equal(t, "inventory", f.Origin)
	ts, used := r.intPoints("inventory", "db.client.connection.count", map[string]string{"db.client.connection.state": "used"})
	_, max := r.intPoints("inventory", "db.client.connection.max", nil)
	_, timeouts := r.intPoints("inventory", "db.client.connection.timeouts", nil)
	require.NotEmpty(t, used)
	require.Len(t, max, len(used))
	saturatedBefore, saturatedDuring := false, false
	var toBefore, toDuring int64
	for i := range used {
		at := time.Unix(0, ts[i])
		switch {
		case at.Before(f.Start):
			saturatedBefore = saturatedBefore || used[i] >= max[i]
			toBefore = max64(toBefore, timeouts[i])
		case at.Before(f.End):
			saturatedDuring = saturatedDuring || used[i] >= max[i]
			toDuring = max64(toDuring, timeouts[i])
		}
	}
	assert.False(t, saturatedBefore)
	assert.True(t, saturatedDuring, "the pool is exhausted during the fault")
	assert.Zero(t, toBefore)
	assert.Positive(t, toDuring, "acquire timeouts are counted")
	// Once the pool is gone, inventory fails and the failure reaches the frontend.
	late := f.Start.Add(time.Duration(f.Size*float64(time.Second)) + time.Minute)
	assert.Greater(t, serverFailShare(r.window(late, f.End, server("inventory"))), 0.5)
	assert.Greater(t, serverFailShare(r.window(late, f.End, server("checkout"))), 0.5)
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

func TestBadInstance(t *testing.T) {
	for _, seed := range []int64{1, 3} {
		r := simulate(t, faultCfg("bad-instance", seed), 9*time.Minute)
		f := r.truth.Faults[0]
		t.Run(fmt.Sprintf("seed%d-%s", seed, f.Origin), func(t *testing.T) {
			require.NotEmpty(t, f.Instance)
			_, _, d0, d1 := phases(f, r.truth.Start)
			var bad, good []rec
			for _, s := range r.window(d0, d1, server(f.Origin)) {
				if s.inst == f.Instance {
					bad = append(bad, s)
				} else {
					good = append(good, s)
				}
			}
			require.NotEmpty(t, bad)
			require.NotEmpty(t, good)
			assert.Greater(t, serverFailShare(bad), 0.25)
			assert.Less(t, serverFailShare(good), 0.01)
			// Callers see refused connections too: client spans that failed
			// without any server span.
			children := map[[8]byte]bool{}
			for _, s := range r.spans {
				children[s.parent] = true
			}
			refused := 0
			for _, s := range r.spans {
				if s.kind == ptrace.SpanKindClient && s.callee == f.Origin && s.isErr && !children[s.id] && s.start >= d0.UnixNano() && s.end < d1.UnixNano() {
					refused++
				}
			}
			assert.Positive(t, refused)
		})
	}
}

func TestContainedByFallback(t *testing.T) {
	r := simulate(t, faultCfg("contained-by-fallback", 1), 9*time.Minute)
	f := r.truth.Faults[0]
	require.Empty(t, f.Affected)
	_, _, d0, d1 := phases(f, r.truth.Start)
	rs := r.window(d0, d1, server("recommendation"))
	require.NotEmpty(t, rs)
	assert.InDelta(t, f.Size, serverFailShare(rs), 0.08)
	assert.Less(t, serverFailShare(r.window(d0, d1, server("frontend"))), 0.005, "the frontend's pages stay OK")
	// The breaker opens: fast failures without a callee span.
	children := map[[8]byte]bool{}
	for _, s := range r.spans {
		children[s.parent] = true
	}
	open := 0
	for _, s := range r.window(d0, d1, client("frontend", "recommendation")) {
		if s.errType == "circuit_breaker_open" {
			open++
			require.True(t, s.isErr)
			require.Less(t, s.dur(), time.Millisecond)
			require.False(t, children[s.id], "a circuit-open call has no callee span")
		}
	}
	assert.Positive(t, open)
}

func TestNegativeControls(t *testing.T) {
	t.Run("client-4xx-burst", func(t *testing.T) {
		r := simulate(t, faultCfg("client-4xx-burst", 1), 9*time.Minute)
		e := r.truth.Events[0]
		fe := r.window(e.Start.Add(30*time.Second), e.End, server("frontend"))
		n4 := 0
		for _, s := range fe {
			if s.httpStatus >= 400 && s.httpStatus < 500 {
				n4++
				require.False(t, s.isErr, "4xx is not an error on a server span")
			}
		}
		assert.Greater(t, float64(n4)/float64(len(fe)), 0.15)
		assert.Less(t, serverFailShare(fe), 0.005, "no 5xx beyond the background")
		got404 := false
		for _, s := range r.window(e.Start, e.End, server("catalog")) {
			got404 = got404 || s.httpStatus == 404
		}
		assert.True(t, got404, "404s reach catalog")
		assert.Empty(t, r.truth.Faults)
		assert.True(t, r.truth.Negative)
	})
	t.Run("traffic-surge", func(t *testing.T) {
		r := simulate(t, faultCfg("traffic-surge", 1), 9*time.Minute)
		e := r.truth.Events[0]
		before := r.window(r.truth.Start.Add(time.Minute), e.Start, server("frontend"))
		during := r.window(e.Start.Add(time.Minute), e.End, server("frontend"))
		rate := func(n int, d time.Duration) float64 { return float64(n) / d.Seconds() }
		assert.Greater(t, rate(len(during), e.End.Sub(e.Start.Add(time.Minute))), 1.8*rate(len(before), e.Start.Sub(r.truth.Start.Add(time.Minute))))
		assert.Less(t, serverFailShare(during), 0.005)
	})
	t.Run("deploy", func(t *testing.T) {
		r := simulate(t, faultCfg("deploy", 2), 7*time.Minute)
		e := r.truth.Events[0]
		versions := func(from, to time.Time) map[string]bool {
			out := map[string]bool{}
			for _, s := range r.window(from, to, server(e.Target)) {
				out[s.version] = true
			}
			return out
		}
		old, now := versions(r.truth.Start, e.Start), versions(e.End.Add(10*time.Second), e.End.Add(2*time.Minute))
		require.Len(t, old, 1)
		require.Len(t, now, 1)
		require.NotEqual(t, old, now, "a new service.version after the rollout")
		assert.Less(t, serverFailShare(r.window(e.Start, e.End.Add(time.Minute), server("frontend"))), 0.01)
	})
	t.Run("low-traffic", func(t *testing.T) {
		r := simulate(t, Config{Scenario: "low-traffic", Seed: 1}, 30*time.Minute)
		fe := r.window(r.truth.Start, r.truth.Start.Add(30*time.Minute), server("frontend"))
		assert.Greater(t, len(fe), 30, "a few requests a minute")
		assert.Less(t, len(fe), 30*15)
	})
}

func TestTwoFaults(t *testing.T) {
	r := simulate(t, faultCfg("two-faults", 1), 16*time.Minute)
	require.Len(t, r.truth.Faults, 2)
	f1, f2 := r.truth.Faults[0], r.truth.Faults[1]
	require.NotEqual(t, f1.Origin, f2.Origin)
	require.True(t, f2.Start.After(f1.Start))
	_, _, d0, d1 := phases(f1, r.truth.Start)
	assert.InDelta(t, f1.Size, serverFailShare(r.window(d0, d1, server(f1.Origin))), 0.08)
	assert.Less(t, serverFailShare(r.window(r.truth.Start, f1.Start, server(f1.Origin))), 0.01)
	db := client("catalog", f2.Origin)
	assert.Greater(t, p50(r.window(f2.Start.Add(30*time.Second), f2.End, db)), 50*p50(r.window(r.truth.Start, f2.Start, db)))
}

func TestSpansAreValidTraces(t *testing.T) {
	// Faults make retries, timeouts, breakers and rejections: every kind of span.
	for _, sc := range []string{"healthy", "retry-storm", "metastable", "contained-by-fallback"} {
		t.Run(sc, func(t *testing.T) {
			cfg := faultCfg(sc, 1)
			cfg.FaultAfter = time.Minute
			r := simulate(t, cfg, 5*time.Minute)
			type key struct {
				tr [16]byte
				id [8]byte
			}
			byID := map[key]rec{}
			for _, s := range r.spans {
				k := key{s.trace, s.id}
				_, dup := byID[k]
				require.False(t, dup, "duplicate span id")
				byID[k] = s
				require.LessOrEqual(t, s.start, s.end)
			}
			roots, resent, timedOutWhileServerRan := 0, 0, 0
			for _, s := range r.spans {
				if s.parent.IsEmpty() {
					require.Equal(t, "frontend", s.svc, "only the edge starts traces")
					require.Equal(t, ptrace.SpanKindServer, s.kind)
					roots++
					continue
				}
				p, ok := byID[key{s.trace, s.parent}]
				if !ok {
					// The parent may still be running when the run ends.
					require.Greater(t, s.end, r.truth.Start.Add(4*time.Minute).UnixNano(), "span %s of %s has no parent", s.name, s.svc)
					continue
				}
				switch s.kind {
				case ptrace.SpanKindServer:
					require.Equal(t, ptrace.SpanKindClient, p.kind, "a server span's parent is the caller's client span")
					require.NotEqual(t, p.svc, s.svc)
					if p.isErr && p.end < s.end && (p.errType == "timeout" || p.errType == "DEADLINE_EXCEEDED" || p.errType == "") {
						timedOutWhileServerRan++
					}
				case ptrace.SpanKindClient:
					require.Equal(t, ptrace.SpanKindServer, p.kind, "a client span's parent is its service's server span")
					require.Equal(t, p.svc, s.svc)
					if s.resend > 0 {
						resent++
					}
				}
			}
			require.Positive(t, roots)
			if sc == "retry-storm" {
				require.Positive(t, resent, "retries are sibling client spans with resend_count")
			}
			if sc == "metastable" {
				require.Positive(t, timedOutWhileServerRan, "the callee's server span outlives the timed-out client span")
			}
		})
	}
}

func TestAttributeGenerationsMix(t *testing.T) {
	s, err := New(Config{Scenario: "healthy", Seed: 1})
	require.NoError(t, err)
	seen := map[string]int{}
	clients, withPeer, fqdn := 0, 0, 0
	for range 12 {
		b := s.Advance(10 * time.Second)
		for _, rs := range b.Traces.ResourceSpans().All() {
			for _, k := range []string{"service.name", "service.instance.id", "service.version", "k8s.namespace.name", "k8s.pod.name"} {
				v, ok := rs.Resource().Attributes().Get(k)
				require.True(t, ok, k)
				require.NotEmpty(t, v.Str(), k)
			}
			for _, ss := range rs.ScopeSpans().All() {
				for _, sp := range ss.Spans().All() {
					for k := range sp.Attributes().All() {
						seen[k]++
					}
					if sp.Kind() == ptrace.SpanKindClient {
						clients++
						if _, ok := sp.Attributes().Get("peer.service"); ok {
							withPeer++
						}
						for _, k := range []string{"server.address", "net.peer.name"} {
							if v, ok := sp.Attributes().Get(k); ok && strings.HasSuffix(v.Str(), ".svc.cluster.local") {
								fqdn++
							}
						}
					}
				}
			}
		}
	}
	for _, k := range []string{
		"http.request.method", "http.method", "http.response.status_code", "http.status_code", "url.full", "http.url",
		"server.address", "server.port", "net.peer.name", "net.peer.port",
		"rpc.system", "rpc.system.name", "rpc.service", "rpc.method", "rpc.grpc.status_code", "rpc.response.status_code",
		"db.system", "db.system.name", "db.namespace", "db.name", "db.operation.name", "peer.service",
	} {
		assert.Positive(t, seen[k], "attribute %s never emitted", k)
	}
	assert.Positive(t, withPeer)
	assert.Less(t, withPeer, clients, "peer.service is set by some callers only")
	assert.Positive(t, fqdn, "some callers use the cluster DNS name")
}

func TestLogsAndMetrics(t *testing.T) {
	r := simulate(t, faultCfg("error-dependency", 1), 6*time.Minute)
	f := r.truth.Faults[0]
	sev := map[plog.SeverityNumber]int{}
	errorsDuring := 0
	for _, ld := range r.logs {
		for _, rl := range ld.ResourceLogs().All() {
			svc, _ := rl.Resource().Attributes().Get("service.name")
			for _, sl := range rl.ScopeLogs().All() {
				for _, lr := range sl.LogRecords().All() {
					sev[lr.SeverityNumber()]++
					require.NotEmpty(t, lr.Body().Str())
					if lr.SeverityNumber() == plog.SeverityNumberError {
						require.False(t, lr.TraceID().IsEmpty(), "error logs carry the trace")
						if svc.Str() == f.Origin && !time.Unix(0, int64(lr.Timestamp())).Before(f.Start) {
							errorsDuring++
						}
					}
				}
			}
		}
	}
	assert.Positive(t, sev[plog.SeverityNumberInfo])
	assert.Greater(t, errorsDuring, 100, "the origin writes error logs while it fails")

	names := map[string]bool{}
	for _, md := range r.metrics {
		for _, rm := range md.ResourceMetrics().All() {
			for _, sm := range rm.ScopeMetrics().All() {
				for _, m := range sm.Metrics().All() {
					names[m.Name()] = true
				}
			}
		}
	}
	for _, n := range []string{
		"k8s.container.cpu_limit_utilization", "container.memory.working_set", "k8s.container.memory_limit",
		"http.server.active_requests", "http.server.request.duration", "http.server.duration",
		"db.client.connection.count", "db.client.connection.max", "db.client.connection.pending_requests",
		"db.client.connections.usage",
	} {
		assert.True(t, names[n], "metric %s never emitted", n)
	}
	// Metrics arrive every 10 s: one batch per 10 s Advance.
	require.Len(t, r.metrics, 36)
}

func TestMemoryStaysBoundedUnderOverload(t *testing.T) {
	cfg := faultCfg("metastable", 1)
	cfg.FaultDuration = 2 * time.Hour
	s, err := New(cfg)
	require.NoError(t, err)
	peakEvents, peakInflight := 0, 0
	for range 6 * 60 { // an hour
		s.Advance(10 * time.Second)
		peakEvents = max(peakEvents, len(s.events))
		peakInflight = max(peakInflight, s.inflight)
	}
	require.Contains(t, s.Truth().Phase(s.Now()), "overload sustained")
	// In-flight work is bounded by workers and queues; events by in-flight work.
	assert.Less(t, peakInflight, 2000)
	assert.Less(t, peakEvents, 20000)
}

func TestConfigErrorsNameTheField(t *testing.T) {
	bad := DefaultTopology()
	bad.Services[1].Ops[0].Steps[0][0].Target = "nope"
	cyclic := DefaultTopology()
	cyclic.Services[8].Ops[0].Steps = [][]Call{{{Target: "frontend", Op: "GET /", Timeout: time.Second, Attempts: 1}}}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Scenario: "nope"}, `scenario: unknown "nope"`},
		{Config{RootRate: -1}, "root_rate"},
		{Config{RootRate: math.NaN()}, "root_rate"},
		{Config{RootRate: 1e9}, "root_rate"},
		{Config{FaultAfter: -time.Second}, "fault_after"},
		{Config{FaultDuration: time.Millisecond}, "fault_duration"},
		{Config{FaultDuration: -time.Minute}, "fault_duration"},
		{Config{Start: time.Date(1, 1, 1, 0, 0, 1, 0, time.UTC)}, "start"},
		{Config{Topology: &bad}, `unknown target "nope"`},
		{Config{Topology: &cyclic}, "call cycle"},
		{Config{Topology: &Topology{}}, "topology.services"},
	} {
		_, err := New(tc.cfg)
		require.ErrorContains(t, err, tc.want)
	}
	s, err := New(Config{})
	require.NoError(t, err, "the zero Config is the healthy default")
	require.Equal(t, DefaultStart, s.Now())
	require.Equal(t, "healthy", s.Truth().Scenario)
}

func TestScenariosAreDescribed(t *testing.T) {
	names := ScenarioNames()
	for _, want := range []string{"healthy", "error-dependency", "slow-dependency", "retry-storm", "metastable", "pool-exhaustion",
		"bad-instance", "contained-by-fallback", "traffic-surge", "deploy", "low-traffic", "client-4xx-burst", "two-faults"} {
		require.Contains(t, names, want)
	}
	for _, info := range Scenarios() {
		require.NotEmpty(t, info.Description, info.Name)
		s, err := New(faultCfg(info.Name, 1))
		require.NoError(t, err, info.Name)
		tr := s.Truth()
		require.Equal(t, info.Negative, tr.Negative, info.Name)
		if info.Negative {
			require.Empty(t, tr.Faults, info.Name)
			continue
		}
		require.NotEmpty(t, tr.Faults, info.Name)
		got := map[string]bool{}
		for _, f := range tr.Faults {
			require.NotEmpty(t, f.Origin)
			require.False(t, f.End.Before(f.Start))
			for _, e := range f.Expect {
				got[e.Alertname] = true
			}
		}
		for _, a := range info.Expect {
			require.True(t, got[a], "%s: truth lacks expected %s", info.Name, a)
		}
		require.Contains(t, tr.String(), "origin "+tr.Faults[0].Origin)
		require.Equal(t, "healthy", tr.Phase(tr.Start))
		require.Contains(t, tr.Phase(tr.Faults[0].Start.Add(time.Second)), tr.Faults[0].Origin)
	}
}

// FuzzConfig feeds New arbitrary scenarios and numbers: it must return a
// working Sim or an error naming a field, never panic.
func FuzzConfig(f *testing.F) {
	f.Add("healthy", int64(1), 30.0, int64(time.Minute), int64(time.Minute))
	f.Add("metastable", int64(-5), 0.001, int64(time.Second), int64(time.Hour))
	f.Add("nope", int64(0), -1.0, int64(-1), int64(0))
	f.Add("two-faults", int64(9), 4999.0, int64(0), int64(time.Second))
	f.Add("", int64(3), math.Inf(1), int64(math.MaxInt64), int64(math.MinInt64))
	fields := []string{"scenario", "root_rate", "fault_after", "fault_duration", "start"}
	f.Fuzz(func(t *testing.T, scenario string, seed int64, rate float64, after, dur int64) {
		s, err := New(Config{Scenario: scenario, Seed: seed, RootRate: rate, FaultAfter: time.Duration(after), FaultDuration: time.Duration(dur)})
		if err != nil {
			named := false
			for _, fl := range fields {
				named = named || strings.HasPrefix(err.Error(), fl+":")
			}
			require.True(t, named, "error names no field: %v", err)
			return
		}
		if rate > 500 {
			return // valid, but slow to run here
		}
		s.Advance(2 * time.Second)
	})
}

func BenchmarkAdvance(b *testing.B) {
	s, err := New(Config{Scenario: "healthy", Seed: 1, RootRate: 20})
	require.NoError(b, err)
	b.ReportAllocs()
	spans := int64(0)
	b.ResetTimer()
	for b.Loop() {
		batch := s.Advance(10 * time.Second)
		spans += int64(batch.Traces.SpanCount())
	}
	b.ReportMetric(float64(spans)/float64(b.N), "spans/op")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(max(spans, 1)), "ns/span")
}
