package policy

import "github.com/open-telemetry/opentelemetry-collector-contrib/pkg/sampling"

type and struct{ subs []Evaluator }

// Evaluate: sampled when no sub-policy says not sampled.
func (p *and) Evaluate(t *Trace) Decision { return all(p.subs, t, Sampled) }

// all evaluates subs in order and stops at the first that says not sampled
// (so later stateful ones spend nothing), or errs (the caller abstains);
// when none does, it returns pass.
func all(subs []Evaluator, t *Trace, pass Decision) Decision {
	for _, s := range subs {
		switch d := s.Evaluate(t); d {
		case Errored, NotSampled:
			return d
		}
	}
	return pass
}

func (p *and) Stateful() bool { return anyStateful(p.subs) }

func buildAnd(b *Builder, c *Config, _ level) (Evaluator, error) {
	var subs []Config
	if c.And != nil {
		subs = c.And.SubPolicies
	}
	es, err := buildSubs(b, subs, levelAnd, "and_sub_policy")
	if err != nil {
		return nil, err
	}
	return &and{subs: es}, nil
}

// Threshold is the strictest of the sub-policies' thresholds: a trace that
// passed them all was sampled with the smallest of their probabilities.
func (p *and) Threshold() sampling.Threshold {
	th := sampling.AlwaysSampleThreshold
	for _, s := range p.subs {
		if t, ok := s.(thresholder); ok && sampling.ThresholdGreater(t.Threshold(), th) {
			th = t.Threshold()
		}
	}
	return th
}
