package eval

import (
	"net/netip"
	"sort"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigilhq/vigil/connectors/redflagconnector/internal/detect"
	"github.com/vigilhq/vigil/connectors/redflagconnector/internal/edges"
	"github.com/vigilhq/vigil/internal/redflag"
	"github.com/vigilhq/vigil/internal/simulate"
)

// istioBounds are Istio's default istio_request_duration_milliseconds
// buckets.
var istioBounds = []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000}

// istioEmu says what Istio's sidecars would have reported for the calls the
// simulator's spans describe, as the prometheus receiver hands a scrape of
// every sidecar on: for each client span a reporter="source" series on the
// caller's sidecar, for each server span a reporter="destination" one on the
// callee's, cumulative istio_requests_total and
// istio_request_duration_milliseconds.
//
// The destination of a call is the service of its child server span (the
// mesh routes by service, so it knows it even when the application's span
// names a pod IP), or, when the call reached no server, the service that
// name last led to; an HTTP API outside the cluster is reported under its
// host name (egress through a ServiceEntry). A call to a database or a
// broker is not reported: a sidecar sees it as TCP only.
// Resilience the application does itself is reported as if the mesh did it
// (a client-side timeout as UT, an open circuit as UO, a refused connection as
// UF), which is how a team that relies on its mesh configures it.
type istioEmu struct {
	series map[istioKey]*istioSeries
	// A call is reported once both of its spans are in, whichever came
	// first (services export on their own schedules); one whose other span
	// has not come after matchWait is reported from the side that came.
	pendCl  map[pcommon.SpanID]pendingClient // client spans by ID
	pendSv  map[pcommon.SpanID]pendingServer // server spans by their parent's ID
	names   map[string]string                // callee names seen in spans -> the service they led to
	dropped int64                            // calls to no service in the mesh
	now     time.Time
	expired time.Time
	ns      map[string]string // service -> its k8s.namespace.name
}

// matchWait is how long a span waits for the other span of its call.
const matchWait = 10 * time.Second

type pendingClient struct {
	c  clientCall
	at time.Time
}

type pendingServer struct {
	svc string
	ms  float64
	o   detect.Outcome
	at  time.Time
}

type istioKey struct{ reporter, src, dst, code, flags string }

type istioSeries struct {
	start   time.Time // created: its first call (Envoy creates series lazily)
	n       uint64
	sum     float64
	buckets []uint64
}

type clientCall struct {
	caller, callee string
	// rpc is the gRPC service called: what a call that failed before a
	// connection still names (the mesh routes it to that service's pods).
	rpc string
	ms  float64
	o   detect.Outcome
	l7  bool // HTTP or gRPC, which a sidecar reads (not a database's or a broker's protocol)
}

func newIstioEmu() *istioEmu {
	return &istioEmu{series: map[istioKey]*istioSeries{}, pendCl: map[pcommon.SpanID]pendingClient{},
		pendSv: map[pcommon.SpanID]pendingServer{}, names: map[string]string{}, ns: map[string]string{}}
}

