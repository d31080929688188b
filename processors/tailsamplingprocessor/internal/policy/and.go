package policy

import "github.com/open-telemetry/opentelemetry-collector-contrib/pkg/sampling"

type and struct{ subs []Evaluator }

// Evaluate: sampled when no sub-policy says not sampled, in order, stopping
// at the first that does (later stateful ones spend nothing); an error
// anywhere before that abstains.
func (p *and) Evaluate(t *Trace) Decision {
	for _, s := range p.subs {
		switch s.Evaluate(t) {
		case Errored:
			return Errored
		case NotSampled:
			return NotSampled
		}
	}
	return Sampled
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
