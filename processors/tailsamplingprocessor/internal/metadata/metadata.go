// Package metadata holds the tail sampler's type, stability and its own
// telemetry, written by hand in the shape mdatagen generates (mdatagen's
// v0.161.0 dependencies are not served by the module proxy here). Metric
// names the contrib processor also has keep its names, so dashboards carry over.
package metadata

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Type is the processor's config type, the contrib processor's.
var Type = component.MustNewType("tail_sampling")

// ScopeName is the instrumentation scope of the processor's own telemetry.
const ScopeName = "github.com/vigilhq/vigil/processors/tailsamplingprocessor"

// TracesStability is the stability of the traces processor.
const TracesStability = component.StabilityLevelAlpha

// TelemetryBuilder holds the processor's own metrics (see metadata.yaml).
type TelemetryBuilder struct {
	CountTracesSampled       metric.Int64Counter
	GlobalCountTracesSampled metric.Int64Counter
	PolicyEvaluationError    metric.Int64Counter
	DecisionTimerLatency     metric.Int64Histogram
	NewTraceIDReceived       metric.Int64Counter
	EarlyReleasesFromCache   metric.Int64Counter
	TracesDroppedTooLarge    metric.Int64Counter
	SpansReceived            metric.Int64Counter
	DecidedEarly             metric.Int64Counter
	DecisionLatency          metric.Float64Histogram
	ExportFailed             metric.Int64Counter
	Restored                 metric.Int64Counter
	registration             metric.Registration
}

// Gauges are the values the builder's observable instruments report.
type Gauges struct {
	Traces   int64 // traces waiting for a decision
	Buffered int64 // bytes of spans buffered (live)
	Mapped   int64 // bytes mapped by the span arena
	Budget   int64 // the memory budget in bytes
	// Cumulative trace IDs forgotten by a full decision cache.
	EvictedSampled, EvictedNotSampled int64
}

// Observed is read by the builder's observable instruments at collection time.
type Observed interface {
	Gauges() Gauges
}

// NewTelemetryBuilder creates the instruments on set's MeterProvider.
func NewTelemetryBuilder(set component.TelemetrySettings, obs Observed) (*TelemetryBuilder, error) {
	m := set.MeterProvider.Meter(ScopeName)
	tb := &TelemetryBuilder{}
	var err error
	ctr := func(name, desc, unit string) metric.Int64Counter {
		if err != nil {
			return nil
		}
		var c metric.Int64Counter
		c, err = m.Int64Counter(name, metric.WithDescription(desc), metric.WithUnit(unit))
		return c
	}
	const p = "otelcol_processor_tail_sampling_"
	tb.CountTracesSampled = ctr(p+"count_traces_sampled", "Traces each policy voted on, by policy (processor name prefix), sampled and decision.", "{traces}")
	tb.GlobalCountTracesSampled = ctr(p+"global_count_traces_sampled", "Final decisions, by sampled and decision (sampled, not_sampled, dropped).", "{traces}")
	tb.PolicyEvaluationError = ctr(p+"sampling_policy_evaluation_error", "Policy evaluations that failed (OTTL with error_mode propagate); the policy abstains.", "{errors}")
	tb.NewTraceIDReceived = ctr(p+"new_trace_id_received", "Traces seen for the first time.", "{traces}")
	tb.EarlyReleasesFromCache = ctr(p+"early_releases_from_cache_decision", "Late spans that followed their trace's cached decision, by sampled.", "{spans}")
	tb.TracesDroppedTooLarge = ctr(p+"traces_dropped_too_large", "Traces not sampled because they grew past maximum_trace_size_bytes.", "{traces}")
	tb.SpansReceived = ctr(p+"spans_received", "Spans received.", "{spans}")
	tb.DecidedEarly = ctr(p+"decided_early", "Traces decided before decision_wait, by reason (memory, traces, oversized, shutdown).", "{traces}")
	tb.ExportFailed = ctr(p+"export_failed", "Sampled spans the next component refused.", "{spans}")
	tb.Restored = ctr(p+"restored", "Traces read back from the storage directory at start, by outcome (restored, unrestorable).", "{traces}")
	if err != nil {
		return nil, err
	}
	if tb.DecisionTimerLatency, err = m.Int64Histogram(p+"sampling_decision_timer_latency",
		metric.WithDescription("Time one decision tick took."), metric.WithUnit("ms"),
		metric.WithExplicitBucketBoundaries(1, 2, 5, 10, 25, 50, 75, 100, 150, 200, 300, 400, 500, 750, 1000, 2000, 3000, 4000, 5000, 10000, 20000, 30000, 50000)); err != nil {
		return nil, err
	}
	if tb.DecisionLatency, err = m.Float64Histogram(p+"decision_latency",
		metric.WithDescription("Time from a trace's first span to its decision."), metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.1, 0.5, 1, 2, 5, 10, 15, 20, 30, 60, 120)); err != nil {
		return nil, err
	}
	gauge := func(name, desc, unit string) metric.Int64ObservableGauge {
		if err != nil {
			return nil
		}
		var g metric.Int64ObservableGauge
		g, err = m.Int64ObservableGauge(name, metric.WithDescription(desc), metric.WithUnit(unit))
		return g
	}
	traces := gauge(p+"sampling_traces_on_memory", "Traces waiting for a decision.", "{traces}")
	buffered := gauge(p+"buffered_bytes", "Bytes of spans waiting for a decision, outside the Go heap, uncompressed.", "By")
	mapped := gauge(p+"arena_bytes", "Memory the span arena holds from the OS (frozen chunks compressed, the chunk being written, the decompression cache).", "By")
	budget := gauge(p+"memory_budget_bytes", "The byte budget (memory_limit_mib).", "By")
	if err != nil {
		return nil, err
	}
	evicted, err := m.Int64ObservableCounter(p+"cache_evictions", metric.WithDescription("Trace IDs forgotten by a full decision cache, by cache (sampled, not_sampled)."), metric.WithUnit("{traces}"))
	if err != nil {
		return nil, err
	}
	sampledAttr := metric.WithAttributes(cacheAttr("sampled"))
	notSampledAttr := metric.WithAttributes(cacheAttr("not_sampled"))
	tb.registration, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		g := obs.Gauges()
		o.ObserveInt64(traces, g.Traces)
		o.ObserveInt64(buffered, g.Buffered)
		o.ObserveInt64(mapped, g.Mapped)
		o.ObserveInt64(budget, g.Budget)
		o.ObserveInt64(evicted, g.EvictedSampled, sampledAttr)
		o.ObserveInt64(evicted, g.EvictedNotSampled, notSampledAttr)
		return nil
	}, traces, buffered, mapped, budget, evicted)
	return tb, err
}

// Shutdown unregisters the observable instruments.
func (tb *TelemetryBuilder) Shutdown() {
	if tb.registration != nil {
		_ = tb.registration.Unregister()
	}
}

func cacheAttr(v string) attribute.KeyValue { return attribute.String("cache", v) }
