package tailsamplingprocessor

import (
	"context"
	"time"

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

// Gauges implements metadata.Observed.
func (p *sampler) Gauges() metadata.Gauges { return *p.gauges.Load() }

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
	g := &metadata.Gauges{Traces: int64(p.store.Len()), Buffered: p.arena.LiveBytes(), Mapped: p.arena.MappedBytes(), Budget: p.budget}
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
				p.tel.CountTracesSampled.Add(ctx, n, p.voteAttrs[j][d])
			}
		}
	}
	for d, n := range global {
		if n > 0 {
			p.tel.GlobalCountTracesSampled.Add(ctx, n, p.globalAttrs[d])
		}
	}
	add := func(c metric.Int64Counter, n int64, opts ...metric.AddOption) {
		if n > 0 {
			c.Add(ctx, n, opts...)
		}
	}
	add(p.tel.PolicyEvaluationError, evalErrors)
	add(p.tel.NewTraceIDReceived, newTraces)
	add(p.tel.TracesDroppedTooLarge, tooLarge)
	add(p.tel.EarlyReleasesFromCache, lateS, metric.WithAttributes(attribute.String("sampled", "true")))
	add(p.tel.EarlyReleasesFromCache, lateD, metric.WithAttributes(attribute.String("sampled", "false")))
	for reason, n := range early {
		add(p.tel.DecidedEarly, n, metric.WithAttributes(attribute.String("reason", reason)))
	}
	for _, v := range lat {
		p.tel.DecisionLatency.Record(ctx, v)
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
