package testbed

import (
	"time"

	"github.com/vigilhq/vigil/benchmarks/testbed/topo"
	"github.com/vigilhq/vigil/internal/simulate"
)

// secondary are the alerts that are true secondary symptoms of a fault that
// spreads: raising them is not a false alarm, not raising them not a miss.
var secondary = []string{
	simulate.AlertDependencyTimeoutPressure, simulate.AlertRetryStorm, simulate.AlertErrorLogBurst,
	simulate.AlertSaturation, simulate.AlertDependencyErrorSpike, simulate.AlertDependencyLatencySpike,
	simulate.AlertErrorBudgetBurn,
}

// contained are the secondary symptoms of a fault every caller contains.
var contained = []string{simulate.AlertErrorLogBurst, simulate.AlertErrorBudgetBurn}

// faultTruth is the ground truth of one injected fault: its origin, the
// services it reaches from the call graph, and the alerts a good detector
// raises.
func faultTruth(t *topo.Topology, f topo.FaultSpec, size float64, detail string, start, end time.Time) simulate.Fault {
	_, isDB := topo.DBName(f.Target)
	affected := t.Affected(f)
	origin := simulate.AlertIsolatedFailure
	tolerate := contained
	if len(affected) > 0 {
		origin = simulate.AlertCascadingFailure
		tolerate = secondary
	}
	exp := []simulate.Expectation{{Alertname: origin, Labels: map[string]string{"origin_service": f.Target}}}
	switch caller := t.NearestCaller(f); {
	case f.Kind == topo.KindPoolExhaustion:
		// As in the simulator's pool-exhaustion scenario: the pool's own
		// metrics name the cause, before and while its callers fail.
		exp = append(exp, simulate.Expectation{Alertname: simulate.AlertSaturation,
			Labels: map[string]string{"service": f.Target, "resource": "db_connection_pool"}})
	case caller != "":
		symptom := simulate.AlertDependencyErrorSpike
		if topo.LatencyOnly(f.Kind) {
			symptom = simulate.AlertDependencyLatencySpike
		}
		exp = append(exp, simulate.Expectation{Alertname: symptom, Labels: map[string]string{"service": caller, "callee": f.Target}})
	}
	return simulate.Fault{
		Origin: f.Target, External: isDB, Kind: f.Kind, Detail: detail, Size: size,
		Start: start, TriggerEnd: end, End: end,
		Affected: affected, Expect: exp, Tolerate: append([]string(nil), tolerate...),
	}
}
