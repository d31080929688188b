package redflagconnector

import (
	"maps"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/vigilhq/vigil/connectors/redflagconnector/internal/detect"
	"github.com/vigilhq/vigil/connectors/redflagconnector/internal/metadata"
	"github.com/vigilhq/vigil/internal/alertevent"
)

// seriesRef is an ALERTS or ALERTS_FOR_STATE series emitted at an evaluation.
type seriesRef struct {
	metric string
	labels map[string]string
}

// exportBounds are the duration histogram's bucket bounds in seconds: powers
// of two milliseconds, each the upper bound of an even internal bin.
var exportBounds = func() []float64 {
	b := make([]float64, 0, 15)
	for k := 0; k <= 14; k++ {
		b = append(b, float64(uint(1)<<k)/1000)
	}
	return b
}()

// exportBucket maps internal bin i to its export bucket.
func exportBucket(i int) int {
	if i >= detect.NumBins-1 {
		return len(exportBounds)
	}
	return max(0, (i-1)/2)
}

func (c *core) newResourceMetrics(md pmetric.Metrics) pmetric.MetricSlice {
	rm := md.ResourceMetrics().AppendEmpty()
	for k, v := range c.resource {
		rm.Resource().Attributes().PutStr(k, v)
	}
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName(metadata.ScopeName)
	return sm.Metrics()
}

// buildMetrics writes the alerts exactly as Prometheus writes them,
// ALERTS{alertname, alertstate, labels...} = 1 and ALERTS_FOR_STATE{alertname,
// labels...} = the Unix time the alert became active, and ends the series of
// alerts that changed state or resolved with a no-recorded-value point (which
// the prometheus exporter drops at once and remote write turns into a
// staleness marker). Then the per-edge and per-service RED metrics.
func (c *core) buildMetrics(now time.Time, alerts []detect.Alert, edgeViews []detect.EdgeView, svcs []detect.ServiceView) pmetric.Metrics {
	md := pmetric.NewMetrics()
	ms := c.newResourceMetrics(md)
	ts := pcommon.NewTimestampFromTime(now)

	// ALERTS and ALERTS_FOR_STATE sit in a scope without a name: the
	// prometheus and prometheusremotewrite exporters turn a scope name into an
	// otel_scope_name label, which the series Prometheus writes do not have.
	as := md.ResourceMetrics().At(0).ScopeMetrics().AppendEmpty().Metrics()
	alertsG := as.AppendEmpty()
	alertsG.SetName("ALERTS")
	alertsG.SetDescription("Active red-flag alerts, as Prometheus's ALERTS series.")
	ag := alertsG.SetEmptyGauge().DataPoints()
	forG := as.AppendEmpty()
	forG.SetName("ALERTS_FOR_STATE")
	forG.SetDescription("When each active red-flag alert became active (Unix seconds), as Prometheus's ALERTS_FOR_STATE.")
	fg := forG.SetEmptyGauge().DataPoints()

	cur := make(map[string]seriesRef, 2*len(alerts))
	for i := range alerts {
		a := &alerts[i]
		withState := maps.Clone(a.Labels)
		withState["alertstate"] = string(a.State)
		dp := ag.AppendEmpty()
		dp.SetTimestamp(ts)
		dp.SetDoubleValue(1)
		putLabels(dp.Attributes(), withState)
		cur["ALERTS\x00"+alertevent.LabelsKey(withState)] = seriesRef{"ALERTS", withState}

		dp = fg.AppendEmpty()
		dp.SetTimestamp(ts)
		dp.SetDoubleValue(float64(a.ActiveAt.Unix()))
		putLabels(dp.Attributes(), a.Labels)
		cur["ALERTS_FOR_STATE\x00"+alertevent.LabelsKey(a.Labels)] = seriesRef{"ALERTS_FOR_STATE", a.Labels}
	}
	// Each ending series gets a metric of its own: the prometheus exporter
	// (v0.161.0, accumulator.go) stops reading a metric's points at its first
	// no-recorded-value point, so a second ending series in the same metric
	// would stay on 8889 until metric_expiration.
	for _, k := range slices.Sorted(maps.Keys(c.prevSeries)) {
		if _, still := cur[k]; still {
			continue
		}
		ref := c.prevSeries[k]
		m := as.AppendEmpty()
		m.SetName(ref.metric)
		if ref.metric == "ALERTS" {
			m.SetDescription(alertsG.Description())
		} else {
			m.SetDescription(forG.Description())
		}
		dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
		dp.SetTimestamp(ts)
		dp.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
		putLabels(dp.Attributes(), ref.labels)
	}
	c.prevSeries = cur

	if !c.cfg.EdgeMetrics {
		return md
	}
	calls := newSum(ms, "vigil.edge.calls", "Calls from service to callee (client spans), all of them, before sampling.", "{call}")
	errs := newSum(ms, "vigil.edge.errors", "Failed calls from service to callee, by failure class.", "{call}")
	client := newSum(ms, "vigil.edge.client_errors", "Calls from service to callee rejected as the caller's fault (HTTP 4xx, gRPC client codes).", "{call}")
	retries := newSum(ms, "vigil.edge.retries", "Calls from service to callee that were retries.", "{call}")
	cancelled := newSum(ms, "vigil.edge.cancelled", "Calls from service to callee that the caller abandoned (cancelled siblings, hedges, callers giving up): not failures.", "{call}")
	durM := ms.AppendEmpty()
	durM.SetName("vigil.edge.duration")
	durM.SetDescription("Duration of calls from service to callee.")
	durM.SetUnit("s")
	hist := durM.SetEmptyHistogram()
	hist.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	tmoM := ms.AppendEmpty()
	tmoM.SetName("vigil.edge.timeout")
	tmoM.SetDescription("The timeout of calls from service to callee, learned from calls that timed out.")
	tmoM.SetUnit("s")
	tmo := tmoM.SetEmptyGauge().DataPoints()
	for i := range edgeViews {
		e := &edgeViews[i]
		start := pcommon.NewTimestampFromTime(e.Since)
		set := func(dp pmetric.NumberDataPoint, v uint32) {
			dp.SetStartTimestamp(start)
			dp.SetTimestamp(ts)
			dp.SetDoubleValue(float64(v))
			putEdge(dp.Attributes(), e)
		}
		set(calls.AppendEmpty(), e.Total.Calls)
		for cl := detect.Class(0); cl < detect.NumClasses; cl++ {
			if n := e.Total.Class[cl]; n > 0 {
				dp := errs.AppendEmpty()
				set(dp, n)
				dp.Attributes().PutStr("class", cl.String())
			}
		}
		if e.Total.Client4xx > 0 {
			set(client.AppendEmpty(), e.Total.Client4xx)
		}
		set(retries.AppendEmpty(), e.Total.Retries)
		if e.Total.Cancelled > 0 {
			set(cancelled.AppendEmpty(), e.Total.Cancelled)
		}
		hp := hist.DataPoints().AppendEmpty()
		hp.SetStartTimestamp(start)
		hp.SetTimestamp(ts)
		putEdge(hp.Attributes(), e)
		hp.ExplicitBounds().FromRaw(exportBounds)
		counts := make([]uint64, len(exportBounds)+1)
		for b, n := range e.Total.Hist {
			counts[exportBucket(b)] += uint64(n)
		}
		hp.BucketCounts().FromRaw(counts)
		hp.SetCount(uint64(e.Total.Hist.Total()))
		hp.SetSum(e.Total.DurMsSum / 1000)
		if e.TimeoutMs > 0 {
			dp := tmo.AppendEmpty()
			dp.SetTimestamp(ts)
			dp.SetDoubleValue(e.TimeoutMs / 1000)
			putEdge(dp.Attributes(), e)
		}
	}
	reqs := newSum(ms, "vigil.service.requests", "Inbound requests of a service (server spans), all of them, before sampling.", "{request}")
	serrs := newSum(ms, "vigil.service.errors", "Failed inbound requests of a service.", "{request}")
	for i := range svcs {
		s := &svcs[i]
		for _, p := range []struct {
			dps pmetric.NumberDataPointSlice
			v   uint32
		}{{reqs, s.Total.Calls}, {serrs, s.Total.Errors}} {
			dp := p.dps.AppendEmpty()
			dp.SetStartTimestamp(pcommon.NewTimestampFromTime(s.Since))
			dp.SetTimestamp(ts)
			dp.SetDoubleValue(float64(p.v))
			dp.Attributes().PutStr("service", s.Name)
			if s.Namespace != "" {
				dp.Attributes().PutStr(namespaceAttr, s.Namespace)
			}
		}
	}
	return md
}

