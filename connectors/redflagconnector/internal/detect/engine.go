// Package detect is the red-flag detector core: a pure state machine. Callers
// feed it pre-aggregated observations with Apply and ask it to Evaluate at a
// time they choose; it never reads a clock, starts a goroutine or locks, so it
// is tested deterministically (golden scenario scripts in testdata/) and run
// on a virtual clock by the simulator's evaluation. Not safe for concurrent use:
// one goroutine owns an Engine.
package detect

import (
	"math"
	"sort"
	"strings"
	"time"

	"github.com/vigilhq/vigil/internal/redflag"
)

// Batch is what a batch of telemetry contributes. The engine copies what it
// keeps; the caller may reuse the Batch after Apply returns.
type Batch struct {
	Edges    []EdgeDelta
	Services []ServiceDelta
	Logs     []LogDelta
	Metrics  []MetricSample
	// Claims tie names callers may use (addresses, host names, gRPC
	// services) to the services behind them.
	Claims []Claim
	// Namespaces are the Kubernetes namespaces services' telemetry named
	// (k8s.namespace.name on the resource).
	Namespaces []Namespace
}

// Reset empties b for reuse, keeping capacity.
func (b *Batch) Reset() {
	b.Edges, b.Services, b.Logs, b.Metrics, b.Claims = b.Edges[:0], b.Services[:0], b.Logs[:0], b.Metrics[:0], b.Claims[:0]
	b.Namespaces = b.Namespaces[:0]
}

// EdgeDelta is what calls from Caller to Callee contributed. Callee is the
// name the calls used, resolved by the engine.
type EdgeDelta struct {
	Caller, Callee string
	Kind           redflag.Kind
	// Wraps is the callee of client spans nested in these calls' spans in
	// the caller's own process (a publish that runs an INSERT), if any.
	Wraps string
	Counts
	// ErrTrace is an example trace ID of a failed call (zero if none).
	ErrTrace [16]byte
	// Mesh: the calls come from a service mesh's metrics, which never say
	// which of the caller's requests made them (no joins).
	Mesh bool
}

// ServiceDelta is what a service's inbound requests (server spans) contributed.
type ServiceDelta struct {
	Service string
	Counts
	// Self is the exclusive time of joined requests (see service.self).
	Self     Hist
	ErrTrace [16]byte
	// Mesh: the requests come from a service mesh's metrics; Served: some
	// came from server spans (the requests a mesh also reports; consumer
	// spans are not).
	Mesh, Served bool
}

// spansWin is how long after a span last described an edge or a service
// its service mesh's metrics are ignored: a traced service behind a sidecar
// would have each call counted twice, and spans say more.
const spansWin = 30 // buckets

// LogDelta is what a service's logs contributed.
type LogDelta struct {
	Service string
	Total   uint32
	Errors  uint32
	// Templates counts error logs per message template (see Template).
	Templates map[string]uint32
	ErrTrace  [16]byte
}

// MetricSample is one data point of a metric a Saturation rule may read.
type MetricSample struct {
	Service, Instance string
	Metric            string
	Attrs             map[string]string
	Value             float64
}

// Namespace says that Service runs in the Kubernetes namespace Name.
type Namespace struct{ Service, Name string }

// namespaceLabel is the label (and metric attribute) that carries a
// service's Kubernetes namespace, when known.
const namespaceLabel = "k8s_namespace_name"

// routeNamespaceLabel carries the same namespace on alerts, under the name
// the alerts of Prometheus rules over Kubernetes have it (kube-state-metrics'
// and the Prometheus Operator's target labels): kube-prometheus-stack's
// default Alertmanager config groups by it and its inhibit_rules match on it
// (equal: [namespace, alertname]; alertmanager.config in
// https://github.com/prometheus-community/helm-charts/blob/main/charts/kube-prometheus-stack/values.yaml).
const routeNamespaceLabel = "namespace"

type nsEntry struct {
	name   string
	bucket int64 // last seen
}

// Engine holds all detector state.
type Engine struct {
	cfg      Config
	edges    map[edgeKey]*edge
	services map[string]*service
	dir      *directory
	// namespaces: service -> its Kubernetes namespace, at most
	// 4*MaxServices, forgotten after IdleExpiry unseen.
	namespaces map[string]nsEntry
	alerts     map[string]*Alert
	// incidentSince is when each current incident's origin was first seen.
	incidentSince map[string]time.Time
	stats         Stats
	lastEval      time.Time
	bucket        int64 // bucket of the last Apply or Evaluate
	decay         float64
}

type edgeKey struct{ caller, callee string }

