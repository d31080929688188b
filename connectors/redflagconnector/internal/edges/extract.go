package edges

import (
	"encoding/binary"
	"hash/maphash"
	"math"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigilhq/vigil/connectors/redflagconnector/internal/detect"
	"github.com/vigilhq/vigil/internal/redflag"
)

// Settings configure an Extractor.
type Settings struct {
	// JoinSampleRatio is the share of inbound requests whose parent/child links
	// are joined (chosen by span ID, so a parent and its children agree).
	JoinSampleRatio float64
	// MaxJoinEntries bounds the join cache (about 200 bytes each).
	MaxJoinEntries int
	// JoinTTL is how long a child waits for its parent's server span.
	JoinTTL time.Duration
	// MetricNames are the metrics Saturation rules read (others are skipped).
	MetricNames map[string]bool
}

// Stats counts what extraction saw and dropped.
type Stats struct {
	Spans uint64
	// NoCallee counts client spans that name no dependency at all (their
	// calls count against the caller's unknown_dependency).
	NoCallee              uint64
	JoinDropped, Expired  uint64
	LogRecords, ErrorLogs uint64
	DataPoints            uint64
}

// Extractor turns telemetry into detect.Batch observations. Traces, Logs and
// Metrics may be called concurrently; only the join cache and the claim
// cache are shared, behind a mutex taken once per batch.
type Extractor struct {
	set       Settings
	threshold uint64 // span IDs below it are in the join sample
	seed      maphash.Seed

	mu      sync.Mutex
	cur     map[uint64]*joinEntry
	prev    map[uint64]*joinEntry
	clients map[uint64]clientRef // client spans waiting for a server span of another service
	prevCl  map[uint64]clientRef
	rotated time.Time
	learned map[string]int64 // callee names a join tied to a service, and when (unix s)
	tried   map[string]int64 // callee names a client span waits for a join for, and when (unix s)
	free    []*joinEntry     // completed entries, for reuse
	claims  claimCache
	stats   Stats
}

type clientRef struct{ caller, callee string }

// New returns an Extractor.
func New(set Settings) *Extractor {
	if set.JoinTTL <= 0 {
		set.JoinTTL = 30 * time.Second
	}
	return &Extractor{
		set:       set,
		threshold: uint64(math.Min(set.JoinSampleRatio, 1) * math.MaxUint64),
		seed:      maphash.MakeSeed(),
		cur:       map[uint64]*joinEntry{}, prev: map[uint64]*joinEntry{},
		clients: map[uint64]clientRef{}, prevCl: map[uint64]clientRef{},
		learned: map[string]int64{}, tried: map[string]int64{},
		claims: claimCache{last: map[claimKey]int64{}, max: max(set.MaxJoinEntries, 1024)},
	}
}

// Stats returns a copy of the counters.
func (x *Extractor) Stats() Stats {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.stats
}

func idKey(id pcommon.SpanID) uint64 { return binary.LittleEndian.Uint64(id[:]) }

func (x *Extractor) sampled(id pcommon.SpanID) bool {
	return !id.IsEmpty() && (x.threshold == math.MaxUint64 || idKey(id) < x.threshold)
}

// batchIndex aggregates one batch's observations by edge and service. A
// batch usually holds a handful of each: up to smallIndex of them are found
// by comparing names (a fifth of the cost of hashing two strings per span),
// more through maps built when the batch outgrows that.
type batchIndex struct {
	edges    map[[2]string]int
	services map[string]int
}

const smallIndex = 8

func (bi *batchIndex) edge(b *detect.Batch, caller, callee string) *detect.EdgeDelta {
	if bi.edges == nil {
		for i := range b.Edges {
			if e := &b.Edges[i]; e.Callee == callee && e.Caller == caller {
				return e
			}
		}
		if len(b.Edges) >= smallIndex {
			bi.edges = make(map[[2]string]int, 2*len(b.Edges))
			for i, e := range b.Edges {
				bi.edges[[2]string{e.Caller, e.Callee}] = i
			}
		}
	} else if i, ok := bi.edges[[2]string{caller, callee}]; ok {
		return &b.Edges[i]
	}
	b.Edges = append(b.Edges, detect.EdgeDelta{Caller: caller, Callee: callee})
	if bi.edges != nil {
		bi.edges[[2]string{caller, callee}] = len(b.Edges) - 1
	}
	return &b.Edges[len(b.Edges)-1]
}

