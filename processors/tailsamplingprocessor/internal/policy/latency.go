package policy

// latencyPred is a latency window: (threshold, upper], or (threshold, inf)
// without an upper bound, in whole milliseconds truncated toward zero.
type latencyPred struct {
	bit              uint8
	threshold, upper int64
}

func (p *latencyPred) in(d int64) bool {
	if p.upper == 0 {
		return d > p.threshold
	}
	return p.threshold < d && d <= p.upper
}

type latencyPolicy struct {
	bitPolicy
	stateful bool
}

// Stateful: with an upper bound the result depends on which spans arrived.
func (p *latencyPolicy) Stateful() bool { return p.stateful }

// buildLatency: the trace's duration (earliest start to latest end) checked
// after every span in arrival order, as upstream does, so with an upper bound
// a trace is sampled when any prefix of its spans falls in the window.
func buildLatency(b *Builder, c *Config, _ level) (Evaluator, error) {
	cfg := LatencyCfg{}
	if c.Latency != nil {
		cfg = *c.Latency
	}
	bit, err := b.C.bit()
	if err != nil {
		return nil, err
	}
	b.C.latency = append(b.C.latency, latencyPred{bit: bit, threshold: cfg.ThresholdMs, upper: cfg.UpperThresholdMs})
	return &latencyPolicy{bitPolicy: bitPolicy{bit: bit}, stateful: cfg.UpperThresholdMs > 0}, nil
}
