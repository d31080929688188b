// Package eval measures the red-flag detectors against the fault simulator:
// every scenario over several seeds, on a virtual clock, through the same
// extraction and detector code the connector runs. It scores what fired
// against the simulator's ground truth.
package eval

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/vigilhq/vigil/connectors/redflagconnector/internal/detect"
	"github.com/vigilhq/vigil/connectors/redflagconnector/internal/edges"
	"github.com/vigilhq/vigil/internal/simulate"
)

// Firing is an alert that fired during a run, in virtual time.
type Firing struct {
	Labels      map[string]string
	At          time.Time // fired (pending -> firing)
	ResolvedAt  time.Time // zero if still firing at the end
	Annotations map[string]string
}

// Name is the alertname.
func (f Firing) Name() string { return f.Labels["alertname"] }

// Run is one scenario with one seed.
type Run struct {
	Scenario string
	Seed     int64
	Truth    simulate.Truth
	Firings  []Firing
	Spans    int64
	Duration time.Duration
	Wall     time.Duration
}

// Options size a run.
type Options struct {
	Rate          float64
	FaultAfter    time.Duration
	FaultDuration time.Duration
	After         time.Duration // simulated time after the fault ends
	Duration      time.Duration // total, for negative controls (0: FaultAfter+FaultDuration+After)
	Config        detect.Config
	JoinSample    float64
	// Mesh replaces the spans with what Istio's sidecars would have
	// reported for the same calls (istioEmu), scraped every ScrapeInterval
	// (15 s when zero), as for a team whose only per-call telemetry is its
	// mesh's. Logs and metrics are fed as they are.
	Mesh           bool
	ScrapeInterval time.Duration
}

// Simulate runs one scenario through the detectors, evaluating every 10 s of
// virtual time, and returns what fired.
func Simulate(scenario string, seed int64, o Options) (*Run, error) {
	wall := time.Now()
	sim, err := simulate.New(simulate.Config{Scenario: scenario, Seed: seed, RootRate: o.Rate,
		FaultAfter: o.FaultAfter, FaultDuration: o.FaultDuration})
	if err != nil {
		return nil, err
	}
	x := edges.New(edges.Settings{JoinSampleRatio: o.JoinSample, MaxJoinEntries: 100_000, MetricNames: metricNames(o.Config)})
	eng := detect.New(o.Config)
	total := o.Duration
	if total == 0 {
		total = o.FaultAfter + o.FaultDuration + o.After
	}
	run := &Run{Scenario: scenario, Seed: seed, Truth: sim.Truth(), Duration: total}
	open := map[string]int{}
	var b detect.Batch
	step := detect.BucketWidth
	var emu *istioEmu
	var mesh *edges.Mesh
	scrapeEvery := o.ScrapeInterval
	if o.Mesh {
		emu, mesh = newIstioEmu(), edges.NewMesh(100_000)
		if scrapeEvery <= 0 {
			scrapeEvery = 15 * time.Second
		}
		step = 5 * time.Second // scrapes land between evaluations
	}
	for elapsed := time.Duration(0); elapsed < total; {
		batch := sim.Advance(step)
		elapsed += step
		now := sim.Now()
		if o.Mesh {
			emu.add(batch.Traces, now.Add(-step+time.Millisecond))
			if elapsed%scrapeEvery == 0 {
				mesh.Metrics(emu.scrape(now), now, &b)
			}
		} else {
			x.Traces(batch.Traces, now, &b)
		}
		x.Logs(batch.Logs, &b)
		x.Metrics(batch.Metrics, &b)
		run.Spans += int64(batch.Traces.SpanCount())
		if elapsed%detect.BucketWidth != 0 {
			continue
		}
		eng.Apply(now.Add(-time.Millisecond), &b)
		b.Reset()
		for _, tr := range eng.Evaluate(now) {
			key := fmt.Sprint(tr.Alert.Labels)
			switch tr.Alert.State {
			case detect.Firing:
				open[key] = len(run.Firings)
				run.Firings = append(run.Firings, Firing{Labels: tr.Alert.Labels, At: now, Annotations: tr.Alert.Annotations})
			case detect.Resolved:
				if i, ok := open[key]; ok && tr.From == detect.Firing {
					run.Firings[i].ResolvedAt = now
					delete(open, key)
				}
			}
		}
	}
	run.Wall = time.Since(wall)
	return run, nil
}

// matches reports whether a firing satisfies an expectation: same alertname
// and every expected label equal.
func matches(f Firing, e simulate.Expectation) bool {
	if f.Name() != e.Alertname {
		return false
	}
	for k, v := range e.Labels {
		if f.Labels[k] != v {
			return false
		}
	}
	return true
}

// Grace is how long after a fault ends an alert about it still counts.
const Grace = 5 * time.Minute

// Score is what one run achieved.
type Score struct {
	Run *Run
	// Per fault: was the headline alert raised, did the first cascade name the
	// right origin, how long to the first expected alert.
	Detected       []bool
	OriginCorrect  []int // 1 right, 0 wrong, -1 no cascade expected/raised
	TTD            []time.Duration
	ExpectMet      int
	ExpectTotal    int
	Unmet          []string
	TruePositives  int // firings explained by a fault (expected or tolerated)
	FalsePositives []Firing
}

// Headline is the alert that says the fault was found (see headline).
func Headline(f simulate.Fault) string { return headline(f) }

// headline is the alert that says the fault was found: CascadingFailure or
// IsolatedFailure when expected, else the first expected alert.
func headline(f simulate.Fault) string {
	for _, e := range f.Expect {
		if e.Alertname == simulate.AlertCascadingFailure || e.Alertname == simulate.AlertIsolatedFailure {
			return e.Alertname
		}
	}
	if len(f.Expect) > 0 {
		return f.Expect[0].Alertname
	}
	return ""
}

