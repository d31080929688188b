package policy

import "github.com/open-telemetry/opentelemetry-collector-contrib/pkg/sampling"

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

// thresholder is a policy whose samples stand for more than one trace (a
// probability below one); the others sample with probability one.
type thresholder interface {
	Threshold() sampling.Threshold
}

// EffectiveThreshold is the OTEP 235 sampling threshold of a sampled trace:
// the least strict among the policies that voted Sampled (the trace was kept
// with the highest of their probabilities). votes are Decide's.
func EffectiveThreshold(ps []Policy, votes []Decision) sampling.Threshold {
	th, any := sampling.NeverSampleThreshold, false
	for i, v := range votes {
		if v != Sampled {
			continue
		}
		t := sampling.AlwaysSampleThreshold
		if tp, ok := ps[i].Evaluator.(thresholder); ok {
			t = tp.Threshold()
		}
		if !any || sampling.ThresholdLessThan(t, th) {
			th, any = t, true
		}
	}
	if !any {
		return sampling.AlwaysSampleThreshold
	}
	return th
}
