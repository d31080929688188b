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
	const head = 16 + 8
	for len(out) > head {
		td := ptrace.NewTraces()
		dec := buffer.NewDecoder(td)
		used := 0
		for len(out) > head && used < forwardChunk {
			id := pcommon.TraceID(out[:16])
			th := binary.LittleEndian.Uint64(out[16:])
			n, k := binary.Uvarint(out[head:])
			if k <= 0 || uint64(len(out)-head-k) < n {
				out = nil
				break
			}
			seg := out[head+k : head+k+int(n)]
			if err := dec.Segment(seg, id); err != nil {
				p.logger.Error("cannot decode buffered spans", zap.Error(err))
			} else if th != noThreshold {
				writeThreshold(dec, th)
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

// appendOut queues a segment of a sampled trace for forwarding. Locked.
func (p *sampler) appendOut(id [16]byte, th uint64, hdr, body []byte) {
	p.out = append(p.out, id[:]...)
	p.out = binary.LittleEndian.AppendUint64(p.out, th)
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
