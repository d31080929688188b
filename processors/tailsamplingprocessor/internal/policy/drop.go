package policy

type drop struct{ subs []Evaluator }

// Evaluate drops the trace when every sub-policy matches (in order, stopping
// at the first that does not); an error abstains, so nothing is dropped.
func (p *drop) Evaluate(t *Trace) Decision { return all(p.subs, t, Dropped) }

func (p *drop) Stateful() bool { return anyStateful(p.subs) }

func buildDrop(b *Builder, c *Config, _ level) (Evaluator, error) {
	var subs []Config
	if c.Drop != nil {
		subs = c.Drop.SubPolicies
	}
	es, err := buildSubs(b, subs, levelAnd, "drop_sub_policy")
	if err != nil {
		return nil, err
	}
	return &drop{subs: es}, nil
}
