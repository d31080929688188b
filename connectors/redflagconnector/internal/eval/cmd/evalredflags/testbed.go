package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vigilhq/vigil/benchmarks/resultsdoc"
	"github.com/vigilhq/vigil/benchmarks/testbed"
	"github.com/vigilhq/vigil/benchmarks/testbed/topo"
	"github.com/vigilhq/vigil/connectors/redflagconnector/internal/detect"
	"github.com/vigilhq/vigil/connectors/redflagconnector/internal/eval"
	"github.com/vigilhq/vigil/internal/simulate"
)

// testbedOptions are the testbed evaluation's flags.
type testbedOptions struct {
	live                      bool
	replay                    string
	seeds                     string
	seed                      int64 // of the live run under way
	plan, topologies          string
	vigil, testbed, toxiproxy string
	record, workDir, results  string
	mesh                      bool // replay with the spans replaced by Istio's metrics
}

// settle is how long the agent runs on after the plan ends, so alerts
// resolving at its end are seen (two evaluations and a resend).
const settle = 30 * time.Second

func runTestbed(o testbedOptions) error {
	start := time.Now()
	// Each run is scored against its own truth: runs of one topology
	// (several seeds) must not judge each other's alerts.
	var scores []eval.TestbedScore
	var unowned []eval.Firing
	add := func(truths []simulate.Truth, firings []eval.Firing) {
		s, u := eval.ScoreTestbed(truths, firings, owner)
		scores, unowned = append(scores, s...), append(unowned, u...)
	}
	var source string
	if o.replay != "" {
		for _, path := range strings.Split(o.replay, ",") {
			ts, err := readTruths(path + ".truth.json")
			if err != nil {
				return err
			}
			fs, err := eval.Replay(path, detect.DefaultConfig(), 1, o.mesh)
			if err != nil {
				return err
			}
			add(ts, fs)
		}
		source = "replayed from recordings of live runs (" + o.replay + ") through the connector's extraction and detectors on a virtual clock"
	} else {
		seeds, err := parseSeedList(o.seeds)
		if err != nil {
			return err
		}
		record, workDir := o.record, o.workDir
		for i, seed := range seeds {
			o.seed = seed
			if len(seeds) > 1 {
				suffix := strconv.FormatInt(seed, 10)
				if record != "" {
					o.record = record + "." + suffix
				}
				if workDir != "" {
					o.workDir = filepath.Join(workDir, suffix)
				}
			}
			ts, fs, err := live(o)
			if err != nil {
				return fmt.Errorf("testbed seed %d: %w", seed, err)
			}
			add(ts, fs)
			if i < len(seeds)-1 {
				// Report the seeds done so far: a long series cut short
				// still leaves its finished runs on record.
				if err := report(o, scores, unowned, liveSource(o), time.Since(start)); err != nil {
					return err
				}
			}
		}
		source = liveSource(o)
	}
	return report(o, scores, unowned, source, time.Since(start))
}

func liveSource(o testbedOptions) string {
	version := "version unknown"
	if out, err := exec.Command(o.vigil, "--version").Output(); err == nil {
		version = strings.TrimSpace(string(out))
	}
	return fmt.Sprintf("live: the services exported over OTLP to `vigil` (%s, %s) running the red-flag connector with its defaults, whose alert events were collected", o.vigil, version)
}

// live runs the testbed against the vigil binary and returns the truth and
// what fired.
func live(o testbedOptions) ([]simulate.Truth, []eval.Firing, error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir := o.workDir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "vigil-eval-"); err != nil {
			return nil, nil, fmt.Errorf("cannot create a work directory: %w", err)
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("cannot create the work directory: %w", err)
	}
	var rec *os.File
	if o.record != "" {
		var err error
		if rec, err = os.Create(o.record); err != nil {
			return nil, nil, fmt.Errorf("cannot create the recording: %w", err)
		}
		defer rec.Close()
	}
	var w io.Writer
	if rec != nil {
		w = rec
	}
	recv, err := eval.StartReceiver("127.0.0.1:0", w)
	if err != nil {
		return nil, nil, err
	}
	agent, err := eval.StartAgent(ctx, eval.AgentOptions{Bin: o.vigil, Receiver: recv.Addr, Record: rec != nil, Dir: dir})
	if err != nil {
		_ = recv.Stop()
		return nil, nil, err
	}
	fmt.Fprintf(os.Stderr, "evalredflags: vigil on %s, testbed seed %d, plan %s, work dir %s\n", agent.Endpoint, o.seed, o.plan, dir)
	var tops []string
	if o.topologies != "" {
		tops = strings.Split(o.topologies, ",")
	}
	truths, runErr := testbed.Run(ctx, testbed.Options{
		Bin: o.testbed, Endpoint: agent.Endpoint, Seed: o.seed, Plan: o.plan, Topologies: tops,
		WorkDir: filepath.Join(dir, "testbed"), Toxiproxy: o.toxiproxy, Log: os.Stderr,
	})
	if runErr == nil {
		time.Sleep(settle)
	}
	agent.Stop()
	if err := recv.Stop(); err != nil && runErr == nil {
		runErr = err
	}
	if runErr != nil {
		return nil, nil, runErr
	}
	if o.record != "" {
		if err := writeTruths(o.record+".truth.json", truths); err != nil {
			return nil, nil, err
		}
	}
	return truths, eval.FiringsFromEvents(recv.Events()), nil
}

