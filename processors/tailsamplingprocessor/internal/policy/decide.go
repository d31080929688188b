package policy

// NotEvaluated marks a policy Decide did not run (after a drop or a first match).
const NotEvaluated Decision = 255

// Decide applies the top-level policies to a trace as upstream does: drop
// policies first, the first Dropped ending the decision; then every other
// policy in order, or up to the first Sampled with sampleOnFirstMatch. The
// trace is Sampled if any policy voted Sampled, else NotSampled; errors
// abstain. votes (len(ps)) receives each policy's vote, NotEvaluated for
// those skipped; by is the deciding policy's index (-1 for none).
func Decide(ps []Policy, t *Trace, sampleOnFirstMatch bool, votes []Decision) (d Decision, by int) {
	for i := range votes {
		votes[i] = NotEvaluated
	}
	by = -1
	i := 0
	for ; i < len(ps) && ps[i].Drop; i++ {
		v := ps[i].Evaluator.Evaluate(t)
		votes[i] = v
		if v == Dropped {
			return Dropped, i
		}
	}
	d = NotSampled
	for ; i < len(ps); i++ {
		v := ps[i].Evaluator.Evaluate(t)
		votes[i] = v
		if v == Dropped {
			return Dropped, i
		}
		if v == Sampled {
			if d != Sampled {
				d, by = Sampled, i
			}
			if sampleOnFirstMatch {
				break
			}
		}
	}
	return d, by
}
