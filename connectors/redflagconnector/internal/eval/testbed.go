package eval

import (
	"net/netip"
	"time"

	"github.com/vigilhq/vigil/internal/simulate"
)

// TestbedScore is how the detectors did on one topology of a testbed run.
type TestbedScore struct {
	Score
	// ControlFalseAlarms are, per negative control (Truth.Events), the
	// firings no fault explains from its start to Grace after its end.
	ControlFalseAlarms [][]Firing
	// AddressOrigins are incidents whose origin_service is an IP address.
	AddressOrigins []Firing
}

// ScoreTestbed scores a testbed run: each firing is given to the topology
// owner names (by its labels; "" for none), and each topology's firings are
// scored against its truth. Firings no topology owns are returned apart:
// they are false alarms too.
func ScoreTestbed(truths []simulate.Truth, firings []Firing, owner func(labels map[string]string) string) (scores []TestbedScore, unowned []Firing) {
	byTopo := map[string][]Firing{}
	for _, f := range firings {
		t := owner(f.Labels)
		if t == "" {
			unowned = append(unowned, f)
			continue
		}
		byTopo[t] = append(byTopo[t], f)
	}
	for _, truth := range truths {
		run := &Run{Scenario: truth.Scenario, Seed: truth.Seed, Truth: truth, Firings: byTopo[truth.Scenario]}
		ts := TestbedScore{Score: ScoreRun(run)}
		for _, ev := range truth.Events {
			var fa []Firing
			for _, fp := range ts.FalsePositives {
				if !fp.At.Before(ev.Start) && fp.At.Before(ev.End.Add(Grace)) {
					fa = append(fa, fp)
				}
			}
			ts.ControlFalseAlarms = append(ts.ControlFalseAlarms, fa)
		}
		for _, f := range run.Firings {
			if o := f.Labels["origin_service"]; o != "" {
				if _, err := netip.ParseAddr(o); err == nil {
					ts.AddressOrigins = append(ts.AddressOrigins, f)
				}
			}
		}
		scores = append(scores, ts)
	}
	return scores, unowned
}

// Elapsed is how long after start t was (rounded to a second), for reports.
func Elapsed(start, t time.Time) time.Duration { return t.Sub(start).Round(time.Second) }
