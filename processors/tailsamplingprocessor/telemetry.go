package tailsamplingprocessor

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/vigilhq/vigil/processors/tailsamplingprocessor/internal/metadata"
	"github.com/vigilhq/vigil/processors/tailsamplingprocessor/internal/policy"
)

// counterSink is an extension that shows the sampler's counters (the
// vigil_status page does).
type counterSink interface {
	PublishCounters(source string, counters map[string]int64)
}

// publishEvery is how often the counters go to the counter sinks.
const publishEvery = time.Second

// totals are the sampler's counters since start, for the counter sinks.
type totals struct {
	sampled, notSampled, dropped, newTraces, tooLarge, lateSampled, lateDropped, early int64
}

// gaugeValues are what the observable instruments report, as of the last
// flush.
type gaugeValues struct {
	Traces   int64 // traces waiting for a decision
	Buffered int64 // bytes of spans buffered (live)
	Mapped   int64 // bytes mapped by the span arena
	Budget   int64 // the memory budget in bytes
	// Cumulative trace IDs forgotten by a full decision cache.
	EvictedSampled, EvictedNotSampled int64
}

// newTelemetry creates the instruments metadata.yaml declares (generated into
// internal/metadata) and registers the observable ones on gauges.
func newTelemetry(set component.TelemetrySettings, gauges *atomic.Pointer[gaugeValues]) (*metadata.TelemetryBuilder, error) {
	tb, err := metadata.NewTelemetryBuilder(set)
	if err != nil {
		return nil, err
	}
	observe := func(v func(*gaugeValues) int64) metric.Int64Callback {
		return func(_ context.Context, o metric.Int64Observer) error {
			if g := gauges.Load(); g != nil {
				o.Observe(v(g))
			}
			return nil
		}
	}
	sampled := metric.WithAttributes(attribute.String("cache", "sampled"))
	notSampled := metric.WithAttributes(attribute.String("cache", "not_sampled"))
	err = errors.Join(
		tb.RegisterProcessorTailSamplingSamplingTracesOnMemoryCallback(observe(func(g *gaugeValues) int64 { return g.Traces })),
		tb.RegisterProcessorTailSamplingBufferedBytesCallback(observe(func(g *gaugeValues) int64 { return g.Buffered })),
		tb.RegisterProcessorTailSamplingArenaBytesCallback(observe(func(g *gaugeValues) int64 { return g.Mapped })),
		tb.RegisterProcessorTailSamplingMemoryBudgetBytesCallback(observe(func(g *gaugeValues) int64 { return g.Budget })),
		tb.RegisterProcessorTailSamplingCacheEvictionsCallback(func(_ context.Context, o metric.Int64Observer) error {
			g := gauges.Load()
			if g == nil {
				return nil
			}
			o.Observe(g.EvictedSampled, sampled)
			o.Observe(g.EvictedNotSampled, notSampled)
			return nil
		}),
	)
	if err != nil {
		tb.Shutdown()
		return nil, err
	}
	return tb, nil
}

// flush moves the counters gathered under the lock to the metrics.
func (p *sampler) flush() {
	p.mu.Lock()
	votes := make([][5]int64, len(p.voteCounts))
	copy(votes, p.voteCounts)
	clear(p.voteCounts)
	global := p.global
	p.global = [5]int64{}
	evalErrors, newTraces, tooLarge, lateS, lateD := p.evalErrors, p.newTraces, p.tooLarge, p.lateSampled, p.lateDropped
	p.evalErrors, p.newTraces, p.tooLarge, p.lateSampled, p.lateDropped = 0, 0, 0, 0, 0
	early := p.early
	p.early = map[string]int64{}
	lat := p.latencies
	p.latencies = nil
	g := &gaugeValues{Traces: int64(p.store.Len()), Buffered: p.arena.LiveBytes(), Mapped: p.arena.MappedBytes(), Budget: p.budget}
	if p.sampled != nil {
		g.EvictedSampled = int64(p.sampled.Evicted())
	}
	if p.notSampled != nil {
		g.EvictedNotSampled = int64(p.notSampled.Evicted())
	}
	p.mu.Unlock()
	p.gauges.Store(g)

	ctx := context.Background()
	for j := range votes {
		for d, n := range votes[j] {
			if n > 0 {
				p.tel.ProcessorTailSamplingCountTracesSampled.Add(ctx, n, p.voteAttrs[j][d])
			}
		}
	}
	for d, n := range global {
		if n > 0 {
			p.tel.ProcessorTailSamplingGlobalCountTracesSampled.Add(ctx, n, p.globalAttrs[d])
		}
	}
	add := func(c metric.Int64Counter, n int64, opts ...metric.AddOption) {
		if n > 0 {
			c.Add(ctx, n, opts...)
		}
	}
	add(p.tel.ProcessorTailSamplingSamplingPolicyEvaluationError, evalErrors)
	add(p.tel.ProcessorTailSamplingNewTraceIDReceived, newTraces)
	add(p.tel.ProcessorTailSamplingTracesDroppedTooLarge, tooLarge)
	add(p.tel.ProcessorTailSamplingEarlyReleasesFromCacheDecision, lateS, metric.WithAttributes(attribute.String("sampled", "true")))
	add(p.tel.ProcessorTailSamplingEarlyReleasesFromCacheDecision, lateD, metric.WithAttributes(attribute.String("sampled", "false")))
	for reason, n := range early {
		add(p.tel.ProcessorTailSamplingDecidedEarly, n, metric.WithAttributes(attribute.String("reason", reason)))
	}
	for _, v := range lat {
		p.tel.ProcessorTailSamplingDecisionLatency.Record(ctx, v)
	}

	t := &p.totals
	t.sampled += global[policy.Sampled]
	t.notSampled += global[policy.NotSampled]
	t.dropped += global[policy.Dropped]
	t.newTraces += newTraces
	t.tooLarge += tooLarge
	t.lateSampled += lateS
	t.lateDropped += lateD
	for _, n := range early {
		t.early += n
	}
	if len(p.sinks) > 0 && time.Since(p.lastPublish) >= publishEvery {
		p.lastPublish = time.Now()
		c := map[string]int64{
			"traces_sampled": t.sampled, "traces_not_sampled": t.notSampled, "traces_dropped": t.dropped,
			"traces_received": t.newTraces, "traces_too_large": t.tooLarge, "decided_early": t.early,
			"late_spans_forwarded": t.lateSampled, "late_spans_dropped": t.lateDropped,
			"traces_buffered": g.Traces, "bytes_buffered": g.Buffered, "memory_budget_bytes": g.Budget,
			"decisions_evicted": g.EvictedSampled + g.EvictedNotSampled,
		}
		for _, cs := range p.sinks {
			cs.PublishCounters(p.id.String(), c)
		}
	}
}
