package promrw

import (
	"math"

	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

type pendKey struct {
	metric int32
	t      int64
	h      uint64
}

// pendPoint gathers a classic histogram or summary point from its series.
type pendPoint struct {
	metric        int32
	t, start      int64
	labels        []prompb.Label
	next          int32 // collision chain within pendIdx
	sum, count    float64
	hasSum, hasCt bool
	stale         bool
	vals          int32 // head of the bucket/quantile list in batch.vals
	exs           int32 // head of the exemplar list in batch.exs
}

type pendVal struct {
	bound, v float64
	label    string // the le or quantile value as sent
	next     int32
}

type pendEx struct {
	ex   exemplar
	next int32
}

// emitClassic adds the samples of one histogram or summary component series
// to the pending points they belong to.
func (b *batch) emitClassic(s *series, mi int32, bound float64, samples []sample, exs []exemplar) {
	label := s.le
	if s.role == roleQuantile {
		label = s.quantile
	}
	h := b.hashLabels(s.fam, s.labels)
	for _, sm := range samples {
		p := b.pendFor(mi, sm.t, h, s.labels)
		if value.IsStaleNaN(sm.v) {
			p.stale = true
		}
		if sm.start > 0 {
			p.start = sm.start
		}
		switch s.role {
		case roleBucket, roleQuantile:
			b.vals = append(b.vals, pendVal{bound: bound, v: sm.v, label: label, next: p.vals})
			p.vals = int32(len(b.vals) - 1)
		case roleSum:
			p.sum, p.hasSum = sm.v, true
		case roleCount:
			p.count, p.hasCt = sm.v, true
		}
	}
	if len(samples) > 0 && len(exs) > 0 {
		p := b.pendFor(mi, samples[len(samples)-1].t, h, s.labels)
		for _, e := range exs {
			b.pexs = append(b.pexs, pendEx{ex: e, next: p.exs})
			p.exs = int32(len(b.pexs) - 1)
		}
	}
}

func (b *batch) pendFor(mi int32, t int64, h uint64, ls []prompb.Label) *pendPoint {
	k := pendKey{mi, t, h}
	head, ok := b.pendIdx[k]
	if ok {
		for i := head; i >= 0; i = b.pend[i].next {
			if sameIdentity(b.pend[i].labels, ls) {
				return &b.pend[i]
			}
		}
	} else {
		head = -1
	}
	b.pend = append(b.pend, pendPoint{metric: mi, t: t, labels: ls, next: head, vals: -1, exs: -1})
	i := int32(len(b.pend) - 1)
	b.pendIdx[k] = i
	return &b.pend[i]
}

// finishClassic turns the pending points into histogram and summary points.
func (b *batch) finishClassic() {
	for i := range b.pend {
		p := &b.pend[i]
		ms := b.metrics[p.metric]
		vals := b.sortBuf[:0]
		for j := p.vals; j >= 0; j = b.vals[j].next {
			vals = append(vals, b.vals[j])
		}
		sortVals(vals)
		b.sortBuf = vals
		if !p.hasCt || (ms.kind == kSummary && !p.hasSum) {
			b.splitClassic(p, ms, vals)
			continue
		}
		start := p.start
		if start == 0 {
			start = b.startFor(ms.m.Name(), p.labels)
		}
		var exs pmetric.ExemplarSlice
		if ms.kind == kHistogram {
			dp := ms.m.Histogram().DataPoints().AppendEmpty()
			putAttrs(dp.Attributes(), p.labels, kHistogram)
			dp.SetTimestamp(msToTs(p.t))
			if start > 0 {
				dp.SetStartTimestamp(msToTs(start))
			}
			if p.stale {
				dp.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
			} else {
				b.fillHistogram(dp, p, vals)
			}
			exs = dp.Exemplars()
		} else {
			dp := ms.m.Summary().DataPoints().AppendEmpty()
			putAttrs(dp.Attributes(), p.labels, kSummary)
			dp.SetTimestamp(msToTs(p.t))
			if start > 0 {
				dp.SetStartTimestamp(msToTs(start))
			}
			if p.stale {
				dp.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
			} else {
				dp.SetCount(toCount(p.count))
				dp.SetSum(p.sum)
				qs := dp.QuantileValues()
				qs.EnsureCapacity(len(vals))
				for k, v := range vals {
					if k > 0 && v.bound == vals[k-1].bound {
						continue
					}
					q := qs.AppendEmpty()
					q.SetQuantile(v.bound)
					q.SetValue(v.v)
				}
			}
		}
		for j := p.exs; j >= 0; j = b.pexs[j].next {
			b.addExemplars(exs, []exemplar{b.pexs[j].ex})
		}
		b.stats.DataPoints++
	}
}

func (b *batch) fillHistogram(dp pmetric.HistogramDataPoint, p *pendPoint, vals []pendVal) {
	dp.SetCount(toCount(p.count))
	if p.hasSum {
		dp.SetSum(p.sum)
	}
	bounds := dp.ExplicitBounds()
	counts := dp.BucketCounts()
	bounds.EnsureCapacity(len(vals))
	counts.EnsureCapacity(len(vals) + 1)
	prev := 0.0
	for k, v := range vals {
		if k > 0 && v.bound == vals[k-1].bound {
			continue // a duplicate le: keep the first
		}
		if math.IsInf(v.bound, +1) {
			break
		}
		bounds.Append(v.bound)
		counts.Append(toCount(v.v - prev))
		prev = max(prev, v.v)
	}
	// The overflow bucket: what _count has beyond the last finite bound.
	counts.Append(toCount(p.count - prev))
}

// toCount converts a Prometheus float count to OTLP's unsigned count,
// clamping the negatives that inconsistent bucket series can produce.
func toCount(v float64) uint64 {
	if !(v > 0) || math.IsInf(v, 0) {
		return 0
	}
	if v >= math.MaxUint64 {
		return math.MaxUint64
	}
	return uint64(math.Round(v))
}

func sortVals(v []pendVal) {
	// Insertion sort: a family has a handful of buckets, usually already in
	// order, and this avoids the closure sort.Slice would allocate.
	for i := 1; i < len(v); i++ {
		for j := i; j > 0 && v[j].bound < v[j-1].bound; j-- {
			v[j], v[j-1] = v[j-1], v[j]
		}
	}
}

// splitClassic forwards an incomplete classic histogram or summary point
// as the gauges it arrived as (name_bucket{le}, name{quantile}, name_sum,
// name_count), with the values and label values as sent.
//
// The compatibility spec drops a point without _count, but over remote write
// a missing series usually means Prometheus put it in another request (its
// shards split a family's series at random), not that it does not exist.
// Dropping would lose data, and synthesising the missing parts (a zero sum)
// would write values the source never had. As gauges, the parts land in a
// Prometheus-compatible backend under their original names and values, next
// to the parts that did form a point in the other request; an OTLP consumer
// sees a histogram with coarser buckets or a summary with fewer quantiles,
// plus these gauges. Counted in Stats.Split.
func (b *batch) splitClassic(p *pendPoint, ms metricState, vals []pendVal) {
	b.stats.Split++
	fam := ms.m.Name()
	md := familyMeta{typ: typeNone, help: ms.m.Description()}
	add := func(name, extraKey, extraVal string, v float64) {
		mi := b.metric(ms.scope, kGauge, name, md)
		dp := b.metrics[mi].m.Gauge().DataPoints().AppendEmpty()
		attrs := dp.Attributes()
		putAttrs(attrs, p.labels, ms.kind)
		if extraKey != "" {
			attrs.PutStr(extraKey, extraVal)
		}
		dp.SetTimestamp(msToTs(p.t))
		if value.IsStaleNaN(v) {
			dp.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
		} else {
			dp.SetDoubleValue(v)
		}
		b.stats.DataPoints++
	}
	for _, v := range vals {
		if ms.kind == kHistogram {
			add(fam+"_bucket", labelLe, v.label, v.v)
		} else {
			add(fam, labelQuantile, v.label, v.v)
		}
	}
	if p.hasSum {
		add(fam+"_sum", "", "", p.sum)
	}
	if p.hasCt {
		add(fam+"_count", "", "", p.count)
	}
	b.pruneEmpty = true
}

// prune removes metrics, scopes and resources left without points (a
// histogram whose only point was split into gauges).
func (b *batch) prune() {
	b.out.ResourceMetrics().RemoveIf(func(rm pmetric.ResourceMetrics) bool {
		rm.ScopeMetrics().RemoveIf(func(sm pmetric.ScopeMetrics) bool {
			sm.Metrics().RemoveIf(func(m pmetric.Metric) bool {
				switch m.Type() {
				case pmetric.MetricTypeHistogram:
					return m.Histogram().DataPoints().Len() == 0
				case pmetric.MetricTypeSummary:
					return m.Summary().DataPoints().Len() == 0
				}
				return false
			})
			return sm.Metrics().Len() == 0
		})
		return rm.ScopeMetrics().Len() == 0
	})
}
