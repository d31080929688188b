package policy

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