// Stats counts what the engine dropped or evicted, for the connector's metrics.
type Stats struct {
	EdgesOverflow    uint64 // deltas dropped because MaxEdges was reached
	ServicesOverflow uint64
	EdgesExpired     uint64
	Edges, Services  int
}

// New returns an engine with cfg (use DefaultConfig for the defaults).
func New(cfg Config) *Engine {
	e := &Engine{
		cfg:      cfg.Normalized(),
		edges:    map[edgeKey]*edge{},
		services: map[string]*service{},
		alerts:   map[string]*Alert{},

		namespaces: map[string]nsEntry{},

		incidentSince: map[string]time.Time{},
	}
	e.dir = newDirectory(8*cfg.MaxServices, func(n string) bool { _, ok := e.services[n]; return ok })
	return e
}

// Stats returns counters of dropped and expired state.
func (e *Engine) Stats() Stats {
	s := e.stats
	s.Edges, s.Services = len(e.edges), len(e.services)
	return s
}

// Apply adds a batch observed at now.
func (e *Engine) Apply(now time.Time, b *Batch) {
	bk := bucketOf(now)
	e.bucket = bk
	for _, n := range b.Namespaces {
		if n.Service == "" || n.Name == "" {
			continue
		}
		if old, ok := e.namespaces[n.Service]; ok {
			if old.name != n.Name {
				old.name = strings.Clone(n.Name)
			}
			old.bucket = bk
			e.namespaces[n.Service] = old
		} else if len(e.namespaces) < 4*e.cfg.MaxServices {
			e.namespaces[strings.Clone(n.Service)] = nsEntry{name: strings.Clone(n.Name), bucket: bk}
		}
	}
	renamed := false
	for i := range b.Services {
		d := &b.Services[i]
		_, known := e.services[d.Service]
		s := e.service(d.Service)
		if s == nil {
			continue
		}
		renamed = renamed || !known
		if d.Mesh && s.spanBucket != 0 && bk-s.spanBucket <= spansWin {
			continue
		} else if d.Served {
			s.spanBucket = bk
		}
		if s.since.IsZero() {
			s.since = now
			s.learn.startAt(bk)
		}
		s.in.add(bk, &d.Counts)
		s.total.Add(&d.Counts)
		s.self.add(bk, &d.Self)
		s.lastBucket = bk
		if d.Errors > 0 && d.ErrTrace != ([16]byte{}) {
			s.errTrace = d.ErrTrace
		}
		for j := range s.slos {
			s.slos[j].add(now, d.Calls, d.Errors)
		}
	}
	for _, c := range b.Claims {
		if e.dir.claim(c, bk) {
			renamed = true
		}
	}
	if renamed {
		// A name that now resolves (or resolves elsewhere) takes its edges'
		// windows with it: no stale edge to an address is left to fire.
		e.dir.changed = true
		e.rekey()
	}
	for i := range b.Edges {
		d := &b.Edges[i]
		callee := e.resolve(d.Callee)
		ed := e.edge(d.Caller, callee)
		if ed == nil {
			e.stats.EdgesOverflow++
			continue
		}
		if ed.since.IsZero() {
			ed.since = now
			ed.learn.startAt(bk)
			ed.kind = d.Kind
			if callee != d.Callee {
				ed.kind = redflag.KindService
			}
		}
		if d.Mesh && ed.spanBucket != 0 && bk-ed.spanBucket <= spansWin {
			continue
		} else if !d.Mesh {
			ed.spanBucket = bk
		}
		ed.mesh = ed.mesh || d.Mesh
		ed.win.add(bk, &d.Counts)
		ed.total.Add(&d.Counts)
		ed.lastBucket = bk
		if d.Wraps != "" {
			if w := e.resolve(d.Wraps); w != ed.callee {
				if w != ed.wraps {
					ed.wraps = strings.Clone(w)
				}
				ed.wrapsBucket = bk
			}
		}
		if d.Errors > 0 && d.ErrTrace != ([16]byte{}) {
			ed.errTrace = d.ErrTrace
		}
		if d.TimeoutN > 0 {
			mean := float64(d.TimeoutMsSum) / float64(d.TimeoutN)
			if ed.timeoutN == 0 {
				ed.timeoutMs = mean
			} else {
				ed.timeoutMs += (mean - ed.timeoutMs) * math.Min(1, float64(d.TimeoutN)/float64(ed.timeoutN+d.TimeoutN))
			}
			ed.timeoutN += d.TimeoutN
		}
	}
	for i := range b.Logs {
		d := &b.Logs[i]
		s := e.service(d.Service)
		if s == nil {
			continue
		}
		s.logs.apply(bk, d, e.cfg.ErrorLogBurst.MaxTemplates)
		s.lastBucket = bk
	}
	for i := range b.Metrics {
		m := &b.Metrics[i]
		s := e.service(m.Service)
		if s == nil {
			continue
		}
		s.sat.apply(now, m, e.cfg.Saturation.Rules)
		s.lastBucket = bk
	}
}

