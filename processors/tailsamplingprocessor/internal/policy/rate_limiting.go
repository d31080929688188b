package policy

import (
	"golang.org/x/time/rate"
)

// limiter admits a trace while a token bucket has room for its cost (spans or
// bytes): the bucket starts full, refills continuously, and a trace costing
// more than the burst never passes. The same token bucket upstream uses.
type limiter struct {
	l     *rate.Limiter
	bytes bool
}

func (p *limiter) Evaluate(t *Trace) Decision {
	n := int(t.Sum.SpanCount)
	if p.bytes {
		n = int(min(t.Sum.TracesBytes, uint64(1<<62)))
	}
	if p.l.AllowN(t.Now, n) {
		return Sampled
	}
	return NotSampled
}

func (*limiter) Stateful() bool { return true }

func newLimiter(perSecond, burst int64, bytes bool) *limiter {
	if burst <= 0 {
		burst = 2 * perSecond
	}
	l := rate.NewLimiter(rate.Limit(perSecond), int(burst))
	return &limiter{l: l, bytes: bytes}
}

func buildRateLimiting(_ *Builder, c *Config, _ level) (Evaluator, error) {
	cfg := RateLimitingCfg{}
	if c.RateLimiting != nil {
		cfg = *c.RateLimiting
	}
	return newLimiter(cfg.SpansPerSecond, cfg.BurstCapacity, false), nil
}

func buildBytesLimiting(b *Builder, c *Config, _ level) (Evaluator, error) {
	cfg := BytesLimitingCfg{}
	if c.BytesLimiting != nil {
		cfg = *c.BytesLimiting
	}
	b.C.NeedsSize = true
	return newLimiter(cfg.BytesPerSecond, cfg.BurstCapacity, true), nil
}