// add records spans that arrived at now.
func (m *istioEmu) add(td ptrace.Traces, now time.Time) {
	m.now = now
	for _, rs := range td.ResourceSpans().All() {
		svc := "unknown"
		if v, ok := rs.Resource().Attributes().Get("service.name"); ok {
			svc = v.Str()
		}
		if v, ok := rs.Resource().Attributes().Get("k8s.namespace.name"); ok && m.ns[svc] != v.Str() {
			m.ns[svc] = v.Str()
		}
		for _, ss := range rs.ScopeSpans().All() {
			for _, sp := range ss.Spans().All() {
				ms := float64(sp.EndTimestamp()-sp.StartTimestamp()) / 1e6
				callee, kind, o := edges.SpanCall(sp)
				switch sp.Kind() {
				case ptrace.SpanKindServer, ptrace.SpanKindConsumer:
					s := pendingServer{svc: svc, ms: ms, o: o, at: now}
					if sp.ParentSpanID().IsEmpty() {
						m.observe("destination", "unknown", svc, ms, o, false) // a root request
					} else if c, ok := m.pendCl[sp.ParentSpanID()]; ok {
						delete(m.pendCl, sp.ParentSpanID())
						m.pair(c.c, s)
					} else {
						m.pendSv[sp.ParentSpanID()] = s
					}
				case ptrace.SpanKindClient, ptrace.SpanKindProducer:
					if v, ok := sp.Attributes().Get(simulate.HandledLateAttr); ok {
						ms -= float64(v.Int()) / 1e6 // a sidecar saw the answer arrive
					}
					c := clientCall{caller: svc, callee: callee, rpc: rpcService(sp.Attributes()), ms: ms, o: o,
						l7: kind != redflag.KindDatabase && kind != redflag.KindQueue && kind != redflag.KindNone}
					if s, ok := m.pendSv[sp.SpanID()]; ok {
						delete(m.pendSv, sp.SpanID())
						m.pair(c, s)
					} else {
						m.pendCl[sp.SpanID()] = pendingClient{c, now}
					}
				}
			}
		}
	}
	if now.Sub(m.expired) >= matchWait/2 {
		m.expire(now)
	}
}

// pair reports a call both of whose spans are in, as both sidecars would.
func (m *istioEmu) pair(c clientCall, s pendingServer) {
	if c.callee != "" {
		m.names[c.callee] = s.svc
	}
	if c.rpc != "" {
		m.names["rpc:"+c.rpc] = s.svc
	}
	o := s.o
	if c.o.Failed && c.o.Class == detect.ClassTimeout {
		// The caller's proxy gave up first: the callee's proxy saw its
		// client go away, whatever the callee answered.
		o = detect.Outcome{Cancelled: true}
	}
	m.observe("destination", c.caller, s.svc, s.ms, o, false)
	if c.caller != s.svc {
		m.observe("source", c.caller, s.svc, c.ms, c.o, true)
	}
}

// expire reports the calls whose other span did not come: a server span
// from an unknown caller, a client span to the service its callee name led
// to before (a call that reached no server: refused, no healthy upstream).
func (m *istioEmu) expire(now time.Time) {
	m.expired = now
	for id, s := range m.pendSv {
		if now.Sub(s.at) >= matchWait {
			m.observe("destination", "unknown", s.svc, s.ms, s.o, false)
			delete(m.pendSv, id)
		}
	}
	for id, p := range m.pendCl {
		if now.Sub(p.at) < matchWait {
			continue
		}
		delete(m.pendCl, id)
		c := p.c
		dst, ok := m.names[c.callee]
		if !ok && c.rpc != "" {
			dst, ok = m.names["rpc:"+c.rpc]
		}
		if !ok && c.l7 && c.callee != "" && !isIP(c.callee) {
			// An HTTP API outside the cluster, reached through the mesh's
			// egress (a ServiceEntry): reported under its host name.
			dst, ok = c.callee, true
		}
		if !ok || dst == c.caller {
			m.dropped++
			continue
		}
		m.observe("source", c.caller, dst, c.ms, c.o, true)
	}
}

// rpcService is the gRPC service a client span calls.
func rpcService(a pcommon.Map) string {
	if v, ok := a.Get("rpc.service"); ok && v.Str() != "" {
		return v.Str()
	}
	if v, ok := a.Get("rpc.method"); ok {
		return redflag.RPCServiceOf(v.Str())
	}
	return ""
}

func (m *istioEmu) namespace(svc string) string {
	if n, ok := m.ns[svc]; ok {
		return n
	}
	return "unknown"
}

func isIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

