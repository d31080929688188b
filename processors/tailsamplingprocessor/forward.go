package tailsamplingprocessor

import (
	"context"
	"encoding/binary"
	"math"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.uber.org/zap"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/sampling"

	"github.com/vigilhq/vigil/processors/tailsamplingprocessor/internal/buffer"
	"github.com/vigilhq/vigil/processors/tailsamplingprocessor/internal/policy"
)

// takeOut hands the pending output to the caller. Locked.
func (p *sampler) takeOut() []byte {
	out := p.out
	p.out, p.spare = p.spare[:0], nil
	return out
}

// forwardChunk bounds the encoded span bytes decoded into one request. A
// decoded span takes several times its encoded size on the Go heap, outside
// the byte budget, so a tick that samples much of the buffer at once (a
// burst of traces finishing together, a restore) is sent as several
// requests, never one as large as the buffer (measured: 24 MiB of buffered
// spans decoded at once grew the heap by 260 MiB).
const forwardChunk = 4 << 20

// forward decodes sampled spans and sends them on, at most forwardChunk
// encoded bytes per request.
func (p *sampler) forward(ctx context.Context, out []byte) {
	all := out
	const head = 16 + 8 + 4
	for len(out) > head {
		td := ptrace.NewTraces()
		dec := buffer.NewDecoder(td)
		used := 0
		prevRec := uint32(0)
		for len(out) > head && used < forwardChunk {
			id := pcommon.TraceID(out[:16])
			th := binary.LittleEndian.Uint64(out[16:])
			rec := binary.LittleEndian.Uint32(out[24:])
			if rec != prevRec {
				// Spans of traces kept by different policies must not
				// share a scope: the record is a scope attribute.
				dec.Break()
				prevRec = rec
			}
			n, k := binary.Uvarint(out[head:])
			if k <= 0 || uint64(len(out)-head-k) < n {
				out = nil
				break
			}
			seg := out[head+k : head+k+int(n)]
			if err := dec.Segment(seg, id); err != nil {
				p.logger.Error("cannot decode buffered spans", zap.Error(err))
			} else {
				if th != noThreshold {
					writeThreshold(dec, th)
				}
				if rec != 0 {
					p.writeRecord(dec.LastScope(), rec)
				}
			}
			out = out[head+k+int(n):]
			used += head + k + int(n)
		}
		if td.SpanCount() == 0 {
			continue
		}
		if err := p.next.ConsumeTraces(ctx, td); err != nil {
			p.tel.ProcessorTailSamplingExportFailed.Add(ctx, int64(td.SpanCount()))
			p.logger.Warn("the next component refused sampled spans", zap.Int("spans", td.SpanCount()), zap.Error(err))
		}
	}
	p.recycle(all[:0])
}

func (p *sampler) recycle(b []byte) {
	if cap(b) == 0 || cap(b) > 8<<20 {
		return
	}
	p.mu.Lock()
	if p.spare == nil {
		p.spare = b[:0]
	}
	p.mu.Unlock()
}

// noThreshold marks forwarded spans that get no sampling threshold written
// (late spans following a cached decision).
const noThreshold = math.MaxUint64

// appendOut queues a segment of a sampled trace for forwarding, with the
// threshold and the record (see record) to write on its spans. Locked.
func (p *sampler) appendOut(id [16]byte, th uint64, rec uint32, hdr, body []byte) {
	p.out = append(p.out, id[:]...)
	p.out = binary.LittleEndian.AppendUint64(p.out, th)
	p.out = binary.LittleEndian.AppendUint32(p.out, rec)
	p.out = binary.AppendUvarint(p.out, uint64(len(hdr)+len(body)))
	p.out = append(p.out, hdr...)
	p.out = append(p.out, body...)
}

// writeThreshold sets the OTEP 235 threshold (tracestate ot=th) on the spans
// the decoder just added, never raising a span's sampling probability; a
// tracestate that does not parse is left alone.
func writeThreshold(dec *buffer.Decoder, unsigned uint64) {
	th, err := sampling.UnsignedToThreshold(unsigned)
	if err != nil {
		return
	}
	spans, from := dec.Last()
	var b strings.Builder
	for k := from; k < spans.Len(); k++ {
		sp := spans.At(k)
		ts, err := sampling.NewW3CTraceState(sp.TraceState().AsRaw())
		if err != nil || ts.OTelValue().UpdateTValueWithSampling(th) != nil {
			continue
		}
		b.Reset()
		if ts.Serialize(&b) == nil {
			sp.TraceState().FromRaw(b.String())
		}
	}
}

// A record says what kept a trace, for the scope attributes upstream's
// recordpolicy gate writes: the top-level policy (index+1 in the low 15
// bits), the composite sub-policy (compNames index+1 in the next 16) and
// whether a late span followed a cached decision (the top bit). 0: nothing
// to write.
const (
	recPolicyMask = 1<<15 - 1
	recCompShift  = 15
	recCompMask   = 1<<16 - 1
	recCached     = 1 << 31
)

// record encodes what sampled a trace: top-level policy by, and the
// composite sub-policy t names; 0 when recording is off.
func (p *sampler) record(by int, t *policy.Trace) uint32 {
	if !p.recordPolicy || by < 0 || by >= recPolicyMask {
		return 0
	}
	rec := uint32(by + 1)
	if c, ok := p.compRef[t.Composite]; ok && t.Composite != "" && c <= recCompMask {
		rec |= c << recCompShift
	}
	return rec
}

// writeRecord sets rec's scope attributes on ss.
func (p *sampler) writeRecord(ss ptrace.ScopeSpans, rec uint32) {
	attrs := ss.Scope().Attributes()
	if i := int(rec & recPolicyMask); i > 0 && i <= len(p.policies) {
		attrs.PutStr("tailsampling.policy", p.policies[i-1].Name)
	}
	if c := int(rec >> recCompShift & recCompMask); c > 0 && c <= len(p.compNames) {
		attrs.PutStr("tailsampling.composite_policy", p.compNames[c-1])
	}
	if rec&recCached != 0 {
		attrs.PutBool("tailsampling.cached_decision", true)
	}
}