// parseSeedList reads comma-separated testbed seeds.
func parseSeedList(s string) ([]int64, error) {
	var out []int64
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("bad -testbed-seed %q: want a seed or comma-separated seeds", s)
		}
		out = append(out, n)
	}
	return out, nil
}

func writeTruths(path string, ts []simulate.Truth) error {
	b, err := json.MarshalIndent(ts, "", "  ")
	if err != nil {
		return fmt.Errorf("cannot encode the truth: %w", err)
	}
	return os.WriteFile(path, b, 0o644)
}

func readTruths(path string) ([]simulate.Truth, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read the truth of a recording: %w", err)
	}
	var ts []simulate.Truth
	if err := json.Unmarshal(b, &ts); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ts, nil
}

// owner names the topology an alert is about: its namespace label (every
// testbed service states its topology as its Kubernetes namespace), else the
// topology one of its services or databases belongs to.
func owner(labels map[string]string) string {
	if ns := labels["k8s_namespace_name"]; ns != "" {
		return ns
	}
	for _, name := range topo.Names() {
		t, _ := topo.Get(name)
		for _, k := range []string{"origin_service", "service", "callee"} {
			v := labels[k]
			if v == "" {
				continue
			}
			for _, s := range t.Services {
				if s.Name == v {
					return name
				}
			}
			for _, db := range t.Databases {
				if topo.DBOrigin(db) == v {
					return name
				}
			}
		}
	}
	return ""
}