// observe counts one call in its series, with the code and response flags a
// sidecar would give it.
func (m *istioEmu) observe(reporter, src, dst string, ms float64, o detect.Outcome, client bool) {
	code, flags := "200", "-"
	switch {
	case o.Cancelled:
		code, flags = "0", "DC"
	case o.Failed:
		switch o.Class {
		case detect.ClassTimeout:
			code = "504"
			if client {
				flags = "UT"
			}
		case detect.ClassConnect:
			code = "503"
			if client {
				flags = "UF"
			}
		case detect.ClassCircuitOpen:
			code = "503"
			if client {
				flags = "UO"
			}
		case detect.ClassOverload:
			code = "503"
		default:
			code = "500"
		}
	case o.Client4xx:
		code = "404"
	}
	k := istioKey{reporter, src, dst, code, flags}
	s := m.series[k]
	if s == nil {
		s = &istioSeries{start: m.now, buckets: make([]uint64, len(istioBounds)+1)}
		m.series[k] = s
	}
	s.n++
	s.sum += ms
	s.buckets[sort.SearchFloat64s(istioBounds, ms)]++
}

// scrape returns every sidecar's series as the prometheus receiver makes of
// a scrape: one resource per sidecar, cumulative points.
func (m *istioEmu) scrape(now time.Time) pmetric.Metrics {
	md := pmetric.NewMetrics()
	type pod struct {
		reqs, dur pmetric.Metric
	}
	pods := map[string]pod{}
	keys := make([]istioKey, 0, len(m.series))
	for k := range m.series {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.reporter != b.reporter {
			return a.reporter < b.reporter
		}
		if a.src != b.src {
			return a.src < b.src
		}
		if a.dst != b.dst {
			return a.dst < b.dst
		}
		if a.code != b.code {
			return a.code < b.code
		}
		return a.flags < b.flags
	})
	ts := pcommon.NewTimestampFromTime(now)
	for _, k := range keys {
		s := m.series[k]
		owner := k.dst
		if k.reporter == "source" {
			owner = k.src
		}
		p, ok := pods[owner]
		if !ok {
			rm := md.ResourceMetrics().AppendEmpty()
			rm.Resource().Attributes().PutStr("service.name", "kubernetes-pods")
			rm.Resource().Attributes().PutStr("service.instance.id", owner+"-7d9f:15020")
			sm := rm.ScopeMetrics().AppendEmpty()
			p.reqs = sm.Metrics().AppendEmpty()
			p.reqs.SetName("istio_requests_total")
			p.reqs.SetEmptySum().SetIsMonotonic(true)
			p.reqs.Sum().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
			p.dur = sm.Metrics().AppendEmpty()
			p.dur.SetName("istio_request_duration_milliseconds")
			p.dur.SetEmptyHistogram().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
			pods[owner] = p
		}
		labels := func(a pcommon.Map) {
			a.PutStr("reporter", k.reporter)
			a.PutStr("source_workload", k.src)
			a.PutStr("source_canonical_service", k.src)
			a.PutStr("source_workload_namespace", m.namespace(k.src))
			a.PutStr("destination_workload", k.dst)
			a.PutStr("destination_canonical_service", k.dst)
			a.PutStr("destination_service_name", k.dst)
			a.PutStr("destination_workload_namespace", m.namespace(k.dst))
			a.PutStr("response_code", k.code)
			a.PutStr("response_flags", k.flags)
			a.PutStr("request_protocol", "http")
		}
		dp := p.reqs.Sum().DataPoints().AppendEmpty()
		dp.SetTimestamp(ts)
		dp.SetStartTimestamp(pcommon.NewTimestampFromTime(s.start))
		dp.SetDoubleValue(float64(s.n))
		labels(dp.Attributes())
		hp := p.dur.Histogram().DataPoints().AppendEmpty()
		hp.SetTimestamp(ts)
		hp.SetStartTimestamp(pcommon.NewTimestampFromTime(s.start))
		hp.SetCount(s.n)
		hp.SetSum(s.sum)
		hp.ExplicitBounds().FromRaw(istioBounds)
		hp.BucketCounts().FromRaw(s.buckets)
		labels(hp.Attributes())
	}
	return md
}