// ScoreRun compares what fired with the truth.
func ScoreRun(r *Run) Score {
	s := Score{Run: r}
	explained := make([]bool, len(r.Firings))
	for _, f := range r.Truth.Faults {
		lo, hi := f.Start, f.End.Add(Grace)
		in := func(fr Firing) bool { return !fr.At.Before(lo) && fr.At.Before(hi) }
		detected, origin, ttd := false, -1, time.Duration(-1)
		for _, e := range f.Expect {
			s.ExpectTotal++
			met := false
			for i, fr := range r.Firings {
				if in(fr) && matches(fr, e) {
					met, explained[i] = true, true
					if ttd < 0 || fr.At.Sub(f.Start) < ttd {
						ttd = fr.At.Sub(f.Start)
					}
					if e.Alertname == headline(f) {
						detected = true
					}
				}
			}
			if met {
				s.ExpectMet++
			} else {
				s.Unmet = append(s.Unmet, e.Alertname+labelsExcept(e.Labels))
			}
		}
		// Origin: the first cascade (or isolated failure) fired in the window.
		want := headline(f)
		if want == simulate.AlertCascadingFailure || want == simulate.AlertIsolatedFailure {
			for _, fr := range r.Firings {
				if in(fr) && (fr.Name() == simulate.AlertCascadingFailure || fr.Name() == simulate.AlertIsolatedFailure) {
					origin = 0
					if fr.Labels["origin_service"] == f.Origin {
						origin = 1
					}
					break
				}
			}
			if origin < 0 {
				origin = 0
			}
		}
		for i, fr := range r.Firings {
			if explained[i] || !in(fr) {
				continue
			}
			if slices.Contains(f.Tolerate, fr.Name()) || relatesTo(fr, f) {
				explained[i] = true
			}
		}
		s.Detected = append(s.Detected, detected)
		s.OriginCorrect = append(s.OriginCorrect, origin)
		s.TTD = append(s.TTD, ttd)
	}
	for i, fr := range r.Firings {
		if explained[i] {
			s.TruePositives++
		} else {
			s.FalsePositives = append(s.FalsePositives, fr)
		}
	}
	return s
}

// relatesTo: a symptom alert on the origin or a service the fault spreads to
// (an edge into the origin, or from an affected service) is about the fault.
func relatesTo(fr Firing, f simulate.Fault) bool {
	set := map[string]bool{f.Origin: true}
	for _, a := range f.Affected {
		set[a] = true
	}
	if o := fr.Labels["origin_service"]; o != "" {
		return o == f.Origin
	}
	return set[fr.Labels["callee"]] || (set[fr.Labels["service"]] && fr.Name() != simulate.AlertCascadingFailure)
}

// Summary aggregates scores.
type Summary struct {
	Runs                       int
	Faults, Detected           int
	CascadeFaults, OriginRight int
	TTD                        []time.Duration
	TruePositives              int
	FalsePositives             int
	NegativeHours              float64
	NegativeFalseAlarms        int
	ExpectMet, ExpectTotal     int
	Misses                     []string
	FalseAlarms                []string
	Unmet                      []string
}

// Add folds a score into the summary.
func (m *Summary) Add(s Score, negative bool) {
	m.Runs++
	r := s.Run
	for i, f := range r.Truth.Faults {
		m.Faults++
		if s.Detected[i] {
			m.Detected++
		} else {
			m.Misses = append(m.Misses, fmt.Sprintf("%s seed %d: %s not raised for origin %s (fired: %s)", r.Scenario, r.Seed, headline(f), f.Origin, firedNames(r.Firings)))
		}
		if headline(f) == simulate.AlertCascadingFailure {
			m.CascadeFaults++
			if s.OriginCorrect[i] == 1 {
				m.OriginRight++
			}
		}
		if s.TTD[i] >= 0 {
			m.TTD = append(m.TTD, s.TTD[i])
		}
	}
	for _, u := range s.Unmet {
		m.Unmet = append(m.Unmet, fmt.Sprintf("%s seed %d: %s (fired: %s)", r.Scenario, r.Seed, u, firedNames(r.Firings)))
	}
	m.ExpectMet += s.ExpectMet
	m.ExpectTotal += s.ExpectTotal
	m.TruePositives += s.TruePositives
	m.FalsePositives += len(s.FalsePositives)
	if negative {
		m.NegativeHours += r.Duration.Hours()
		m.NegativeFalseAlarms += len(s.FalsePositives)
	}
	for _, fp := range s.FalsePositives {
		m.FalseAlarms = append(m.FalseAlarms, fmt.Sprintf("%s seed %d at +%s: %s %v", r.Scenario, r.Seed,
			fp.At.Sub(r.Truth.Start).Round(time.Second), fp.Name(), labelsExcept(fp.Labels)))
	}
}

func firedNames(fs []Firing) string {
	set := map[string]bool{}
	for _, f := range fs {
		set[f.Name()+labelsExcept(f.Labels)] = true
	}
	return fmt.Sprint(slices.Sorted(maps.Keys(set)))
}

func labelsExcept(l map[string]string) string {
	keys := slices.Sorted(maps.Keys(l))
	out := "{"
	for _, k := range keys {
		if k == "alertname" || k == "severity" || k == "cascade_id" {
			continue
		}
		if len(out) > 1 {
			out += ","
		}
		out += k + "=" + l[k]
	}
	return out + "}"
}

// Percentile returns the p-quantile of ds (0 if empty).
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(p*float64(len(s)-1) + 0.5)
	return s[i]
}
