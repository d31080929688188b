package main

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vigilhq/vigil/benchmarks/resultsdoc"
	"github.com/vigilhq/vigil/connectors/redflagconnector/internal/detect"
	"github.com/vigilhq/vigil/connectors/redflagconnector/internal/eval"
	"github.com/vigilhq/vigil/internal/simulate"
)

// simOptions are the simulator evaluation's flags.
type simOptions struct {
	seeds, scenarios string
	negHours, rate   float64
	verbose          bool
	results          string
	mesh             bool
}

func runSim(o simOptions) error {
	seeds, scenarios, negHours, rate, verbose, resultsFile := &o.seeds, &o.scenarios, &o.negHours, &o.rate, &o.verbose, &o.results
	lo, hi := 101, 110
	if _, err := fmt.Sscanf(*seeds, "%d-%d", &lo, &hi); err != nil {
		return fmt.Errorf("bad -seeds %q: %w", *seeds, err)
	}
	names := simulate.ScenarioNames()
	if *scenarios != "" {
		names = strings.Split(*scenarios, ",")
	}
	infos := map[string]simulate.ScenarioInfo{}
	for _, i := range simulate.Scenarios() {
		infos[i.Name] = i
	}
	type job struct {
		scenario string
		seed     int64
		o        eval.Options
	}
	var jobs []job
	base := eval.Options{Rate: *rate, FaultAfter: 15 * time.Minute, FaultDuration: 10 * time.Minute, After: 10 * time.Minute,
		Config: detect.DefaultConfig(), JoinSample: 1, Mesh: o.mesh}
	for _, n := range names {
		info, ok := infos[n]
		if !ok {
			return fmt.Errorf("unknown scenario %q", n)
		}
		if info.Negative {
			o := base
			o.Duration = time.Duration(*negHours * float64(time.Hour))
			o.Rate = min(*rate, 20)
			jobs = append(jobs, job{n, int64(lo), o})
			continue
		}
		for s := lo; s <= hi; s++ {
			jobs = append(jobs, job{n, int64(s), base})
		}
	}
	results := make([]eval.Score, len(jobs))
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	start := time.Now()
	for i, j := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r, err := eval.Simulate(j.scenario, j.seed, j.o)
			if err != nil {
				errs[i] = err
				return
			}
			results[i] = eval.ScoreRun(r)
			if *verbose {
				fmt.Fprintf(os.Stderr, "%-22s seed %3d  %6.1fM spans  %5.1fs  firings %d  fp %d\n", j.scenario, j.seed,
					float64(r.Spans)/1e6, r.Wall.Seconds(), len(r.Firings), len(results[i].FalsePositives))
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	var all, single, cascade eval.Summary
	perScenario := map[string]*eval.Summary{}
	for i, s := range results {
		neg := infos[jobs[i].scenario].Negative
		all.Add(s, neg)
		if len(s.Run.Truth.Faults) == 1 {
			single.Add(s, neg)
		}
		ps := perScenario[jobs[i].scenario]
		if ps == nil {
			ps = &eval.Summary{}
			perScenario[jobs[i].scenario] = ps
		}
		ps.Add(s, neg)
	}
	_ = cascade
	var rep strings.Builder
	printf := func(format string, a ...any) {
		fmt.Printf(format, a...)
		fmt.Fprintf(&rep, format, a...)
	}
	section := "eval-redflags"
	if o.mesh {
		section = "eval-redflags-mesh"
		printf("## Red-flag detector evaluation on the simulator's mesh metrics only (`make eval-redflags`)\n\n")
		printf("The same runs, with the spans replaced by what Istio's sidecars would have reported for the same calls " +
			"(istio_requests_total and istio_request_duration_milliseconds from both sidecars of each call, Istio's default buckets, " +
			"scraped every 15 s; the application's own timeouts, open circuits and refused connections reported as the mesh's UT, UO and UF; " +
			"calls to a database outside the mesh not reported), read by the connector's mesh converter. Logs and metrics as in the runs above. " +
			"No span reaches the detectors: no joins, no retries, no per-request exclusive time.\n\n")
	} else {
		printf("## Red-flag detector evaluation on the simulator (`make eval-redflags`)\n\n")
	}
	printf("Written by `make eval-redflags`: every simulator scenario over held-out seeds %d-%d (thresholds were tuned on seeds 1-20), "+
		"at %.0f root requests/s (negative controls at %.0f for %.0f simulated hours each), through the connector's own extraction and detector code "+
		"on a virtual clock, evaluated every 10 s. A fault counts as detected when its headline alert (CascadingFailure or IsolatedFailure, "+
		"else its first expected alert) fires between the fault's start and 5 minutes after its end; time to detect is from the fault's start to "+
		"the first expected alert firing; origin top-1 is whether the first CascadingFailure names the true origin. Commit %s, %s, %d runs, %s wall.\n\n",
		lo, hi, *rate, min(*rate, 20), *negHours, commitHash(), time.Now().UTC().Format("2006-01-02"), len(jobs), time.Since(start).Round(time.Second))
	printf("| scenario | runs | detected | origin top-1 | expected alerts met | TTD p50 | TTD p90 | false alarms |\n|---|---|---|---|---|---|---|---|\n")
	for _, n := range names {
		ps := perScenario[n]
		origin := "-"
		if ps.CascadeFaults > 0 {
			origin = fmt.Sprintf("%d/%d", ps.OriginRight, ps.CascadeFaults)
		}
		det := "-"
		if ps.Faults > 0 {
			det = fmt.Sprintf("%d/%d", ps.Detected, ps.Faults)
		}
		fa := fmt.Sprintf("%d", ps.FalsePositives)
		if ps.NegativeHours > 0 {
			fa = fmt.Sprintf("%d in %.0f h", ps.NegativeFalseAlarms, ps.NegativeHours)
		}
		printf("| %s | %d | %s | %s | %d/%d | %s | %s | %s |\n", n, ps.Runs, det, origin, ps.ExpectMet, ps.ExpectTotal,
			dur(eval.Percentile(ps.TTD, 0.5)), dur(eval.Percentile(ps.TTD, 0.9)), fa)
	}
	prec := float64(all.TruePositives) / float64(max(1, all.TruePositives+all.FalsePositives))
	printf("\n- precision %.3f (%d of %d firing alerts explained by a fault)\n", prec, all.TruePositives, all.TruePositives+all.FalsePositives)
	printf("- recall, single-fault scenarios: %d/%d faults detected\n", single.Detected, single.Faults)
	printf("- top-1 origin on cascade scenarios: %d/%d\n", all.OriginRight, all.CascadeFaults)
	if o.mesh {
		// A database's calls are TCP to a sidecar: a fault inside one is
		// seen at its callers, which is where the page can point.
		inMesh, inMeshRight, outside := 0, 0, map[string]int{}
		for _, sc := range results {
			for i, f := range sc.Run.Truth.Faults {
				if i >= len(sc.OriginCorrect) || eval.Headline(f) != simulate.AlertCascadingFailure {
					continue
				}
				if !f.External {
					inMesh++
					inMeshRight += max(sc.OriginCorrect[i], 0)
					continue
				}
				named := "none"
				for _, fr := range sc.Run.Firings {
					if fr.Name() == simulate.AlertCascadingFailure && !fr.At.Before(f.Start) {
						named = fr.Labels["origin_service"]
						break
					}
				}
				outside[f.Origin+" -> named "+named]++
			}
		}
		printf("- top-1 origin on cascades that start in a service of the mesh: %d/%d\n", inMeshRight, inMesh)
		for _, k := range slices.Sorted(maps.Keys(outside)) {
			printf("- cascades that start in a database outside the mesh: %s (%d)\n", k, outside[k])
		}
	}
	printf("- time to detect: p50 %s, p90 %s\n", dur(eval.Percentile(all.TTD, 0.5)), dur(eval.Percentile(all.TTD, 0.9)))
	printf("- false alarms in negative controls: %d in %.0f simulated hours\n", all.NegativeFalseAlarms, all.NegativeHours)
	if len(all.Misses) > 0 {
		printf("\nMissed faults:\n\n")
		for _, m := range all.Misses {
			printf("- %s\n", m)
		}
	}
	if len(all.Unmet) > 0 {
		printf("\nExpected alerts not raised:\n\n")
		for _, m := range all.Unmet {
			printf("- %s\n", m)
		}
	}
	if len(all.FalseAlarms) > 0 {
		printf("\nFiring alerts no fault explains:\n\n")
		for _, m := range all.FalseAlarms {
			printf("- %s\n", m)
		}
	}
	if *resultsFile != "" {
		return resultsdoc.Replace(*resultsFile, section, rep.String())
	}
	return nil
}
