package simulate

import (
	"net"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// rec is one span, flattened to what the tests read from its attributes,
// the way a detector would: either semantic-convention generation.
type rec struct {
	svc, inst, version string
	kind               ptrace.SpanKind
	name               string
	trace              pcommon.TraceID
	id, parent         pcommon.SpanID
	start, end         int64
	isErr              bool
	callee             string // client: the callee's service (see resolveCallees)
	rpcMethod          string
	route              string
	httpStatus         int64
	rpcCode            string // gRPC status name, from either attribute
	errType            string
	resend             int64
}

func (r rec) dur() time.Duration { return time.Duration(r.end - r.start) }

var grpcByNum = map[int64]string{}

func init() {
	for k, v := range grpcNames {
		grpcByNum[k] = v
	}
}

func flatten(td ptrace.Traces, out []rec) []rec {
	for _, rs := range td.ResourceSpans().All() {
		ra := rs.Resource().Attributes()
		svc, _ := ra.Get("service.name")
		inst, _ := ra.Get("service.instance.id")
		ver, _ := ra.Get("service.version")
		for _, ss := range rs.ScopeSpans().All() {
			for _, sp := range ss.Spans().All() {
				a := sp.Attributes()
				r := rec{svc: svc.Str(), inst: inst.Str(), version: ver.Str(), kind: sp.Kind(), name: sp.Name(),
					trace: sp.TraceID(), id: sp.SpanID(), parent: sp.ParentSpanID(),
					start: int64(sp.StartTimestamp()), end: int64(sp.EndTimestamp()),
					isErr: sp.Status().Code() == ptrace.StatusCodeError}
				for _, k := range []string{"server.address", "net.peer.name"} {
					if v, ok := a.Get(k); ok {
						r.callee = strings.TrimSuffix(v.Str(), ".shop.svc.cluster.local")
						break
					}
				}
				if v, ok := a.Get("http.route"); ok {
					r.route = v.Str()
				}
				if v, ok := a.Get("rpc.method"); ok {
					r.rpcMethod = v.Str()
				}
				for _, k := range []string{"http.response.status_code", "http.status_code"} {
					if v, ok := a.Get(k); ok {
						r.httpStatus = v.Int()
					}
				}
				if v, ok := a.Get("rpc.grpc.status_code"); ok {
					r.rpcCode = grpcByNum[v.Int()]
				}
				if v, ok := a.Get("rpc.response.status_code"); ok {
					r.rpcCode = v.Str()
				}
				if v, ok := a.Get("error.type"); ok {
					r.errType = v.Str()
				}
				if v, ok := a.Get("http.request.resend_count"); ok {
					r.resend = v.Int()
				}
				out = append(out, r)
			}
		}
	}
	return out
}

// run is one simulation's output, flattened.
type run struct {
	truth   Truth
	spans   []rec
	logs    []plog.Logs
	metrics []pmetric.Metrics
}

func simulate(t testing.TB, cfg Config, d time.Duration) run {
	t.Helper()
	s, err := New(cfg)
	require.NoError(t, err)
	out := run{truth: s.Truth()}
	for s.Now().Before(s.Truth().Start.Add(d)) {
		b := s.Advance(10 * time.Second)
		out.spans = flatten(b.Traces, out.spans)
		out.logs = append(out.logs, b.Logs)
		out.metrics = append(out.metrics, b.Metrics)
	}
	resolveCallees(out.spans)
	return out
}

// resolveCallees names the callee of client spans that name it by a pod IP
// (the service of their child server span, or of any span that did) or not
// at all (the service whose gRPC service the method belongs to), as the
// simulator addressed it: the tests check the simulator, not the detectors.
func resolveCallees(spans []rec) {
	byID := map[pcommon.SpanID]string{}
	for _, s := range spans {
		if s.kind == ptrace.SpanKindServer {
			byID[s.parent] = s.svc
		}
	}
	byIP, byRPC := map[string]string{}, map[string]string{}
	for _, s := range spans {
		if svc, ok := byID[s.id]; ok && s.kind == ptrace.SpanKindClient {
			if net.ParseIP(s.callee) != nil {
				byIP[s.callee] = svc
			}
			if s.rpcMethod != "" {
				byRPC[strings.SplitN(s.rpcMethod, "/", 2)[0]] = svc
			}
		}
	}
	for i := range spans {
		s := &spans[i]
		if s.kind != ptrace.SpanKindClient {
			continue
		}
		if svc, ok := byIP[s.callee]; ok {
			s.callee = svc
		}
		if s.callee == "" && s.rpcMethod != "" {
			s.callee = byRPC[strings.SplitN(s.rpcMethod, "/", 2)[0]]
		}
	}
}

// window selects spans that started in [from, to).
func (r run) window(from, to time.Time, keep func(rec) bool) []rec {
	var out []rec
	for _, s := range r.spans {
		if s.start >= from.UnixNano() && s.start < to.UnixNano() && keep(s) {
			out = append(out, s)
		}
	}
	return out
}

func server(svc string) func(rec) bool {
	return func(r rec) bool { return r.kind == ptrace.SpanKindServer && r.svc == svc }
}

func client(caller, callee string) func(rec) bool {
	return func(r rec) bool { return r.kind == ptrace.SpanKindClient && r.svc == caller && r.callee == callee }
}

func errShare(spans []rec) float64 {
	if len(spans) == 0 {
		return 0
	}
	n := 0
	for _, s := range spans {
		if s.isErr {
			n++
		}
	}
	return float64(n) / float64(len(spans))
}

// serverFailShare counts server failures as a detector must: 5xx or a
// server-error gRPC code, not 4xx.
func serverFailShare(spans []rec) float64 {
	if len(spans) == 0 {
		return 0
	}
	n := 0
	for _, s := range spans {
		if s.httpStatus >= 500 || (s.rpcCode != "" && s.rpcCode != "OK" && s.rpcCode != "NOT_FOUND" && s.rpcCode != "INVALID_ARGUMENT") {
			n++
		}
	}
	return float64(n) / float64(len(spans))
}

func p50(spans []rec) time.Duration {
	if len(spans) == 0 {
		return 0
	}
	d := make([]time.Duration, len(spans))
	for i, s := range spans {
		d[i] = s.dur()
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)/2]
}

// phases returns the windows before and during a fault, leaving the first
// minute (warm-up) and the first 30 s of the fault (onset) out.
func phases(f Fault, runStart time.Time) (b0, b1, d0, d1 time.Time) {
	return runStart.Add(time.Minute), f.Start, f.Start.Add(30 * time.Second), f.End
}
