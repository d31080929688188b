package edges

import (
	"encoding/binary"
	"math"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigilhq/vigil/connectors/redflagconnector/internal/detect"
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
	Spans, NoCallee       uint64
	JoinDropped, Expired  uint64
	LogRecords, ErrorLogs uint64
	DataPoints            uint64
}

// Extractor turns telemetry into detect.Batch observations. Traces, Logs and
// Metrics may be called concurrently; only the join cache is shared, behind a
// mutex taken once per batch.
type Extractor struct {
	set       Settings
	threshold uint64 // span IDs below it are in the join sample

	mu      sync.Mutex
	cur     map[uint64]*joinEntry
	prev    map[uint64]*joinEntry
	clients map[uint64]clientRef // sampled client spans, for alias learning
	prevCl  map[uint64]clientRef
	rotated time.Time
	learned map[string]bool // callees whose service is known
	stats   Stats
}

type clientRef struct{ caller, callee string }

// joinEntry collects the client spans of one inbound request (by parent span ID).
type joinEntry struct {
	service string
	n       int
	calls   [8]joinCall
}

type joinCall struct {
	callee          string
	attempts, flags uint16 // flags: attempts marked as retries by resend_count
	failures        uint16
}

// New returns an Extractor.
func New(set Settings) *Extractor {
	if set.JoinTTL <= 0 {
		set.JoinTTL = 30 * time.Second
	}
	return &Extractor{
		set:       set,
		threshold: uint64(math.Min(set.JoinSampleRatio, 1) * math.MaxUint64),
		cur:       map[uint64]*joinEntry{}, prev: map[uint64]*joinEntry{},
		clients: map[uint64]clientRef{}, prevCl: map[uint64]clientRef{},
		learned: map[string]bool{},
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

// joinOp is a span that takes part in a join, applied under the lock.
type joinOp struct {
	server    bool
	service   string
	callee    string
	id, other uint64 // server: own ID; client: parent ID (other: own ID)
	failed    bool
	retry     bool
	learn     bool
	trace     [16]byte
}

// batchIndex aggregates one batch's observations by edge and service.
type batchIndex struct {
	edges    map[[2]string]int
	services map[string]int
}

func (bi *batchIndex) edge(b *detect.Batch, caller, callee string) *detect.EdgeDelta {
	k := [2]string{caller, callee}
	if i, ok := bi.edges[k]; ok {
		return &b.Edges[i]
	}
	b.Edges = append(b.Edges, detect.EdgeDelta{Caller: caller, Callee: callee})
	bi.edges[k] = len(b.Edges) - 1
	return &b.Edges[len(b.Edges)-1]
}

func (bi *batchIndex) service(b *detect.Batch, name string) *detect.ServiceDelta {
	if i, ok := bi.services[name]; ok {
		return &b.Services[i]
	}
	b.Services = append(b.Services, detect.ServiceDelta{Service: name})
	bi.services[name] = len(b.Services) - 1
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

func serviceName(res pcommon.Resource) string {
	if v, ok := res.Attributes().Get("service.name"); ok && v.Str() != "" {
		return v.Str()
	}
	return "unknown_service"
}

// Traces adds what td says to b. now is the processing time.
func (x *Extractor) Traces(td ptrace.Traces, now time.Time, b *detect.Batch) {
	bi := batchIndex{edges: map[[2]string]int{}, services: map[string]int{}}
	var ops []joinOp
	var f facts
	var spans, noCallee uint64
	nsSeen := map[string]bool{}
	for _, rs := range td.ResourceSpans().All() {
		svc := serviceName(rs.Resource())
		addNamespace(b, nsSeen, svc, rs.Resource())
		for _, ss := range rs.ScopeSpans().All() {
			for _, sp := range ss.Spans().All() {
				spans++
				kind := sp.Kind()
				if kind != ptrace.SpanKindClient && kind != ptrace.SpanKindProducer &&
					kind != ptrace.SpanKindServer && kind != ptrace.SpanKindConsumer {
					continue
				}
				f.read(sp.Attributes())
				o := f.outcome(sp.Status().Code())
				if o.Failed && o.Class == detect.ClassOther && f.errorType == "" {
					if o.Class = exceptionClass(sp.Events()); o.Class == detect.ClassTimeout && f.httpStatus < 0 {
						o.OwnTimeout = true
					}
				}
				failed := o.Failed
				ms := 0.0
				if e, s := sp.EndTimestamp(), sp.StartTimestamp(); e > s {
					ms = float64(e-s) / 1e6
				}
				if kind == ptrace.SpanKindServer || kind == ptrace.SpanKindConsumer {
					d := bi.service(b, svc)
					o.Retry, o.OwnTimeout = false, false
					d.Observe(ms, o)
					if failed && d.ErrTrace == ([16]byte{}) {
						d.ErrTrace = sp.TraceID()
					}
					if x.sampled(sp.SpanID()) {
						ops = append(ops, joinOp{server: true, service: svc, id: idKey(sp.SpanID()), other: idKey(sp.ParentSpanID()), failed: failed, trace: sp.TraceID()})
					}
					continue
				}
				callee := f.callee()
				if callee == "" {
					noCallee++
					continue
				}
				retry := f.resend > 0
				o.Retry = retry
				d := bi.edge(b, svc, callee)
				d.Observe(ms, o)
				if failed && d.ErrTrace == ([16]byte{}) {
					d.ErrTrace = sp.TraceID()
				}
				if x.sampled(sp.ParentSpanID()) {
					ops = append(ops, joinOp{service: svc, callee: callee, id: idKey(sp.ParentSpanID()), other: idKey(sp.SpanID()), failed: failed, retry: retry,
						learn: x.sampled(sp.SpanID())})
				}
			}
		}
	}
	x.join(now, ops, b, &bi)
	x.mu.Lock()
	x.stats.Spans += spans
	x.stats.NoCallee += noCallee
	x.mu.Unlock()
}

// join applies the batch's join operations: client spans wait in the cache
// for their parent's server span; a server span completes its entry.
func (x *Extractor) join(now time.Time, ops []joinOp, b *detect.Batch, bi *batchIndex) {
	if len(ops) == 0 {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if now.Sub(x.rotated) >= x.set.JoinTTL {
		x.stats.Expired += uint64(len(x.prev))
		x.prev, x.cur = x.cur, make(map[uint64]*joinEntry, len(x.cur))
		x.prevCl, x.clients = x.clients, make(map[uint64]clientRef, len(x.clients))
		x.rotated = now
	}
	// Clients first: a batch often holds a request's children and its server span.
	for i := range ops {
		op := &ops[i]
		if op.server {
			continue
		}
		e := x.cur[op.id]
		if e == nil {
			e = x.prev[op.id]
		}
		if e == nil {
			if len(x.cur) >= x.set.MaxJoinEntries {
				x.stats.JoinDropped++
				continue
			}
			e = &joinEntry{service: op.service}
			x.cur[op.id] = e
		}
		var c *joinCall
		for j := 0; j < e.n; j++ {
			if e.calls[j].callee == op.callee {
				c = &e.calls[j]
				break
			}
		}
		if c == nil {
			if e.n == len(e.calls) {
				continue
			}
			e.calls[e.n] = joinCall{callee: op.callee}
			c = &e.calls[e.n]
			e.n++
		}
		c.attempts++
		if op.retry {
			c.flags++
		}
		if op.failed {
			c.failures++
		}
		if op.learn && !x.learned[op.callee] && op.callee != op.service && len(x.clients) < x.set.MaxJoinEntries {
			x.clients[op.other] = clientRef{caller: op.service, callee: op.callee}
		}
	}
	for i := range ops {
		op := &ops[i]
		if !op.server {
			continue
		}
		// Alias: this server span's parent is a client span of another service.
		if ref, ok := x.clients[op.other]; ok || x.lookupPrevClient(op.other, &ref) {
			if ref.caller != op.service && !x.learned[ref.callee] && ref.callee != op.service {
				if len(x.learned) < 4*x.set.MaxJoinEntries {
					x.learned[strings.Clone(ref.callee)] = true
				}
				b.Aliases = append(b.Aliases, detect.Alias{Callee: ref.callee, Service: op.service})
			}
			delete(x.clients, op.other)
		}
		e := x.cur[op.id]
		if e != nil {
			delete(x.cur, op.id)
		} else if e = x.prev[op.id]; e != nil {
			delete(x.prev, op.id)
		}
		sd := bi.service(b, op.service)
		sd.Joined++
		if e == nil || e.service != op.service {
			if op.failed {
				sd.JoinedErr++
				sd.OwnErrors++
			}
			continue
		}
		childFailed := false
		for j := 0; j < e.n; j++ {
			c := &e.calls[j]
			d := bi.edge(b, op.service, c.callee)
			d.JoinedParents++
			d.JoinedCalls += uint32(c.attempts)
			if extra := int(c.attempts) - 1 - int(c.flags); extra > 0 {
				d.Retries += uint32(extra)
			}
			if c.failures > 0 && c.failures == c.attempts {
				childFailed = true
				d.JoinedErr++
				if op.failed {
					d.JoinedPropagated++
				}
			}
		}
		if op.failed {
			sd.JoinedErr++
			if !childFailed {
				sd.OwnErrors++
			}
		}
	}
}

func (x *Extractor) lookupPrevClient(id uint64, ref *clientRef) bool {
	r, ok := x.prevCl[id]
	if ok {
		*ref = r
		delete(x.prevCl, id)
	}
	return ok
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
