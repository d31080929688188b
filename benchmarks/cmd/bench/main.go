// Command bench is the side-by-side benchmark driver: it runs Vigil and the
// upstream peer (and vmagent for M1) on the workloads under
// benchmarks/workloads and prints one RESULT line per figure. See
// benchmarks/README.md.
//
//	bench -workload T1            # one workload (comma-separated list, or "all")
//	bench -workload all -md benchmarks/RESULTS.md
//	bench -gencheck               # the generator's own ceiling, no agent
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigilhq/vigil/benchmarks/driver"
	"github.com/vigilhq/vigil/benchmarks/resultsdoc"
)

func main() {
	if code, ok := ownSession(); ok {
		os.Exit(code)
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		workloads = flag.String("workload", "all", "workloads to run, comma-separated, or all")
		reps      = flag.Int("reps", 3, "runs of each side")
		warmup    = flag.Duration("warmup", 0, "override every workload's warm-up")
		window    = flag.Duration("window", 0, "override every workload's measurement window")
		vigil     = flag.String("vigil", "bin/vigil", "the vigil binary")
		peer      = flag.String("peer", "bin/peer", "the peer binary")
		vmagent   = flag.String("vmagent", "benchmarks/.cache/bin/vmagent", "the vmagent binary (M1's second peer)")
		dir       = flag.String("workloads-dir", "benchmarks/workloads", "the workload configs")
		resultsMD = flag.String("md", "", "rewrite this results document (a full run)")
		jsonDir   = flag.String("json", "benchmarks/results", "directory for the raw runs as JSON (empty: none)")
		agentCPU  = flag.Int("agent-cpu", 1, "CPU of the agent under test")
		loadCPU   = flag.Int("load-cpu", 0, "CPU of the generators and sinks (this process)")
		noPin     = flag.Bool("no-pin", false, "do not pin anything to CPUs")
		nice      = flag.Int("autogroup-nice", -10, "nice value for this session's autogroup (needs root); 0 leaves it")
		gencheck  = flag.Bool("gencheck", false, "only measure the trace generator against the sink")
		list      = flag.Bool("list", false, "list the workloads")
		fromJSON  = flag.String("from-json", "", "rewrite -md from the JSON a full run saved under -json with this timestamp prefix (e.g. 20261126T090936Z), without running anything")
	)
	flag.Parse()
	if *fromJSON != "" {
		if *resultsMD == "" {
			return errors.New("-from-json needs -md")
		}
		return rewrite(*jsonDir, *fromJSON, *resultsMD)
	}
	if *list {
		for _, w := range driver.Workloads() {
			fmt.Printf("%-8s %s\n", w.Name, w.Doc)
		}
		return nil
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()

	pinned := "not pinned"
	if !*noPin && runtime.NumCPU() >= 2 {
		if err := driver.PinSelf(*loadCPU); err != nil {
			return err
		}
		pinned = fmt.Sprintf("agent pinned to CPU %d (taskset), generators and sinks to CPU %d", *agentCPU, *loadCPU)
	}
	priority := "unchanged"
	if *nice != 0 {
		p, err := driver.RaisePriority(*nice)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: warning:", err)
			priority = "not raised (" + err.Error() + ")"
		} else {
			priority = "session autogroup " + p
		}
	}
	fmt.Fprintf(os.Stderr, "bench: %s; priority %s\n", pinned, priority)

	var gen []string
	genCheck := func() error {
		for _, gz := range []bool{false, true} {
			r, err := driver.GenCheck(ctx, gz, 5*time.Second)
			if err != nil {
				return err
			}
			line := fmt.Sprintf("GENCHECK traces gzip=%v spans_per_s=%.0f", gz, r)
			fmt.Println(line)
			gen = append(gen, fmt.Sprintf("generator -> sink alone on one CPU, gzip=%v: %.0f spans/s", gz, r))
		}
		return nil
	}
	if *gencheck {
		return genCheck()
	}

	var ws []driver.Workload
	if *workloads == "all" {
		ws = driver.Workloads()
	} else {
		for _, n := range strings.Split(*workloads, ",") {
			w, ok := driver.Lookup(strings.TrimSpace(n))
			if !ok {
				return fmt.Errorf("unknown workload %q (bench -list)", n)
			}
			ws = append(ws, w)
		}
	}
	work, err := os.MkdirTemp(shmOrTemp(), "vigil-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	opts := driver.Options{
		WorkloadsDir: *dir,
		Bins:         map[string]string{driver.Vigil: *vigil, driver.Peer: *peer, driver.VMAgent: *vmagent},
		Reps:         *reps, Warmup: *warmup, Window: *window,
		AgentCPU: *agentCPU, LoadCPU: *loadCPU, Pin: pinned != "not pinned",
		WorkDir: work, Log: os.Stderr, Out: os.Stdout,
	}
	start := time.Now()
	meta := driver.Meta{
		Date: start.UTC().Format(time.RFC3339), Commit: commit(), Machine: driver.Machine(), Go: runtime.Version(),
		Reps: *reps, Pinned: pinned, Priority: priority, LoadBefore: driver.LoadAvg(),
	}
	if *resultsMD != "" {
		if err := genCheck(); err != nil {
			return err
		}
		meta.GenCheck = gen
	}
	var results []driver.Result
	for _, w := range ws {
		r, err := driver.Run(ctx, opts, w)
		if err != nil {
			return fmt.Errorf("%s: %w", w.Name, err)
		}
		results = append(results, r)
		if *jsonDir != "" {
			if err := writeJSON(*jsonDir, start, r); err != nil {
				return err
			}
		}
	}
	meta.LoadAfter = driver.LoadAvg()
	meta.Duration = time.Since(start)
	if *resultsMD != "" && *jsonDir != "" {
		b, err := json.MarshalIndent(meta, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(*jsonDir, start.UTC().Format("20060102T150405Z")+"-meta.json"), b, 0o644); err != nil {
			return err
		}
	}
	if *resultsMD != "" {
		var b strings.Builder
		if err := driver.WriteMarkdown(&b, meta, results); err != nil {
			return err
		}
		return resultsdoc.Replace(*resultsMD, "bench", b.String())
	}
	return nil
}