func (bi *batchIndex) service(b *detect.Batch, name string) *detect.ServiceDelta {
	if bi.services == nil {
		for i := range b.Services {
			if s := &b.Services[i]; s.Service == name {
				return s
			}
		}
		if len(b.Services) >= smallIndex {
			bi.services = make(map[string]int, 2*len(b.Services))
			for i, s := range b.Services {
				bi.services[s.Service] = i
			}
		}
	} else if i, ok := bi.services[name]; ok {
		return &b.Services[i]
	}
	b.Services = append(b.Services, detect.ServiceDelta{Service: name})
	if bi.services != nil {
		bi.services[name] = len(b.Services) - 1
	}
	return &b.Services[len(b.Services)-1]
}

// addNamespace records the Kubernetes namespace res names for svc, once per
// batch (seen holds the services recorded).
func addNamespace(b *detect.Batch, seen map[string]bool, svc string, res pcommon.Resource) {
	if seen[svc] {
		return
	}
	seen[svc] = true
	if ns := firstAttr(res.Attributes(), "k8s.namespace.name"); ns != "" {
		b.Namespaces = append(b.Namespaces, detect.Namespace{Service: svc, Name: ns})
	}
}

// resourceClaims records the addresses a resource states for its service:
// its pod IP (k8s.pod.ip, as the k8s_attributes processor or the downward
// API set it), net.host.ip, and host.ip, which every service on a node
// shares and which resolves only while one service claims it.
func resourceClaims(bc *batchClaims, svc string, res pcommon.Resource) {
	a := res.Attributes()
	if v, ok := a.Get("k8s.pod.ip"); ok {
		bc.add(v.Str(), svc, detect.ClaimAddress)
	}
	if v, ok := a.Get("net.host.ip"); ok {
		bc.add(v.Str(), svc, detect.ClaimAddress)
	}
	if v, ok := a.Get("host.ip"); ok {
		switch v.Type() {
		case pcommon.ValueTypeStr:
			bc.add(v.Str(), svc, detect.ClaimHost)
		case pcommon.ValueTypeSlice:
			for _, ip := range v.Slice().All() {
				bc.add(ip.Str(), svc, detect.ClaimHost)
			}
		}
	}
}

func serviceName(res pcommon.Resource) string {
	if v, ok := res.Attributes().Get("service.name"); ok && v.Str() != "" {
		return v.Str()
	}
	return "unknown_service"
}

// opHash identifies the operation of a client call, for telling retries
// (the same operation again) from distinct calls to one callee: the
// statement of a database call, the URL of an HTTP call, the method of an
// RPC, else the span's name.
func (x *Extractor) opHash(name string, f *facts) uint64 {
	var h maphash.Hash
	h.SetSeed(x.seed)
	h.WriteString(name)
	switch {
	case f.statement != "":
		h.WriteString(f.statement)
	case f.peer.URL() != "":
		h.WriteString(f.peer.URL())
	case f.route != "":
		h.WriteString(f.route)
	}
	return h.Sum64()
}

// opsPool holds the scratch slices of join operations Traces builds.
var opsPool = sync.Pool{New: func() any { return new([]joinOp) }}

