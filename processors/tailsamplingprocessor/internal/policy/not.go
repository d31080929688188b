package policy

import "errors"

type not struct{ sub Evaluator }

// Evaluate swaps sampled and not sampled; anything else passes through.
func (p *not) Evaluate(t *Trace) Decision {
	switch d := p.sub.Evaluate(t); d {
	case Sampled:
		return NotSampled
	case NotSampled:
		return Sampled
	default:
		return d
	}
}

func (p *not) Stateful() bool { return IsStateful(p.sub) }

func buildNot(b *Builder, c *Config, l level) (Evaluator, error) {
	if c.Not == nil || c.Not.SubPolicy == nil {
		return nil, errors.New("not: not_sub_policy is required")
	}
	sub := levelNot
	e, err := b.build(c.Not.SubPolicy, sub)
	if err != nil {
		return nil, err
	}
	return &not{sub: e}, nil
}
