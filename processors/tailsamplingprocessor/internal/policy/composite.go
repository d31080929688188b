package policy

// composite gives its sub-policies shares of a spans-per-second budget, reset
// every wall-clock second. The first sub-policy that samples a trace decides:
// within its share (and the total) the trace is sampled and counted, else it
// is not sampled at all. Allocation follows upstream: a listed percent of the
// total, else an equal share of the whole total; policy_order is accepted and
// ignored (list order decides).
type composite struct {
	subs   []Evaluator
	names  []string
	alloc  []int64
	spent  []int64
	max    int64
	second int64
}

func (p *composite) Evaluate(t *Trace) Decision {
	if s := t.Now.Unix(); s != p.second {
		p.second = s
		clear(p.spent)
	}
	for i, sub := range p.subs {
		switch sub.Evaluate(t) {
		case Errored:
			return Errored
		case Sampled:
			next := p.spent[i] + int64(t.Sum.SpanCount)
			if next <= p.alloc[i] && next <= p.max {
				p.spent[i] = next
				t.Composite = p.names[i]
				return Sampled
			}
			return NotSampled
		}
	}
	return NotSampled
}

// Stateful follows upstream: only the sub-policies count, not the budget.
func (p *composite) Stateful() bool { return anyStateful(p.subs) }

func buildComposite(b *Builder, c *Config, _ level) (Evaluator, error) {
	cfg := CompositeCfg{}
	if c.Composite != nil {
		cfg = *c.Composite
	}
	es, err := buildSubs(b, cfg.SubPolicies, levelComposite, "composite_sub_policy")
	if err != nil {
		return nil, err
	}
	pct := map[string]int64{}
	for _, r := range cfg.RateAllocation {
		pct[r.Policy] = r.Percent
	}
	p := &composite{subs: es, max: cfg.MaxTotalSpansPerSecond, alloc: make([]int64, len(es)), spent: make([]int64, len(es))}
	for i, sc := range cfg.SubPolicies {
		p.names = append(p.names, sc.Name)
		if v := pct[sc.Name]; v > 0 {
			p.alloc[i] = int64(float64(v) / 100 * float64(p.max))
		} else if len(es) > 0 {
			p.alloc[i] = int64(float64(p.max) / float64(len(es)))
		}
	}
	return p, nil
}