// Traces adds what td says to b. now is the processing time.
func (x *Extractor) Traces(td ptrace.Traces, now time.Time, b *detect.Batch) {
	var bi batchIndex
	opsBuf := opsPool.Get().(*[]joinOp)
	ops := (*opsBuf)[:0]
	defer func() {
		clear(ops)
		*opsBuf = ops[:0]
		opsPool.Put(opsBuf)
	}()
	var bc batchClaims
	var f facts
	var spans, noCallee uint64
	nsSeen := map[string]bool{}
	for _, rs := range td.ResourceSpans().All() {
		svc := serviceName(rs.Resource())
		addNamespace(b, nsSeen, svc, rs.Resource())
		resourceClaims(&bc, svc, rs.Resource())
		for _, ss := range rs.ScopeSpans().All() {
			for _, sp := range ss.Spans().All() {
				spans++
				kind := sp.Kind()
				if kind != ptrace.SpanKindClient && kind != ptrace.SpanKindProducer &&
					kind != ptrace.SpanKindServer && kind != ptrace.SpanKindConsumer {
					continue
				}
				f.read(sp.Attributes())
				st := sp.Status()
				msg := ""
				if st.Code() == ptrace.StatusCodeError {
					msg = st.Message()
				}
				o := f.outcome(st.Code(), msg)
				if o.Failed && o.Class == detect.ClassOther && f.errorType == "" {
					if o.Class = exceptionClass(sp.Events()); o.Class == detect.ClassTimeout && f.httpStatus < 0 {
						o.OwnTimeout = true
					}
				}
				start, end := int64(sp.StartTimestamp()), int64(sp.EndTimestamp())
				ms := 0.0
				if end > start {
					ms = float64(end-start) / 1e6
				}
				if kind == ptrace.SpanKindServer || kind == ptrace.SpanKindConsumer {
					d := bi.service(b, svc)
					d.Served = d.Served || kind == ptrace.SpanKindServer
					o.Retry, o.OwnTimeout = false, false
					d.Observe(ms, o)
					if o.Failed && d.ErrTrace == ([16]byte{}) {
						d.ErrTrace = sp.TraceID()
					}
					if kind == ptrace.SpanKindServer {
						// The names this service was reached at.
						bc.add(f.peer.Address(), svc, detect.ClaimAddress)
						bc.add(f.localAddr, svc, detect.ClaimAddress)
						bc.add(f.hostName, svc, detect.ClaimAddress)
						bc.add(f.peer.RPCService(), svc, detect.ClaimRPC)
					}
					ops = append(ops, joinOp{server: true, service: svc, id: idKey(sp.SpanID()), parent: idKey(sp.ParentSpanID()),
						start: start, end: max(end, start), failed: o.Failed, inProcess: x.sampled(sp.SpanID())})
					continue
				}
				callee, ck := f.peer.Callee()
				if ck == redflag.KindNone {
					callee = redflag.UnknownDependency
					noCallee++
				}
				o.Retry = f.resend > 0
				d := bi.edge(b, svc, callee)
				if d.Calls == 0 {
					d.Kind = ck
				}
				d.Observe(ms, o)
				if o.Failed && d.ErrTrace == ([16]byte{}) {
					d.ErrTrace = sp.TraceID()
				}
				op := joinOp{service: svc, callee: callee, id: idKey(sp.SpanID()), parent: idKey(sp.ParentSpanID()),
					start: start, end: max(end, start), failed: o.Failed, cancelled: o.Cancelled, retry: o.Retry,
					inProcess: x.sampled(sp.ParentSpanID()),
					learn:     kind == ptrace.SpanKindClient && (ck == redflag.KindHost || ck == redflag.KindAddress || ck == redflag.KindRPC)}
				if op.inProcess {
					op.op = x.opHash(sp.Name(), &f)
				}
				if op.inProcess || op.learn {
					ops = append(ops, op)
				}
			}
		}
	}
	x.join(now, ops, b, &bi, &bc)
	x.mu.Lock()
	x.stats.Spans += spans
	x.stats.NoCallee += noCallee
	sec := now.Unix()
	for _, c := range bc.list {
		if x.claims.admit(claimKey{c.Name, c.Service, c.Kind}, sec) {
			b.Claims = append(b.Claims, c)
		}
	}
	x.mu.Unlock()
}

