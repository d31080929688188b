package tailsamplingprocessor

import (
	"encoding/binary"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigilhq/vigil/processors/tailsamplingprocessor/internal/buffer"
	"github.com/vigilhq/vigil/processors/tailsamplingprocessor/internal/store"
)

// ingest is the per-call scratch of ConsumeTraces, pooled: spans grouped by
// trace (per resource and scope, as segments are), encoded, and summarised,
// all before the lock is taken.
type ingest struct {
	hdr    []byte // resource+scope encodings, one per (resource, scope)
	spans  []byte // encoded spans
	recs   []rec
	groups []group
	idx    map[[16]byte]int32 // trace ID -> its latest group
	seg    []byte
	tmp    []byte
}

// rec is one encoded span, linked to the next of its group.
type rec struct {
	off, end       uint32 // byte range in spans
	startNs, endNs uint64
	next           int32
}

// group is the spans of one trace from one resource and scope of a batch.
type group struct {
	tid            [16]byte
	rs, ss         int32
	hdrOff, hdrEnd uint32
	first, last    int32
	n              uint32
	ssBody         int // OTLP size of the group's ScopeSpans body (when sizes are needed)
	sum            store.Summary
}

func (w *ingest) reset() {
	w.hdr, w.spans, w.recs, w.groups, w.seg = w.hdr[:0], w.spans[:0], w.recs[:0], w.groups[:0], w.seg[:0]
	clear(w.idx)
	if cap(w.spans) > 16<<20 {
		w.spans, w.recs, w.groups, w.hdr = nil, nil, nil, nil
	}
}

var marshaler = &ptrace.ProtoMarshaler{}

func varintLen(n int) int {
	l := 1
	for n >= 0x80 {
		n >>= 7
		l++
	}
	return l
}

// collect encodes and summarises td's spans into groups.
func (w *ingest) collect(td ptrace.Traces, p *sampler, now time.Time) {
	comp := p.comp
	spanPreds, resPreds, latency := comp.HasSpanPredicates(), comp.HasResourcePredicates(), comp.HasLatency()
	for ri, rs := range td.ResourceSpans().All() {
		w.tmp = buffer.AppendResource(w.tmp[:0], rs.Resource(), rs.SchemaUrl())
		var resBits uint64
		if resPreds {
			resBits = comp.ResourceBits(rs.Resource().Attributes())
		}
		rsGroups := len(w.groups)
		var resField int
		if p.needSize {
			t := ptrace.NewResourceSpans()
			rs.Resource().CopyTo(t.Resource())
			resField = marshaler.ResourceSpansSize(t)
		}
		for si, ss := range rs.ScopeSpans().All() {
			hdrOff := uint32(len(w.hdr))
			w.hdr = append(w.hdr, w.tmp...)
			w.hdr = buffer.AppendScope(w.hdr, ss.Scope(), ss.SchemaUrl())
			hdrEnd := uint32(len(w.hdr))
			ssGroups := len(w.groups)
			for _, sp := range ss.Spans().All() {
				tid := [16]byte(sp.TraceID())
				gi, ok := w.idx[tid]
				if !ok || w.groups[gi].rs != int32(ri) || w.groups[gi].ss != int32(si) {
					w.groups = append(w.groups, group{tid: tid, rs: int32(ri), ss: int32(si), hdrOff: hdrOff, hdrEnd: hdrEnd, first: -1, last: -1})
					gi = int32(len(w.groups) - 1)
					w.idx[tid] = gi
					w.groups[gi].sum.Matched = resBits
					w.groups[gi].sum.FirstSeen = now.UnixNano()
				}
				g := &w.groups[gi]
				off := uint32(len(w.spans))
				w.spans = buffer.AppendSpan(w.spans, sp)
				start, end := uint64(sp.StartTimestamp()), uint64(sp.EndTimestamp())
				w.recs = append(w.recs, rec{off: off, end: uint32(len(w.spans)), startNs: start, endNs: end, next: -1})
				r := int32(len(w.recs) - 1)
				if g.last >= 0 {
					w.recs[g.last].next = r
				} else {
					g.first = r
				}
				g.last = r
				g.n++
				s := &g.sum
				s.SpanCount++
				switch sp.Status().Code() {
				case ptrace.StatusCodeError:
					s.Status |= store.StatusError
				case ptrace.StatusCodeOk:
					s.Status |= store.StatusOK
				default:
					s.Status |= store.StatusUnset
				}
				if sp.ParentSpanID().IsEmpty() {
					s.Root = true
				}
				if !latency {
					comp.ObserveTimes(s, start, end)
				}
				if spanPreds {
					m, e := comp.SpanBits(sp, ss, rs)
					comp.MergeSpan(s, m, e)
				}
				if p.needSize {
					n := marshaler.SpanSize(sp)
					g.ssBody += 1 + varintLen(n) + n
				}
			}
			if p.needSize && len(w.groups) > ssGroups {
				t := ptrace.NewScopeSpans()
				ss.Scope().CopyTo(t.Scope())
				scopeField := marshaler.ScopeSpansSize(t)
				for gi := ssGroups; gi < len(w.groups); gi++ {
					w.groups[gi].ssBody += scopeField
				}
			}
		}
		if p.needSize {
			// Upstream's unit is one trace's spans of one resource (its
			// "batch"): the size of that ResourceSpans, counted on the
			// trace's first group of the resource.
			firstOf := map[[16]byte]int{}
			body := map[[16]byte]int{}
			for gi := rsGroups; gi < len(w.groups); gi++ {
				g := &w.groups[gi]
				if _, ok := firstOf[g.tid]; !ok {
					firstOf[g.tid] = gi
					body[g.tid] = resField
				}
				body[g.tid] += 1 + varintLen(g.ssBody) + g.ssBody
			}
			for tid, gi := range firstOf {
				b := body[tid]
				w.groups[gi].sum.Bytes += uint64(b)
				w.groups[gi].sum.TracesBytes += uint64(1 + varintLen(b) + b)
			}
		}
	}
}

// eachSegment calls yield with the group's spans as segments, each split
// into its header (resource and scope) and body (span count and spans), the
// body at most max bytes unless one span alone is larger. The slices are
// valid until the next call.
func (w *ingest) eachSegment(g *group, max int, yield func(hdr, body []byte)) {
	hdr := w.hdr[g.hdrOff:g.hdrEnd]
	r := g.first
	for r >= 0 {
		// Take spans while the body fits.
		n, size := 0, binary.MaxVarintLen32
		end := r
		for k := r; k >= 0; k = w.recs[k].next {
			l := int(w.recs[k].end - w.recs[k].off)
			if n > 0 && size+l > max {
				break
			}
			size += l
			n++
			end = w.recs[k].next
		}
		w.seg = binary.AppendUvarint(w.seg[:0], uint64(n))
		for k := r; k != end; k = w.recs[k].next {
			w.seg = append(w.seg, w.spans[w.recs[k].off:w.recs[k].end]...)
		}
		yield(hdr, w.seg)
		r = end
	}
}