// ownSession re-runs this command as the leader of a new session, which the
// kernel puts in a new autogroup: raising that group's priority then lifts the
// harness and its agents only, not the shell or make that started it. It
// reports the child's exit code and true if it did; false in the child, or if
// it could not (then the harness runs as it is).
func ownSession() (int, bool) {
	if os.Getenv("BENCH_OWN_SESSION") != "" || os.Geteuid() != 0 {
		return 0, false
	}
	if sid, err := unix.Getsid(0); err == nil && sid == os.Getpid() {
		return 0, false
	}
	for _, a := range os.Args[1:] {
		if a == "-autogroup-nice=0" || a == "-list" {
			return 0, false
		}
	}
	exe, err := os.Executable()
	if err != nil {
		return 0, false
	}
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), "BENCH_OWN_SESSION=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, false
	}
	// The child has no terminal: pass Ctrl-C and termination on.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		for s := range sig {
			_ = cmd.Process.Signal(s)
		}
	}()
	err = cmd.Wait()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), true
	}
	if err != nil {
		return 1, true
	}
	return 0, true
}

// shmOrTemp puts the agents' state and log files in memory when it can, so the
// log workloads measure the agents and not the disk.
func shmOrTemp() string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		return "/dev/shm"
	}
	return os.TempDir()
}

func writeJSON(dir string, start time.Time, r driver.Result) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, start.UTC().Format("20060102T150405Z")+"-"+r.Workload+".json"), b, 0o644)
}

// rewrite regenerates the results document from a full run's saved JSON, in
// the workloads' order, e.g. after a change to the report's layout.
func rewrite(dir, prefix, md string) error {
	var meta driver.Meta
	b, err := os.ReadFile(filepath.Join(dir, prefix+"-meta.json"))
	if err != nil {
		return fmt.Errorf("cannot read the run's meta: %w", err)
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		return fmt.Errorf("cannot read the run's meta: %w", err)
	}
	var results []driver.Result
	for _, w := range driver.Workloads() {
		b, err := os.ReadFile(filepath.Join(dir, prefix+"-"+w.Name+".json"))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		var r driver.Result
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("cannot read %s: %w", w.Name, err)
		}
		results = append(results, r)
	}
	var doc strings.Builder
	if err := driver.WriteMarkdown(&doc, meta, results); err != nil {
		return err
	}
	return resultsdoc.Replace(md, "bench", doc.String())
}

func commit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(strings.TrimSpace(string(st))) > 0 {
		c += " (with uncommitted changes)"
	}
	return c
}
