// Package metadata holds the redflag connector's type, stability and its own
// telemetry, written by hand in the shape mdatagen generates (mdatagen's
// v0.161.0 dependencies are not served by the module proxy here).
package metadata

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

func stateAttr(s string) attribute.KeyValue { return attribute.String("state", s) }

// Type is the connector's config type.
var Type = component.MustNewType("redflag")

// ScopeName is the instrumentation scope of the connector's own telemetry and outputs.
const ScopeName = "github.com/vigilhq/vigil/connectors/redflagconnector"

// Stability of each input -> output pair.
const (
	TracesToMetricsStability  = component.StabilityLevelAlpha
	TracesToLogsStability     = component.StabilityLevelAlpha
	LogsToMetricsStability    = component.StabilityLevelAlpha
	LogsToLogsStability       = component.StabilityLevelAlpha
	MetricsToMetricsStability = component.StabilityLevelAlpha
	MetricsToLogsStability    = component.StabilityLevelAlpha
)

// TelemetryBuilder holds the connector's own metrics (see metadata.yaml).
type TelemetryBuilder struct {
	SpansReceived      metric.Int64Counter
	LogRecordsReceived metric.Int64Counter
	DataPointsReceived metric.Int64Counter
	BatchesBlocked     metric.Int64Counter
	BatchesDropped     metric.Int64Counter
	EmitsDropped       metric.Int64Counter
	Transitions        metric.Int64Counter
	EvaluationDuration metric.Float64Histogram
	registration       metric.Registration
}

// Gauges are the values the builder's observable instruments report.
type Gauges struct {
	Edges, Services int64 // tracked now
	Pending, Firing int64 // active alerts
	// Cumulative: edge observations dropped at max_edges, edges expired,
	// joins dropped at the cache bound and expired, client spans that named
	// no dependency.
	EdgesOverflow, EdgesExpired int64
	JoinDropped, JoinExpired    int64
	NoCallee                    int64
}

// Observed is read by the builder's observable gauges at collection time.
type Observed interface {
	Gauges() Gauges
}

// NewTelemetryBuilder creates the instruments on set's MeterProvider.
func NewTelemetryBuilder(set component.TelemetrySettings, obs Observed) (*TelemetryBuilder, error) {
	m := set.MeterProvider.Meter(ScopeName)
	tb := &TelemetryBuilder{}
	var err error
	mk := func(name, desc, unit string) metric.Int64Counter {
		if err != nil {
			return nil
		}
		var c metric.Int64Counter
		c, err = m.Int64Counter(name, metric.WithDescription(desc), metric.WithUnit(unit))
		return c
	}
	tb.SpansReceived = mk("otelcol_connector_redflag_spans_received", "Spans the detectors observed.", "{span}")
	tb.LogRecordsReceived = mk("otelcol_connector_redflag_log_records_received", "Log records the detectors observed.", "{record}")
	tb.DataPointsReceived = mk("otelcol_connector_redflag_datapoints_received", "Metric data points the detectors observed.", "{datapoint}")
	tb.BatchesBlocked = mk("otelcol_connector_redflag_batches_blocked", "Batches that waited for the detector loop (backpressure).", "{batch}")
	tb.BatchesDropped = mk("otelcol_connector_redflag_batches_dropped", "Batches not observed because the caller gave up or the connector stopped.", "{batch}")
	tb.EmitsDropped = mk("otelcol_connector_redflag_emits_dropped", "Evaluation outputs dropped because the downstream was still busy with the previous ones.", "{emit}")
	tb.Transitions = mk("otelcol_connector_redflag_alert_transitions", "Alert state changes, by alertname and new state.", "{transition}")
	if err != nil {
		return nil, err
	}
	tb.EvaluationDuration, err = m.Float64Histogram("otelcol_connector_redflag_evaluation_duration",
		metric.WithDescription("Time one evaluation of every detector took (the decision latency)."), metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1))
	if err != nil {
		return nil, err
	}
	gauge := func(name, desc string) metric.Int64ObservableGauge {
		if err != nil {
			return nil
		}
		var g metric.Int64ObservableGauge
		g, err = m.Int64ObservableGauge(name, metric.WithDescription(desc))
		return g
	}
	edges := gauge("otelcol_connector_redflag_edges", "Caller -> callee edges tracked.")
	services := gauge("otelcol_connector_redflag_services", "Services tracked.")
	alerts := gauge("otelcol_connector_redflag_alerts", "Active alerts, by state (pending, firing).")
	ctr := func(name, desc string) metric.Int64ObservableCounter {
		if err != nil {
			return nil
		}
		var c metric.Int64ObservableCounter
		c, err = m.Int64ObservableCounter(name, metric.WithDescription(desc))
		return c
	}
	overflow := ctr("otelcol_connector_redflag_edges_dropped", "Edge observations dropped because max_edges was reached.")
	expired := ctr("otelcol_connector_redflag_edges_evicted", "Edges forgotten after idle_expiry without calls.")
	joinDropped := ctr("otelcol_connector_redflag_joins_dropped", "Client spans not joined because the join cache was full.")
	joinExpired := ctr("otelcol_connector_redflag_joins_expired", "Join entries whose parent server span never arrived.")
	noCallee := ctr("otelcol_connector_redflag_spans_without_callee", "Client spans that named no dependency; their calls count against the caller's unknown_dependency.")
	if err != nil {
		return nil, err
	}
	pendingAttr := metric.WithAttributes(stateAttr("pending"))
	firingAttr := metric.WithAttributes(stateAttr("firing"))
	tb.registration, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		g := obs.Gauges()
		o.ObserveInt64(edges, g.Edges)
		o.ObserveInt64(services, g.Services)
		o.ObserveInt64(alerts, g.Pending, pendingAttr)
		o.ObserveInt64(alerts, g.Firing, firingAttr)
		o.ObserveInt64(overflow, g.EdgesOverflow)
		o.ObserveInt64(expired, g.EdgesExpired)
		o.ObserveInt64(joinDropped, g.JoinDropped)
		o.ObserveInt64(joinExpired, g.JoinExpired)
		o.ObserveInt64(noCallee, g.NoCallee)
		return nil
	}, edges, services, alerts, overflow, expired, joinDropped, joinExpired, noCallee)
	return tb, err
}

// Shutdown unregisters the observable instruments' callback.
func (tb *TelemetryBuilder) Shutdown() {
	if tb.registration != nil {
		_ = tb.registration.Unregister()
	}
}
