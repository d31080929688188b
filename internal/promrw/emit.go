package promrw

import (
	"math"
	"strconv"
	"strings"

	"github.com/prometheus/prometheus/model/value"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

type metricKey struct {
	scope int32
	kind  okind
	name  string
}

type metricState struct {
	m     pmetric.Metric
	kind  okind
	scope int32
}

// metric returns the index of the metric (scope, kind, name), creating it
// with the family's metadata.
func (b *batch) metric(scope int32, k okind, name string, md familyMeta) int32 {
	key := metricKey{scope, k, name}
	if b.lastIdx >= 0 && b.lastKey == key {
		return b.lastIdx
	}
	i, ok := b.metricIdx[key]
	if !ok {
		m := b.scopes[scope].Metrics().AppendEmpty()
		m.SetName(name)
		m.SetDescription(md.help)
		m.SetUnit(otelUnit(md.unit))
		m.Metadata().PutStr("prometheus.type", typeNames[md.typ])
		switch k {
		case kGauge:
			m.SetEmptyGauge()
		case kCounter:
			s := m.SetEmptySum()
			s.SetIsMonotonic(true)
			s.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		case kUpDown:
			s := m.SetEmptySum()
			s.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		case kHistogram:
			m.SetEmptyHistogram().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		case kSummary:
			m.SetEmptySummary()
		case kExpHistogram:
			m.SetEmptyExponentialHistogram().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		}
		i = int32(len(b.metrics))
		b.metrics = append(b.metrics, metricState{m: m, kind: k, scope: scope})
		b.metricIdx[key] = i
	}
	b.lastKey, b.lastIdx = key, i
	return i
}

// emit places the samples of one classified series into the output.
func (b *batch) emit(s *series, samples []sample, exs []exemplar) {
	switch s.role {
	case roleTargetInfo:
		b.targets[resKey{s.job, s.instance}] = s.labels
		b.stats.WrittenSamples += len(samples)
		return
	case roleScopeInfo:
		b.scopeAt[scopeInfoKey{resKey{s.job, s.instance}, s.scope, s.scopeV}] = s.labels
		b.stats.WrittenSamples += len(samples)
		return
	case roleDrop:
		b.stats.Dropped += len(samples)
		return
	case roleCreated:
		// Consumed in pass one as the start time of its family's points.
		b.stats.WrittenSamples += len(samples)
		return
	}
	var bound float64
	switch s.role {
	case roleBucket:
		v, err := strconv.ParseFloat(s.le, 64)
		if err != nil || math.IsNaN(v) {
			b.invalid(s, "le=%q is not a number", s.le)
			return
		}
		bound = v
	case roleQuantile:
		v, err := strconv.ParseFloat(s.quantile, 64)
		if err != nil || math.IsNaN(v) || v < 0 || v > 1 {
			b.invalid(s, "quantile=%q is not a number in [0, 1]", s.quantile)
			return
		}
		bound = v
	}
	mi := b.metric(b.seriesScope(s), s.kind, s.fam, s.md)
	b.stats.WrittenSamples += len(samples)
	if s.role == roleValue {
		b.emitNumbers(s, mi, samples, exs)
	} else {
		b.emitClassic(s, mi, bound, samples, exs)
	}
}

// seriesScope returns the scope of a series' resource, creating both.
func (b *batch) seriesScope(s *series) int32 {
	return b.scope(b.resource(s.job, s.instance), s.scope, s.scopeV)
}

func (b *batch) emitNumbers(s *series, mi int32, samples []sample, exs []exemplar) {
	ms := b.metrics[mi]
	var dps pmetric.NumberDataPointSlice
	if ms.kind == kGauge {
		dps = ms.m.Gauge().DataPoints()
	} else {
		dps = ms.m.Sum().DataPoints()
	}
	var start int64
	if ms.kind == kCounter {
		start = b.startFor(strings.TrimSuffix(s.name, "_total"), s.labels)
	}
	var dp pmetric.NumberDataPoint
	for i, sm := range samples {
		dp = dps.AppendEmpty()
		if i == 0 {
			putAttrs(dp.Attributes(), s.labels, ms.kind)
		} else {
			dps.At(dps.Len() - 2).Attributes().CopyTo(dp.Attributes())
		}
		dp.SetTimestamp(msToTs(sm.t))
		if st := max(sm.start, start); st > 0 {
			dp.SetStartTimestamp(msToTs(st))
		}
		if value.IsStaleNaN(sm.v) {
			dp.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
		} else {
			dp.SetDoubleValue(sm.v)
		}
	}
	b.stats.DataPoints += len(samples)
	if len(samples) > 0 {
		b.addExemplars(dp.Exemplars(), exs)
	}
}
