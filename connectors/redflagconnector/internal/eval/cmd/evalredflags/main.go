// Command evalredflags measures the red-flag detectors: on the fault
// simulator (every scenario over held-out seeds, on a virtual clock) and on
// the testbed of real instrumented services (benchmarks/testbed) against the
// vigil binary, live or from recordings of earlier live runs. It reports
// recall, origin accuracy, time to detect and false alarms; with -results it
// rewrites the evaluation sections of benchmarks/RESULTS.md.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

func main() {
	var so simOptions
	var to testbedOptions
	sim := flag.Bool("sim", true, "evaluate on the simulator")
	flag.StringVar(&so.seeds, "seeds", "101-110", "simulator seeds to run (held apart from the tuning seeds 1-20)")
	flag.StringVar(&so.scenarios, "scenarios", "", "comma-separated simulator scenarios (default: all)")
	flag.Float64Var(&so.negHours, "negative-hours", 24, "simulated hours per negative control (one seed)")
	flag.Float64Var(&so.rate, "rate", 30, "root requests per second")
	flag.BoolVar(&so.verbose, "v", false, "print every run")
	flag.BoolVar(&so.mesh, "mesh", false, "evaluate with the spans replaced by the Istio metrics the sidecars would have reported (the simulator, and -replay recordings)")
	flag.StringVar(&so.results, "results", "", "also write the reports as sections of this file (benchmarks/RESULTS.md)")
	flag.BoolVar(&to.live, "testbed", false, "also evaluate on the testbed of real services, live against the vigil binary")
	flag.StringVar(&to.replay, "replay", "", "evaluate on recordings of earlier testbed runs (comma-separated; each with its FILE.truth.json)")
	flag.StringVar(&to.seeds, "testbed-seed", "101", "testbed seed, or comma-separated seeds run one after the other (held apart from the tuning seeds 1-20)")
	flag.StringVar(&to.plan, "testbed-plan", "full", "testbed plan: full or short")
	flag.StringVar(&to.topologies, "topologies", "", "comma-separated testbed topologies (default: all)")
	flag.StringVar(&to.vigil, "vigil", "bin/vigil", "the vigil binary under test")
	flag.StringVar(&to.testbed, "testbed-bin", "bin/testbed", "the testbed binary")
	flag.StringVar(&to.toxiproxy, "toxiproxy", ".cache/bin/toxiproxy-server", "the toxiproxy-server binary")
	flag.StringVar(&to.record, "record", "", "record everything the agent received in a live run to this file (and FILE.truth.json), for -replay; with several seeds, FILE.SEED")
	flag.StringVar(&to.workDir, "workdir", "", "scratch directory of a live run (default: a new temporary one)")
	flag.Parse()
	to.results, to.mesh = so.results, so.mesh
	if *sim {
		if err := runSim(so); err != nil {
			fmt.Fprintln(os.Stderr, "evalredflags:", err)
			os.Exit(1)
		}
	}
	if to.live || to.replay != "" {
		if err := runTestbed(to); err != nil {
			fmt.Fprintln(os.Stderr, "evalredflags:", err)
			os.Exit(1)
		}
	}
}

func commitHash() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

func dur(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return d.Round(time.Second).String()
}