func report(o testbedOptions, scores []eval.TestbedScore, unowned []eval.Firing, source string, wall time.Duration) error {
	var rep strings.Builder
	printf := func(format string, a ...any) {
		fmt.Printf(format, a...)
		fmt.Fprintf(&rep, format, a...)
	}
	seeds := map[int64]bool{}
	for _, s := range scores {
		seeds[s.Run.Truth.Seed] = true
	}
	section := "eval-redflags-testbed"
	if o.mesh {
		section = "eval-redflags-testbed-mesh"
		printf("## Red-flag detector evaluation on the testbed's mesh metrics only (`make eval-redflags`)\n\n")
		printf("The recordings below replayed with every span replaced by what Istio's sidecars would have reported for the same call, " +
			"as in the simulator's mesh-only run (both sidecars, Istio's buckets, scraped every 15 s of recorded time; the services' own " +
			"timeouts, breakers and refused connections as UT, UO, UF; database calls not reported). Unlike the simulator, the testbed " +
			"does not mark how late a CPU-starved caller handled its answers, so its client spans' inflated durations are reported as " +
			"its sidecar's, which a real sidecar would not see.\n\n")
	} else {
		printf("## Red-flag detector evaluation on the testbed of real services (`make eval-redflags`)\n\n")
	}
	printf("Written by `make eval-redflags`: the testbed (benchmarks/testbed: Go services instrumented with otelgrpc, otelhttp and otelsql, "+
		"exporting with the OpenTelemetry SDK, faults injected with toxiproxy, cgroups and in the services) with seed(s) %v (the detectors were "+
		"tuned on the simulator, on testbed seeds 1, 2 and 20 and on the e2e test's short plan (seed 7), never on these), %s. Scored as the simulator's evaluation: a fault is detected when its "+
		"headline alert fires between its start and 5 minutes after its end; TTD is from its start to its first expected alert; "+
		"origin top-1 is whether the first CascadingFailure (or IsolatedFailure) names the true origin. Evaluation code at commit %s, %s, %s wall.\n\n",
		slices.Sorted(maps.Keys(seeds)), source, commitHash(), time.Now().UTC().Format("2006-01-02"), wall.Round(time.Second))
	printf("| topology | fault | kind | detected | origin named | TTD | alerts expected and met |\n|---|---|---|---|---|---|---|\n")
	var all eval.Summary
	var controls, controlFA, addrOrigins int
	var controlLines []string
	name := func(s eval.TestbedScore) string {
		if len(seeds) > 1 {
			return fmt.Sprintf("%s (seed %d)", s.Run.Scenario, s.Run.Truth.Seed)
		}
		return s.Run.Scenario
	}
	for _, s := range scores {
		all.Add(s.Score, false)
		for i, f := range s.Run.Truth.Faults {
			det := "no"
			if s.Detected[i] {
				det = "yes"
			}
			origin := "-"
			switch s.OriginCorrect[i] {
			case 1:
				origin = "yes"
			case 0:
				origin = "**no**: " + firstIncidentOrigin(s.Run.Firings, f)
			}
			ttd := "-"
			if s.TTD[i] >= 0 {
				ttd = s.TTD[i].Round(time.Second).String()
			}
			met, total := expectMet(s.Run.Firings, f)
			printf("| %s | %s: %s | %s | %s | %s | %s | %d/%d |\n", name(s), f.Origin, f.Detail, f.Kind, det, origin, ttd, met, total)
		}
		for i, ev := range s.Run.Truth.Events {
			controls++
			controlFA += len(s.ControlFalseAlarms[i])
			var names []string
			for _, fa := range s.ControlFalseAlarms[i] {
				names = append(names, fa.Name()+labelString(fa.Labels))
			}
			controlLines = append(controlLines, fmt.Sprintf("| %s | %s %s (%s) | %d %s |", name(s), ev.Kind, ev.Target, ev.Detail, len(s.ControlFalseAlarms[i]), strings.Join(names, ", ")))
		}
		addrOrigins += len(s.AddressOrigins)
	}
	if len(controlLines) > 0 {
		printf("\n| topology | negative control | false alarms |\n|---|---|---|\n%s\n", strings.Join(controlLines, "\n"))
	}
	printf("\n- recall: %d/%d faults detected\n", all.Detected, all.Faults)
	printf("- top-1 origin on cascade faults: %d/%d\n", all.OriginRight, all.CascadeFaults)
	printf("- time to detect: p50 %s, p90 %s\n", dur(eval.Percentile(all.TTD, 0.5)), dur(eval.Percentile(all.TTD, 0.9)))
	printf("- false alarms in negative controls: %d in %d controls\n", controlFA, controls)
	printf("- incidents naming an IP address as their origin: %d\n", addrOrigins)
	prec := float64(all.TruePositives) / float64(max(1, all.TruePositives+all.FalsePositives+len(unowned)))
	printf("- precision %.3f (%d of %d firing alerts explained by a fault)\n", prec, all.TruePositives, all.TruePositives+all.FalsePositives+len(unowned))
	if len(all.FalseAlarms) > 0 || len(unowned) > 0 {
		printf("\nFiring alerts no fault explains:\n\n")
		for _, m := range all.FalseAlarms {
			printf("- %s\n", m)
		}
		for _, f := range unowned {
			printf("- (no topology) %s%s\n", f.Name(), labelString(f.Labels))
		}
	}
	if len(all.Unmet) > 0 {
		printf("\nExpected alerts not raised:\n\n")
		for _, m := range all.Unmet {
			printf("- %s\n", m)
		}
	}
	if o.results != "" {
		return resultsdoc.Replace(o.results, section, rep.String())
	}
	return nil
}

func firstIncidentOrigin(fs []eval.Firing, f simulate.Fault) string {
	for _, fr := range fs {
		if (fr.Name() == simulate.AlertCascadingFailure || fr.Name() == simulate.AlertIsolatedFailure) &&
			!fr.At.Before(f.Start) && fr.At.Before(f.End.Add(eval.Grace)) {
			return fr.Name() + " " + fr.Labels["origin_service"]
		}
	}
	return "none"
}

func expectMet(fs []eval.Firing, f simulate.Fault) (met, total int) {
	for _, e := range f.Expect {
		total++
		for _, fr := range fs {
			if fr.Name() != e.Alertname || fr.At.Before(f.Start) || !fr.At.Before(f.End.Add(eval.Grace)) {
				continue
			}
			ok := true
			for k, v := range e.Labels {
				ok = ok && fr.Labels[k] == v
			}
			if ok {
				met++
				break
			}
		}
	}
	return met, total
}

func labelString(l map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(l)) {
		if k == "alertname" || k == "severity" || k == "cascade_id" || k == "k8s_namespace_name" || k == "namespace" {
			continue
		}
		parts = append(parts, k+"="+l[k])
	}
	return "{" + strings.Join(parts, ",") + "}"
}
