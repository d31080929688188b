package promrw

import (
	"fmt"
	"math"

	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// customBucketsSchema is the native histogram schema with custom bucket
// bounds (NHCB); it maps to an OTLP explicit-bucket histogram.
const customBucketsSchema = -53

type span struct {
	off int32
	n   uint32
}

// nativeHist is a native histogram sample of either version.
type nativeHist struct {
	isFloat              bool
	countInt, zeroInt    uint64
	countFloat, zeroFl   float64
	sum, zeroThreshold   float64
	schema               int32
	neg, pos             []span
	negDeltas, posDeltas []int64
	negCounts, posCounts []float64
	gauge                bool
	t, start             int64
	custom               []float64
}

// nativeBudget bounds the dense buckets all native histograms of a request
// may expand to: spans encode gaps in a few bytes, so without a budget a
// small request could demand gigabytes of zero buckets. Dense buckets stay
// within a small multiple of what the request actually encodes.
func nativeBudget(encoded, hists int) int {
	return 4*encoded + 64*hists + 1024
}

func (b *batch) v1Natives(in []prompb.Histogram) []nativeHist {
	out := b.natives[:0]
	for i := range in {
		h := &in[i]
		n := nativeHist{
			isFloat: isFloatCount(h.Count),
			sum:     h.Sum, zeroThreshold: h.ZeroThreshold, schema: h.Schema,
			negDeltas: h.NegativeDeltas, posDeltas: h.PositiveDeltas,
			negCounts: h.NegativeCounts, posCounts: h.PositiveCounts,
			gauge: h.ResetHint == prompb.Histogram_GAUGE,
			t:     h.Timestamp, custom: h.CustomValues,
		}
		n.countInt, n.countFloat = h.GetCountInt(), h.GetCountFloat()
		n.zeroInt, n.zeroFl = h.GetZeroCountInt(), h.GetZeroCountFloat()
		start := len(b.spans)
		for _, s := range h.NegativeSpans {
			b.spans = append(b.spans, span{s.Offset, s.Length})
		}
		mid := len(b.spans)
		for _, s := range h.PositiveSpans {
			b.spans = append(b.spans, span{s.Offset, s.Length})
		}
		n.neg, n.pos = b.spans[start:mid:mid], b.spans[mid:len(b.spans):len(b.spans)]
		out = append(out, n)
	}
	b.natives = out
	return out
}

func isFloatCount(c any) bool {
	_, ok := c.(*prompb.Histogram_CountFloat)
	return ok
}

func (b *batch) v2Natives(in []writev2.Histogram) []nativeHist {
	out := b.natives[:0]
	for i := range in {
		h := &in[i]
		n := nativeHist{
			isFloat: h.IsFloatHistogram(),
			sum:     h.Sum, zeroThreshold: h.ZeroThreshold, schema: h.Schema,
			negDeltas: h.NegativeDeltas, posDeltas: h.PositiveDeltas,
			negCounts: h.NegativeCounts, posCounts: h.PositiveCounts,
			gauge: h.ResetHint == writev2.Histogram_RESET_HINT_GAUGE,
			t:     h.Timestamp, start: max(h.StartTimestamp, 0), custom: h.CustomValues,
		}
		n.countInt, n.countFloat = h.GetCountInt(), h.GetCountFloat()
		n.zeroInt, n.zeroFl = h.GetZeroCountInt(), h.GetZeroCountFloat()
		start := len(b.spans)
		for _, s := range h.NegativeSpans {
			b.spans = append(b.spans, span{s.Offset, s.Length})
		}
		mid := len(b.spans)
		for _, s := range h.PositiveSpans {
			b.spans = append(b.spans, span{s.Offset, s.Length})
		}
		n.neg, n.pos = b.spans[start:mid:mid], b.spans[mid:len(b.spans):len(b.spans)]
		out = append(out, n)
	}
	b.natives = out
	return out
}

// emitNative converts the native histogram samples of one series: standard
// schemas to OTLP exponential histograms, custom buckets to explicit ones,
// gauge histograms dropped (the spec drops GaugeHistogram).
func (b *batch) emitNative(s *series, hs []nativeHist, exs []exemplar) {
	var lastExp pmetric.ExponentialHistogramDataPoint
	var lastExplicit pmetric.HistogramDataPoint
	var haveExp, haveExplicit bool
	for i := range hs {
		h := &hs[i]
		if h.gauge {
			b.stats.Dropped++
			continue
		}
		stale := value.IsStaleNaN(h.sum)
		if h.schema == customBucketsSchema {
			dp, ok := b.nativeCustom(s, h, stale)
			if !ok {
				return
			}
			lastExplicit, haveExplicit, haveExp = dp, true, false
		} else {
			dp, ok := b.nativeExp(s, h, stale)
			if !ok {
				return
			}
			lastExp, haveExp, haveExplicit = dp, true, false
		}
		b.stats.WrittenHistograms++
		b.stats.DataPoints++
	}
	switch {
	case haveExp:
		b.addExemplars(lastExp.Exemplars(), exs)
	case haveExplicit:
		b.addExemplars(lastExplicit.Exemplars(), exs)
	}
}

func (h *nativeHist) count() uint64 {
	if h.isFloat {
		return toCount(h.countFloat)
	}
	return h.countInt
}

func (h *nativeHist) zeroCount() uint64 {
	if h.isFloat {
		return toCount(h.zeroFl)
	}
	return h.zeroInt
}

func (b *batch) nativeExp(s *series, h *nativeHist, stale bool) (pmetric.ExponentialHistogramDataPoint, bool) {
	var dp pmetric.ExponentialHistogramDataPoint
	if h.schema < -4 || h.schema > 8 {
		b.invalid(s, "native histogram schema %d is outside [-4, 8] and not custom buckets (-53)", h.schema)
		return dp, false
	}
	posOff, pos, err := b.expand(b.pos[:0], h.pos, h.posDeltas, h.posCounts, h.isFloat)
	b.pos = pos
	if err != nil {
		b.invalid(s, "positive buckets: %v", err)
		return dp, false
	}
	negOff, neg, err := b.expand(b.neg[:0], h.neg, h.negDeltas, h.negCounts, h.isFloat)
	b.neg = neg
	if err != nil {
		b.invalid(s, "negative buckets: %v", err)
		return dp, false
	}
	mi := b.metric(b.seriesScope(s), kExpHistogram, s.name, s.md)
	dp = b.metrics[mi].m.ExponentialHistogram().DataPoints().AppendEmpty()
	putAttrs(dp.Attributes(), s.labels, kExpHistogram)
	dp.SetTimestamp(msToTs(h.t))
	if h.start > 0 {
		dp.SetStartTimestamp(msToTs(h.start))
	}
	if stale {
		dp.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
		return dp, true
	}
	dp.SetScale(h.schema)
	dp.SetCount(h.count())
	dp.SetSum(h.sum)
	dp.SetZeroCount(h.zeroCount())
	dp.SetZeroThreshold(h.zeroThreshold)
	if len(pos) > 0 {
		dp.Positive().SetOffset(posOff)
		dp.Positive().BucketCounts().FromRaw(pos)
	}
	if len(neg) > 0 {
		dp.Negative().SetOffset(negOff)
		dp.Negative().BucketCounts().FromRaw(neg)
	}
	return dp, true
}

func (b *batch) nativeCustom(s *series, h *nativeHist, stale bool) (pmetric.HistogramDataPoint, bool) {
	var dp pmetric.HistogramDataPoint
	for i, v := range h.custom {
		if math.IsNaN(v) || math.IsInf(v, 0) || (i > 0 && v <= h.custom[i-1]) {
			b.invalid(s, "custom bucket bounds must be finite and strictly increasing")
			return dp, false
		}
	}
	if len(h.neg) > 0 {
		b.invalid(s, "custom-bucket histogram has negative buckets")
		return dp, false
	}
	off, pos, err := b.expand(b.pos[:0], h.pos, h.posDeltas, h.posCounts, h.isFloat)
	b.pos = pos
	if err != nil {
		b.invalid(s, "custom buckets: %v", err)
		return dp, false
	}
	// expand reports the OTLP exponential offset (index-1); undo it.
	first := int(off) + 1
	if len(pos) > 0 && (first < 0 || first+len(pos) > len(h.custom)+1) {
		b.invalid(s, "custom bucket index out of range of %d bounds", len(h.custom))
		return dp, false
	}
	mi := b.metric(b.seriesScope(s), kHistogram, s.name, s.md)
	dp = b.metrics[mi].m.Histogram().DataPoints().AppendEmpty()
	putAttrs(dp.Attributes(), s.labels, kHistogram)
	dp.SetTimestamp(msToTs(h.t))
	if h.start > 0 {
		dp.SetStartTimestamp(msToTs(h.start))
	}
	if stale {
		dp.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
		return dp, true
	}
	dp.SetCount(h.count())
	dp.SetSum(h.sum)
	dp.ExplicitBounds().FromRaw(h.custom)
	counts := dp.BucketCounts()
	counts.EnsureCapacity(len(h.custom) + 1)
	for i := 0; i <= len(h.custom); i++ {
		var c uint64
		if j := i - first; len(pos) > 0 && j >= 0 && j < len(pos) {
			c = pos[j]
		}
		counts.Append(c)
	}
	return dp, true
}

// expand turns spans plus deltas (integer histograms) or absolute counts
// (float histograms) into dense bucket counts, filling gaps with zeros. It
// returns the OTLP offset: Prometheus bucket i covers (base^(i-1), base^i],
// OTLP bucket k covers (base^k, base^(k+1)], so k = i-1.
func (b *batch) expand(dst []uint64, spans []span, deltas []int64, counts []float64, isFloat bool) (int32, []uint64, error) {
	out := dst[:0]
	var encoded int64
	for _, sp := range spans {
		encoded += int64(sp.n)
	}
	have := int64(len(deltas))
	if isFloat {
		have = int64(len(counts))
	}
	if encoded != have {
		return 0, out, fmt.Errorf("spans hold %d buckets but %d counts are given", encoded, have)
	}
	if len(spans) == 0 {
		return 0, out, nil
	}
	first := int64(spans[0].off)
	idx := first
	limit := int64(b.t.opts.MaxNativeBuckets)
	var running int64
	k := 0
	for i, sp := range spans {
		if i > 0 {
			if sp.off < 0 {
				return 0, out, fmt.Errorf("span %d has negative offset %d", i, sp.off)
			}
			idx += int64(sp.off)
		}
		end := idx + int64(sp.n)
		dense := end - first
		if dense > limit {
			return 0, out, fmt.Errorf("spans cover %d buckets, more than the %d allowed", dense, limit)
		}
		grow := int(dense) - len(out)
		if grow > b.nativeBudget {
			return 0, out, fmt.Errorf("native histograms of this request expand beyond their bucket budget")
		}
		b.nativeBudget -= grow
		for int64(len(out)) < idx-first {
			out = append(out, 0)
		}
		for range sp.n {
			var c uint64
			if isFloat {
				v := counts[k]
				if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
					return 0, out, fmt.Errorf("bucket count %v is not a finite non-negative number", v)
				}
				c = toCount(v)
			} else {
				running += deltas[k]
				if running < 0 {
					return 0, out, fmt.Errorf("bucket count %d is negative", running)
				}
				c = uint64(running)
			}
			out = append(out, c)
			k++
		}
		idx = end
	}
	if first-1 < math.MinInt32 || first-1 > math.MaxInt32 {
		return 0, out, fmt.Errorf("bucket offset %d out of range", first)
	}
	return int32(first - 1), out, nil
}
