package tailsamplingprocessor

import "go.opentelemetry.io/collector/featuregate"

// recordPolicyGateID is upstream's feature gate for the policy attributes:
// a collector command line that sets it (--feature-gates) runs unchanged
// and turns record_policy on.
const recordPolicyGateID = "processor.tailsamplingprocessor.recordpolicy"

var recordPolicyGate = registerGate(recordPolicyGateID,
	"When enabled, kept spans carry the name of the policy that sampled their trace in the scope attribute "+
		"tailsampling.policy (and tailsampling.composite_policy, tailsampling.cached_decision), as the record_policy key does.")

// registerGate registers a gate under upstream's ID, or finds the one
// already registered under it (a binary that links upstream's processor
// too).
func registerGate(id, description string) *featuregate.Gate {
	g, err := featuregate.GlobalRegistry().Register(id, featuregate.StageAlpha,
		featuregate.WithRegisterDescription(description),
		featuregate.WithRegisterReferenceURL("https://github.com/open-telemetry/opentelemetry-collector-contrib/issues/35180"))
	if err == nil {
		return g
	}
	featuregate.GlobalRegistry().VisitAll(func(o *featuregate.Gate) {
		if o.ID() == id {
			g = o
		}
	})
	if g == nil {
		panic(err)
	}
	return g
}
