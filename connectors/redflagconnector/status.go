package redflagconnector

import (
	"fmt"
	"time"

	"go.opentelemetry.io/collector/component"

	"github.com/vigilhq/vigil/connectors/redflagconnector/internal/detect"
	"github.com/vigilhq/vigil/internal/redflag"
)

func findPublisher(host component.Host, id component.ID) (redflag.Publisher, error) {
	ext, ok := host.GetExtensions()[id]
	if !ok {
		return nil, fmt.Errorf("status: extension %q is not configured (add it under extensions and service.extensions)", id)
	}
	s, ok := ext.(redflag.Publisher)
	if !ok {
		return nil, fmt.Errorf("status: extension %q cannot receive red-flag state (use a vigil_status extension)", id)
	}
	return s, nil
}

// snapshot builds the state published after an evaluation: the views in the
// contract's shape, and the flagged set with the names that resolve callees.
func (c *core) snapshot(now time.Time, edges []detect.EdgeView, svcs []detect.ServiceView, alerts []detect.Alert, counters map[string]int64) *redflag.Snapshot {
	snap := &redflag.Snapshot{At: now, Counters: counters,
		Edges: make([]redflag.EdgeState, len(edges)), Services: make([]redflag.ServiceState, len(svcs)), Alerts: make([]redflag.Alert, len(alerts))}
	for i := range edges {
		e := &edges[i]
		snap.Edges[i] = redflag.EdgeState{
			Caller: e.Caller, Callee: e.Callee, CalleeKind: e.CalleeKind, Namespace: e.Namespace,
			Calls: e.Last5m.Calls, Errors: e.Last5m.Errors, Cancelled: e.Last5m.Cancelled,
			ErrorRatio: e.ErrorRatio, RetryRatio: e.RetryRatio, P50Ms: e.P50Ms, P99Ms: e.P99Ms, TimeoutMs: e.TimeoutMs,
			Anomalous: e.Anomalous, Slow: e.Slow, Flagged: e.Flagged,
		}
	}
	for i := range svcs {
		s := &svcs[i]
		snap.Services[i] = redflag.ServiceState{Name: s.Name, Namespace: s.Namespace, Calls: s.Last5m.Calls, ErrorRatio: s.ErrorRatio,
			P99Ms: s.P99Ms, Failing: s.Failing, Slow: s.Slow, Origin: s.Origin}
	}
	for i := range alerts {
		a := &alerts[i]
		snap.Alerts[i] = redflag.Alert{Labels: a.Labels, Annotations: a.Annotations, State: string(a.State), ActiveAt: a.ActiveAt, FiredAt: a.FiredAt}
	}
	fe, fs := c.eng.Flagged()
	pairs := make([]redflag.Edge, len(fe))
	for i, e := range fe {
		pairs[i] = redflag.Edge{Caller: e[0], Callee: e[1]}
	}
	snap.Flags = redflag.NewFlagSet(pairs, fs, c.eng.Names())
	return snap
}
