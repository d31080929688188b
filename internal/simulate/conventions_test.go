package simulate

import (
	"net"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// rawSpans keeps what the conventions tests read of every span, as emitted.
type rawSpan struct {
	svc, addr, method, rpcCode, msg string
	kind                            ptrace.SpanKind
	isErr                           bool
	hasAddr                         bool
}

func raw(t *testing.T, cfg Config, d time.Duration) ([]rawSpan, map[string]string) {
	t.Helper()
	s, err := New(cfg)
	require.NoError(t, err)
	var out []rawSpan
	podIP := map[string]string{} // pod IP -> service, from resources
	for s.Now().Before(s.Truth().Start.Add(d)) {
		td := s.Advance(10 * time.Second).Traces
		for _, rs := range td.ResourceSpans().All() {
			svc, _ := rs.Resource().Attributes().Get("service.name")
			if ip, ok := rs.Resource().Attributes().Get("k8s.pod.ip"); ok {
				podIP[ip.Str()] = svc.Str()
			}
			for _, ss := range rs.ScopeSpans().All() {
				for _, sp := range ss.Spans().All() {
					a := sp.Attributes()
					r := rawSpan{svc: svc.Str(), kind: sp.Kind(), isErr: sp.Status().Code() == ptrace.StatusCodeError, msg: sp.Status().Message()}
					if v, ok := a.Get("server.address"); ok {
						r.addr, r.hasAddr = v.Str(), true
					}
					if v, ok := a.Get("rpc.method"); ok {
						r.method = v.Str()
					}
					if v, ok := a.Get("rpc.response.status_code"); ok {
						r.rpcCode = v.Str()
					}
					out = append(out, r)
				}
			}
		}
	}
	return out, podIP
}

// The conventions of today's instrumentations that the simulator reproduces
// (otelgrpc v0.70's stats handler, errgroups): gRPC calls name their callee
// by pod IP, or by nothing when no connection carried them; Go gRPC servers
// name their own pod IP; some pods state it on their resource; the siblings
// of a failed call in a fan-out end CANCELLED.
func TestInstrumentationConventions(t *testing.T) {
	cfg := faultCfg("error-dependency", 1)
	cfg.FaultAfter, cfg.FaultDuration = time.Minute, 3*time.Minute
	spans, podIP := raw(t, cfg, 4*time.Minute)
	var byIP, noAddr, cancelled, serverIP int
	for _, s := range spans {
		if s.kind == ptrace.SpanKindClient && (s.msg == "context canceled" || s.msg == "A task was canceled.") {
			cancelled++
		}
		switch {
		case s.kind == ptrace.SpanKindClient && s.svc == "frontend" && s.method != "":
			require.Contains(t, s.method, "/", "a fully qualified rpc.method")
			if !s.hasAddr {
				noAddr++
			} else if net.ParseIP(s.addr) != nil {
				byIP++
			}
		case s.kind == ptrace.SpanKindServer && (s.svc == "currency" || s.svc == "search"):
			if net.ParseIP(s.addr) != nil {
				serverIP++
				if svc, ok := podIP[s.addr]; ok {
					assert.Equal(t, s.svc, svc, "the pod IP a server names is its own")
				}
			}
		}
	}
	assert.Positive(t, byIP, "frontend's gRPC calls name the callee's pod IP")
	assert.Positive(t, serverIP, "Go gRPC servers name their own pod IP")
	assert.NotEmpty(t, podIP, "some pods state k8s.pod.ip")
	t.Logf("%d by IP, %d without address, %d cancelled", byIP, noAddr, cancelled)
	assert.Positive(t, cancelled, "a failed call cancels its siblings (shipping's failures cancel checkout's inventory calls)")

	// A refused connection leaves no address on the client span.
	cfg = faultCfg("bad-instance", 3) // currency: one instance refuses
	spans, _ = raw(t, cfg, 6*time.Minute)
	noAddr = 0
	for _, s := range spans {
		if s.kind == ptrace.SpanKindClient && s.svc == "frontend" && s.method != "" && !s.hasAddr {
			require.True(t, s.isErr)
			noAddr++
		}
	}
	assert.Positive(t, noAddr, "calls refused before a connection carried them name no callee")
}

// Latency-only faults: a CPU-starved service's own calls look slow from its
// side while its callees' server spans do not; a delayed network makes the
// callers see the callee slow while its server spans are unchanged. Neither
// fails requests.
func TestLatencyOnlyFaults(t *testing.T) {
	median := func(xs []int64) int64 {
		if len(xs) == 0 {
			return 0
		}
		sort.Slice(xs, func(i, j int) bool { return xs[i] < xs[j] })
		return xs[len(xs)/2]
	}
	for _, sc := range []string{"cpu-starvation", "network-delay"} {
		t.Run(sc, func(t *testing.T) {
			r := simulate(t, faultCfg(sc, 2), 7*time.Minute)
			f := r.truth.Faults[0]
			b0, b1, d0, d1 := phases(f, r.truth.Start)
			ms := func(from, to time.Time, keep func(rec) bool) int64 {
				var ds []int64
				for _, s := range r.window(from, to, keep) {
					ds = append(ds, s.end-s.start)
				}
				return median(ds) / 1e6
			}
			into := func(s rec) bool { return s.kind == ptrace.SpanKindClient && s.callee == f.Origin }
			t.Logf("%s at %s: calls into it %d -> %d ms; its server spans %d -> %d ms", sc, f.Origin,
				ms(b0, b1, into), ms(d0, d1, into), ms(b0, b1, server(f.Origin)), ms(d0, d1, server(f.Origin)))
			assert.Greater(t, ms(d0, d1, into), ms(b0, b1, into)+40, "callers see it slow")
			assert.Less(t, serverFailShare(r.window(d0, d1, server(f.Origin))), 0.02, "latency only")
			if sc == "network-delay" {
				assert.Less(t, ms(d0, d1, server(f.Origin)), ms(b0, b1, server(f.Origin))+20, "its own server spans are not slow")
				return
			}
			out := func(s rec) bool { return s.kind == ptrace.SpanKindClient && s.svc == f.Origin }
			assert.Greater(t, ms(d0, d1, out), ms(b0, b1, out)+30, "its own calls look slow from its side")
		})
	}
}