// namespaceAttr carries the Kubernetes namespace of the calling service on
// the edge and service metrics, named as on ALERTS.
const namespaceAttr = "k8s_namespace_name"

// putEdge labels an edge's data point: service (the caller), callee, and the
// caller's namespace when known.
func putEdge(m pcommon.Map, e *detect.EdgeView) {
	m.PutStr("service", e.Caller)
	m.PutStr("callee", e.Callee)
	if e.Namespace != "" {
		m.PutStr(namespaceAttr, e.Namespace)
	}
}

func newSum(ms pmetric.MetricSlice, name, desc, unit string) pmetric.NumberDataPointSlice {
	m := ms.AppendEmpty()
	m.SetName(name)
	m.SetDescription(desc)
	m.SetUnit(unit)
	s := m.SetEmptySum()
	s.SetIsMonotonic(true)
	s.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	return s.DataPoints()
}

func putLabels(m pcommon.Map, labels map[string]string) {
	m.EnsureCapacity(len(labels))
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		m.PutStr(k, labels[k])
	}
}

// buildEvents writes one alert event (internal/alertevent) per transition.
func (c *core) buildEvents(now time.Time, trs []detect.Transition) plog.Logs {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	for k, v := range c.resource {
		rl.Resource().Attributes().PutStr(k, v)
	}
	sl := rl.ScopeLogs().AppendEmpty()
	sl.Scope().SetName(metadata.ScopeName)
	for i := range trs {
		a := &trs[i].Alert
		ev := alertevent.Event{
			State:        alertevent.State(a.State),
			Labels:       a.Labels,
			Annotations:  a.Annotations,
			ActiveAt:     a.ActiveAt,
			FiredAt:      a.FiredAt,
			ResolvedAt:   a.ResolvedAt,
			EvalInterval: c.cfg.EvaluationInterval,
			TraceID:      pcommon.TraceID(a.TraceID),
		}
		ev.AppendTo(sl, now)
	}
	return ld
}

func formatAlert(a *detect.Alert) string {
	var b strings.Builder
	b.WriteString(a.Name())
	b.WriteByte('{')
	first := true
	for _, k := range slices.Sorted(maps.Keys(a.Labels)) {
		if k == "alertname" {
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		b.WriteString(k)
		b.WriteString(`="`)
		b.WriteString(a.Labels[k])
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}
