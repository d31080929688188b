package policy

type spanCount struct{ min, max int32 }

func (p *spanCount) Evaluate(t *Trace) Decision {
	n := int64(t.Sum.SpanCount)
	if p.max == 0 && n >= int64(p.min) {
		return Sampled
	}
	if int64(p.min) <= n && n <= int64(p.max) {
		return Sampled
	}
	return NotSampled
}

// Stateful: with a maximum, more spans can undo a match.
func (p *spanCount) Stateful() bool { return p.max > 0 }

// buildSpanCount: between min_spans and max_spans spans, inclusive; max 0
// means no maximum.
func buildSpanCount(_ *Builder, c *Config, _ level) (Evaluator, error) {
	cfg := SpanCountCfg{}
	if c.SpanCount != nil {
		cfg = *c.SpanCount
	}
	return &spanCount{min: cfg.MinSpans, max: cfg.MaxSpans}, nil
}