// Logs adds a batch of logs: per service the records and the error-level ones
// (severity ERROR or above, or an error severity text), with templates of the
// error messages. Vigil's own alert events are skipped.
func (x *Extractor) Logs(ld plog.Logs, b *detect.Batch) {
	idx := map[string]int{}
	var total, errs uint64
	nsSeen := map[string]bool{}
	for _, rl := range ld.ResourceLogs().All() {
		svc := serviceName(rl.Resource())
		addNamespace(b, nsSeen, svc, rl.Resource())
		for _, sl := range rl.ScopeLogs().All() {
			for _, lr := range sl.LogRecords().All() {
				if lr.EventName() == "vigil.alert" {
					continue
				}
				total++
				i, ok := idx[svc]
				if !ok {
					b.Logs = append(b.Logs, detect.LogDelta{Service: svc})
					i = len(b.Logs) - 1
					idx[svc] = i
				}
				d := &b.Logs[i]
				d.Total++
				if !isErrorLog(lr) {
					continue
				}
				errs++
				d.Errors++
				if d.ErrTrace == ([16]byte{}) && !lr.TraceID().IsEmpty() {
					d.ErrTrace = lr.TraceID()
				}
				if lr.Body().Type() == pcommon.ValueTypeStr {
					if d.Templates == nil {
						d.Templates = map[string]uint32{}
					}
					if t := detect.Template(lr.Body().Str()); len(d.Templates) < 64 || d.Templates[t] > 0 {
						d.Templates[t]++
					}
				}
			}
		}
	}
	x.mu.Lock()
	x.stats.LogRecords += total
	x.stats.ErrorLogs += errs
	x.mu.Unlock()
}

// exceptionClass reads the failure class from a span's exception events, for
// instrumentations that record a timeout only as an exception
// (java.net.SocketTimeoutException) and set no error.type.
func exceptionClass(evs ptrace.SpanEventSlice) detect.Class {
	for i := 0; i < evs.Len(); i++ {
		ev := evs.At(i)
		if ev.Name() != "exception" {
			continue
		}
		if v, ok := ev.Attributes().Get("exception.type"); ok {
			if c, ok := errorTypeClass(v.Str()); ok {
				return c
			}
		}
	}
	return detect.ClassOther
}

func isErrorLog(lr plog.LogRecord) bool {
	if n := lr.SeverityNumber(); n != plog.SeverityNumberUnspecified {
		return n >= plog.SeverityNumberError
	}
	switch strings.ToLower(lr.SeverityText()) {
	case "error", "err", "fatal", "critical", "crit", "alert", "emerg", "emergency", "panic", "severe":
		return true
	}
	return false
}

// Metrics adds the data points of the metrics Saturation rules read.
func (x *Extractor) Metrics(md pmetric.Metrics, b *detect.Batch) {
	var n uint64
	nsSeen := map[string]bool{}
	for _, rm := range md.ResourceMetrics().All() {
		res := rm.Resource().Attributes()
		svc := firstAttr(res, "service.name", "k8s.deployment.name", "k8s.statefulset.name", "k8s.daemonset.name", "k8s.container.name")
		inst := firstAttr(res, "service.instance.id", "k8s.pod.name", "host.name")
		if svc == "" {
			continue
		}
		addNamespace(b, nsSeen, svc, rm.Resource())
		for _, sm := range rm.ScopeMetrics().All() {
			for _, m := range sm.Metrics().All() {
				if !x.set.MetricNames[m.Name()] {
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
				for _, dp := range dps.All() {
					n++
					v := dp.DoubleValue()
					if dp.ValueType() == pmetric.NumberDataPointValueTypeInt {
						v = float64(dp.IntValue())
					}
					var attrs map[string]string
					if dp.Attributes().Len() > 0 {
						attrs = make(map[string]string, dp.Attributes().Len())
						for k, a := range dp.Attributes().All() {
							attrs[k] = a.AsString()
						}
					}
					b.Metrics = append(b.Metrics, detect.MetricSample{Service: svc, Instance: inst, Metric: m.Name(), Attrs: attrs, Value: v})
				}
			}
		}
	}
	x.mu.Lock()
	x.stats.DataPoints += n
	x.mu.Unlock()
}

func firstAttr(m pcommon.Map, keys ...string) string {
	for _, k := range keys {
		if v, ok := m.Get(k); ok && v.AsString() != "" {
			return v.AsString()
		}
	}
	return ""
}