// resolve maps a callee name to the service behind it where one is known
// (redflag.Resolve over the engine's directory).
func (e *Engine) resolve(callee string) string { return redflag.Resolve(e.dir, callee) }

// rekey moves every edge whose callee now resolves to another name into the
// edge of that name, merging their windows, totals and baselines.
func (e *Engine) rekey() {
	for k, ed := range e.edges {
		to := e.resolve(k.callee)
		if to == k.callee {
			continue
		}
		delete(e.edges, k)
		if dst, ok := e.edges[edgeKey{k.caller, to}]; ok {
			dst.merge(ed)
			continue
		}
		// Nothing there yet: the edge moves as it is.
		ed.callee = strings.Clone(to)
		ed.kind = redflag.KindService
		e.edges[edgeKey{ed.caller, ed.callee}] = ed
	}
}

func (e *Engine) edge(caller, callee string) *edge {
	k := edgeKey{caller, callee}
	if ed, ok := e.edges[k]; ok {
		return ed
	}
	if len(e.edges) >= e.cfg.MaxEdges {
		return nil
	}
	k = edgeKey{strings.Clone(caller), strings.Clone(callee)}
	ed := &edge{caller: k.caller, callee: k.callee}
	e.edges[k] = ed
	return ed
}

func (e *Engine) service(name string) *service {
	if s, ok := e.services[name]; ok {
		return s
	}
	if len(e.services) >= e.cfg.MaxServices {
		e.stats.ServicesOverflow++
		return nil
	}
	s := newService(strings.Clone(name), e.cfg)
	e.services[s.name] = s
	return s
}

// EdgeView is a read-only snapshot of an edge for metrics and the status page.
type EdgeView struct {
	Caller, Callee string
	// CalleeKind says what the callee name is (KindAddress: an address no
	// telemetry has tied to a service yet).
	CalleeKind redflag.Kind
	Namespace  string // the caller's Kubernetes namespace, if known
	Since      time.Time
	// Totals since the edge was first seen (cumulative counters).
	Total Counts
	// Last5m is the five-minute window at the last evaluation.
	Last5m     Counts
	TimeoutMs  float64 // learned timeout, 0 if unknown
	Anomalous  bool
	ErrorRatio float64
	P99Ms      float64
	RetryRatio float64
	P50Ms      float64
	Slow       bool // latency far above its normal
	Flagged    bool // part of an active alert
}

// Edges returns a snapshot of every edge, sorted by caller then callee.
func (e *Engine) Edges() []EdgeView {
	out := make([]EdgeView, 0, len(e.edges))
	for _, ed := range e.edges {
		out = append(out, EdgeView{
			Caller: ed.caller, Callee: ed.callee, CalleeKind: ed.kind, Namespace: e.namespaces[ed.caller].name, Since: ed.since, Total: ed.total, Last5m: ed.ev.w5,
			TimeoutMs: ed.ev.timeoutMs, Anomalous: ed.ev.anomalous, ErrorRatio: ed.ev.err5,
			P99Ms: ed.ev.p99, P50Ms: ed.ev.p50, RetryRatio: ratio(ed.ev.w5.Retries, ed.ev.w5.Calls), Slow: ed.ev.slow, Flagged: ed.flagged,
		})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Caller != out[j].Caller {
			return out[i].Caller < out[j].Caller
		}
		return out[i].Callee < out[j].Callee
	})
	return out
}

// ServiceView is a read-only snapshot of a service's inbound traffic.
type ServiceView struct {
	Name       string
	Namespace  string // Kubernetes namespace, if known
	Since      time.Time
	Total      Counts
	Last5m     Counts
	ErrorRatio float64
	P99Ms      float64
	Failing    bool
	Slow       bool // inbound latency, or the time spent in the service itself, far above normal
	Origin     bool // named as the origin of an active incident
}

// Services returns a snapshot of every service, sorted by name.
func (e *Engine) Services() []ServiceView {
	out := make([]ServiceView, 0, len(e.services))
	for _, s := range e.services {
		out = append(out, ServiceView{Name: s.name, Namespace: e.namespaces[s.name].name, Since: s.since, Total: s.total, Last5m: s.ev.w5, ErrorRatio: s.ev.err5, P99Ms: s.ev.w5.Quantile(0.99), Failing: s.ev.failing,
			Slow: s.ev.slow || s.ev.selfSlow, Origin: s.origin})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
