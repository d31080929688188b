package eval

import (
	"fmt"
	"time"

	"github.com/vigilhq/vigil/connectors/redflagconnector/internal/detect"
	"github.com/vigilhq/vigil/connectors/redflagconnector/internal/edges"
	"github.com/vigilhq/vigil/internal/alertevent"
)

// Replay feeds a recording through the connector's extraction and detectors
// on a virtual clock: each request is applied at its arrival time, and the
// detectors evaluate every 10 s of recorded time, as the connector would
// have live. With mesh, the spans are replaced by what Istio's sidecars
// would have reported for the same calls (istioEmu), scraped every 15 s of
// recorded time. It returns what fired.
func Replay(path string, cfg detect.Config, joinSample float64, mesh bool) ([]Firing, error) {
	x := edges.New(edges.Settings{JoinSampleRatio: joinSample, MaxJoinEntries: 100_000, MetricNames: metricNames(cfg)})
	eng := detect.New(cfg)
	var emu *istioEmu
	var conv *edges.Mesh
	var nextScrape time.Time
	const scrapeEvery = 15 * time.Second
	if mesh {
		emu, conv = newIstioEmu(), edges.NewMesh(100_000)
	}
	var firings []Firing
	open := map[string]int{}
	var next time.Time
	evaluate := func(now time.Time) {
		for _, tr := range eng.Evaluate(now) {
			key := fmt.Sprint(tr.Alert.Labels)
			switch tr.Alert.State {
			case detect.Firing:
				open[key] = len(firings)
				firings = append(firings, Firing{Labels: tr.Alert.Labels, At: now, Annotations: tr.Alert.Annotations})
			case detect.Resolved:
				if i, ok := open[key]; ok && tr.From == detect.Firing {
					firings[i].ResolvedAt = now
					delete(open, key)
				}
			}
		}
	}
	var b detect.Batch
	err := ReadRecording(path, func(f Frame) error {
		if next.IsZero() {
			next = f.At.Truncate(detect.BucketWidth).Add(detect.BucketWidth)
		}
		for !f.At.Before(next) {
			evaluate(next)
			next = next.Add(detect.BucketWidth)
		}
		if mesh {
			if nextScrape.IsZero() {
				nextScrape = f.At.Truncate(scrapeEvery).Add(scrapeEvery)
			}
			for !f.At.Before(nextScrape) {
				b.Reset()
				conv.Metrics(emu.scrape(nextScrape), nextScrape, &b)
				eng.Apply(nextScrape, &b)
				nextScrape = nextScrape.Add(scrapeEvery)
			}
		}
		b.Reset()
		switch f.Signal {
		case SignalTraces:
			if mesh {
				emu.add(f.Traces, f.At)
				return nil
			}
			x.Traces(f.Traces, f.At, &b)
		case SignalMetrics:
			x.Metrics(f.Metrics, &b)
		case SignalLogs:
			x.Logs(f.Logs, &b)
		}
		eng.Apply(f.At, &b)
		return nil
	})
	if err != nil {
		return firings, err
	}
	evaluate(next)
	return firings, nil
}

func metricNames(cfg detect.Config) map[string]bool {
	names := map[string]bool{"http.server.active_requests": true}
	for _, r := range cfg.Saturation.Rules {
		for _, n := range []string{r.Metric, r.Limit, r.Waiters, r.Timeouts} {
			if n != "" {
				names[n] = true
			}
		}
	}
	return names
}

// FiringsFromEvents turns alert events, as an agent sends them, into the
// alerts that fired and when they resolved.
func FiringsFromEvents(evs []alertevent.Event) []Firing {
	var out []Firing
	open := map[string]int{}
	for _, ev := range evs {
		key := fmt.Sprint(ev.Labels)
		switch ev.State {
		case alertevent.StateFiring:
			if _, ok := open[key]; ok {
				continue // a resend
			}
			open[key] = len(out)
			out = append(out, Firing{Labels: ev.Labels, At: ev.FiredAt, Annotations: ev.Annotations})
		case alertevent.StateResolved:
			if i, ok := open[key]; ok {
				out[i].ResolvedAt = ev.ResolvedAt
				delete(open, key)
			}
		}
	}
	return out
}
