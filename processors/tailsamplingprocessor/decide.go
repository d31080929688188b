package tailsamplingprocessor

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.uber.org/zap"

	"github.com/vigilhq/vigil/internal/redflag"
	"github.com/vigilhq/vigil/processors/tailsamplingprocessor/internal/policy"
	"github.com/vigilhq/vigil/processors/tailsamplingprocessor/internal/store"
)

// decide evaluates the policies on trace i (counting each policy's vote)
// and carries the decision out. Locked.
func (p *sampler) decide(i uint32, now time.Time, reason string) {
	p.decideWith(i, now, nil, nil)
	if reason == reasonShutdown {
		p.early[reasonShutdown]++
	}
}

// decideWith decides trace i; extraHdr and extraBody are a segment not
// stored in the arena that belongs to the trace (forwarded too if it is
// sampled). Locked.
func (p *sampler) decideWith(i uint32, now time.Time, extraHdr, extraBody []byte) {
	t := policy.Trace{ID: p.store.ID(i), Sum: p.store.Summary(i), Now: now}
	d, by := policy.Decide(p.policies, &t, p.cfg.SampleOnFirstMatch, p.votes)
	p.lastTh = noThreshold
	if d == policy.Sampled && p.cfg.WriteThreshold {
		p.lastTh = policy.EffectiveThreshold(p.policies, p.votes).Unsigned()
	}
	p.lastRec = 0
	if d == policy.Sampled {
		p.lastRec = p.record(by, &t)
	}
	for j, v := range p.votes {
		switch v {
		case policy.NotEvaluated:
		case policy.Errored:
			p.evalErrors++
		default:
			p.voteCounts[j][v]++
		}
	}
	if extraBody != nil {
		p.finishExtra(i, d, now, extraHdr, extraBody)
		return
	}
	p.finish(i, d, now, nil, nil)
}

// finish carries decision d out on trace i: a sampled trace's spans (stored,
// plus group g's when given) are queued for forwarding and its ID goes to the
// sampled cache; otherwise to the not-sampled cache. Locked.
func (p *sampler) finish(i uint32, d policy.Decision, now time.Time, w *ingest, g *group) {
	id := p.store.ID(i)
	if d == policy.Sampled {
		th, rec := p.lastTh, p.lastRec
		p.readSegments(i, id, th, rec)
		if g != nil {
			w.eachSegment(g, p.store.MaxBody(), func(hdr, body []byte) { p.appendOut(id, th, rec, hdr, body) })
		}
	}
	p.settle(i, id, d, now)
}

func (p *sampler) finishExtra(i uint32, d policy.Decision, now time.Time, hdr, body []byte) {
	id := p.store.ID(i)
	if d == policy.Sampled {
		th, rec := p.lastTh, p.lastRec
		p.readSegments(i, id, th, rec)
		p.appendOut(id, th, rec, hdr, body)
	}
	p.settle(i, id, d, now)
}

// readSegments queues a sampled trace's stored spans for forwarding. A
// segment that cannot be read (arena corruption, which no test has produced)
// is logged, never skipped silently. Locked.
func (p *sampler) readSegments(i uint32, id [16]byte, th uint64, rec uint32) {
	if err := p.store.Segments(i, func(hdr, body []byte) error { p.appendOut(id, th, rec, hdr, body); return nil }); err != nil {
		p.logger.Error("cannot read a sampled trace's buffered spans; forwarding what was read",
			zap.String("trace_id", pcommon.TraceID(id).String()), zap.Error(err))
	}
}

func (p *sampler) settle(i uint32, id [16]byte, d policy.Decision, now time.Time) {
	p.global[d]++
	if d == policy.Sampled {
		if p.sampled != nil {
			p.sampled.AddTagged(id, p.lastRec)
		}
	} else if p.notSampled != nil {
		p.notSampled.Add(id)
	}
	if fs := p.store.Summary(i).FirstSeen; fs > 0 && len(p.latencies) < 4096 {
		p.latencies = append(p.latencies, float64(now.UnixNano()-fs)/1e9)
	}
	p.store.Release(i)
}

// ingestDecision is the span-ingest strategy: each batch is judged on its own
// spans (with the trace's cumulative span count and size): a drop policy that
// drops ends it; a drop policy that does not match makes the batch pending;
// otherwise the first sampling policy samples. Locked.
func (p *sampler) ingestDecision(g *group, cum *store.Summary, now time.Time) policy.Decision {
	local := g.sum
	local.SpanCount, local.Bytes, local.TracesBytes = cum.SpanCount, cum.Bytes, cum.TracesBytes
	t := policy.Trace{ID: g.tid, Sum: &local, Now: now}
	dropPending := false
	for j, pol := range p.policies {
		if !pol.Drop && dropPending {
			break
		}
		v := pol.Evaluator.Evaluate(&t)
		switch v {
		case policy.Errored:
			p.evalErrors++
			continue
		case policy.Dropped:
			p.voteCounts[j][v]++
			return policy.Dropped
		}
		p.voteCounts[j][v]++
		if pol.Drop {
			dropPending = true
			continue
		}
		if v == policy.Sampled {
			p.lastTh = noThreshold
			if p.cfg.WriteThreshold {
				p.lastTh = policy.EffectiveThreshold(p.policies[j:j+1], []policy.Decision{v}).Unsigned()
			}
			p.lastRec = p.record(j, &t)
			return policy.Sampled
		}
	}
	return policy.Pending
}

// onTick decides the traces whose wait is over and forwards what was sampled.
func (p *sampler) onTick(now time.Time) {
	t0 := time.Now()
	if len(p.flagSources) > 0 {
		sets := make([]*redflag.FlagSet, len(p.flagSources))
		for i, src := range p.flagSources {
			sets[i] = src.FlaggedSet()
		}
		fs := redflag.Union(sets...)
		if fs == nil {
			fs = redflag.NewFlagSet(nil, nil, nil)
		}
		p.flags.Store(fs)
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.due = p.store.Due(p.tickOf(now), p.due[:0])
	for _, i := range p.due {
		if p.spanIngest {
			p.finish(i, policy.NotSampled, now, nil, nil)
			continue
		}
		p.decide(i, now, "")
	}
	out := p.takeOut()
	p.mu.Unlock()
	p.forward(context.Background(), out)
	p.flush()
	p.tel.ProcessorTailSamplingSamplingDecisionTimerLatency.Record(context.Background(), time.Since(t0).Milliseconds())
}
