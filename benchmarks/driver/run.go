package driver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vigilhq/vigil/benchmarks/loadgen/crilog"
	"github.com/vigilhq/vigil/benchmarks/loadgen/promtarget"
	"github.com/vigilhq/vigil/benchmarks/loadgen/traces"
	"github.com/vigilhq/vigil/testkit/otlpsink"
	"github.com/vigilhq/vigil/testkit/rwsink"
)

// Options are the harness settings shared by every workload.
type Options struct {
	// WorkloadsDir holds one directory of configs per workload.
	WorkloadsDir string
	// Bins maps a side to its binary; a side without one is reported n/a.
	Bins map[string]string
	// Reps is the number of runs of each side (3).
	Reps int
	// Warmup and Window override the workloads' own when non-zero.
	Warmup, Window time.Duration
	// AgentCPU runs the agent under test; LoadCPU the generators and sinks
	// (this process). Pin false leaves everything unpinned.
	AgentCPU, LoadCPU int
	Pin               bool
	// WorkDir receives the agents' logs and per-run state.
	WorkDir string
	// Log receives progress lines; Out the RESULT lines.
	Log, Out io.Writer
}

// Sample is one run of one side.
type Sample struct {
	Side string `json:"side"`
	Rep  int    `json:"rep"`
	// WindowS is the measured window in seconds.
	WindowS float64 `json:"window_s"`
	// Items is what the agent's receivers accepted in the window; for metrics
	// workloads, the samples that reached the remote-write sink.
	Items     float64 `json:"items"`
	ItemsPerS float64 `json:"items_per_s"`
	// CPUS is the agent's user+system CPU seconds in the window.
	CPUS         float64 `json:"cpu_s"`
	CPUPerM      float64 `json:"cpu_s_per_million"`
	PeakRSSMiB   float64 `json:"peak_rss_mib"`
	MedianRSSMiB float64 `json:"median_rss_mib"`
	// PeakAnonMiB is the highest RssAnon of the 500 ms samples.
	PeakAnonMiB float64 `json:"peak_anon_mib"`
	// Refused, Dropped and Evicted are the agent's own counts in the window.
	Refused float64 `json:"refused"`
	Dropped float64 `json:"dropped"`
	Evicted float64 `json:"evicted"`
	// OtherCPUS is what other processes took on the agent's CPU in the window.
	OtherCPUS   float64 `json:"other_cpu_s"`
	OtherCPUPct float64 `json:"other_cpu_pct"`
	// SinkPerS is what reached the sink per second.
	SinkPerS float64 `json:"sink_items_per_s"`
	// LoadCPUPct is how busy the generators' and sinks' CPU was (all processes):
	// near 100% means the load, not the agent, may be the limit.
	LoadCPUPct float64 `json:"load_cpu_pct"`
	// HarnessCPUPct is the driver's own share of it (generator and sink).
	HarnessCPUPct float64 `json:"harness_cpu_pct"`
	// GenErrors counts requests the agent failed (traces only).
	GenErrors int64 `json:"generator_errors"`
	// MiBPerCPUS is input MiB per agent CPU-second (logs only).
	MiBPerCPUS float64 `json:"mib_per_cpu_s,omitempty"`
}

// SideResult is every run of one side, or why it could not run.
type SideResult struct {
	Side    string   `json:"side"`
	NA      string   `json:"na,omitempty"`
	Samples []Sample `json:"samples,omitempty"`
}

// Result is one workload's outcome.
type Result struct {
	Workload string       `json:"workload"`
	Doc      string       `json:"doc"`
	Unit     string       `json:"unit"`
	Sides    []SideResult `json:"sides"`
	Start    time.Time    `json:"start"`
	End      time.Time    `json:"end"`
	// BytesPerItem is the average input size of an item.
	BytesPerItem float64 `json:"bytes_per_item"`
}

// side finds a side's result.
func (r *Result) side(name string) *SideResult {
	for i := range r.Sides {
		if r.Sides[i].Side == name {
			return &r.Sides[i]
		}
	}
	return nil
}

// load is what drives one workload: the sink, and the source of items.
type load struct {
	otlp    *otlpsink.Sink
	rw      *rwsink.Sink
	targets *promtarget.Targets
	gen     *traces.Generator
}

func (l *load) sinkItems(k Kind) float64 {
	switch {
	case l.rw != nil:
		return float64(l.rw.Samples.Load() + l.rw.Histograms.Load())
	case k == Logs:
		return float64(l.otlp.LogRecords.Load())
	case k == Metrics:
		return float64(l.otlp.DataPoints.Load())
	}
	return float64(l.otlp.Spans.Load())
}

func (l *load) close() {
	if l.otlp != nil {
		l.otlp.Stop()
	}
	if l.rw != nil {
		l.rw.Stop()
	}
	if l.targets != nil {
		l.targets.Close()
	}
}

// Run runs one workload: every side Reps times, alternating, and prints its
// RESULT lines to opts.Out.
func Run(ctx context.Context, opts Options, w Workload) (Result, error) {
	res := Result{Workload: w.Name, Doc: w.Doc, Unit: w.Kind.Unit(), Start: time.Now()}
	if opts.Reps <= 0 {
		opts.Reps = 3
	}
	if w.Kind == Metrics {
		if w.Warmup == 0 {
			w.Warmup = 2 * w.Interval
		}
		if w.Window == 0 {
			w.Window = 2 * w.Interval
		}
	}
	if opts.Warmup > 0 {
		w.Warmup = opts.Warmup
	}
	if opts.Window > 0 {
		w.Window = opts.Window
	}
	if w.Kind == Metrics {
		// Whole scrape intervals, so every window holds the same number of scrapes.
		w.Window = max(w.Window.Round(w.Interval), w.Interval)
	}
	l := &load{}
	defer l.close()
	var err error
	switch w.Kind {
	case Metrics:
		if l.rw, err = rwsink.Start("127.0.0.1:0"); err != nil {
			return res, err
		}
		if l.targets, err = promtarget.Start(promtarget.Config{Series: w.Series / max(w.Targets, 1), Targets: max(w.Targets, 1)}); err != nil {
			return res, err
		}
	default:
		if l.otlp, err = otlpsink.StartCounting("127.0.0.1:0"); err != nil {
			return res, err
		}
	}
	switch w.Kind {
	case Traces:
		cfg := w.Traces
		cfg.Endpoint = "127.0.0.1:1" // set per run
		g, err := traces.New(cfg)
		if err != nil {
			return res, err
		}
		res.BytesPerItem = g.BytesPerSpan()
	case Logs:
		res.BytesPerItem = float64(w.LineBytes)
	}

	// Which sides can run this workload.
	var runnable []string
	for _, s := range w.Sides {
		sr := SideResult{Side: s}
		if reason := checkSide(ctx, opts, w, l, s); reason != "" {
			sr.NA = reason
			logf(opts.Log, "%s %s: n/a: %s", w.Name, s, reason)
		} else {
			runnable = append(runnable, s)
		}
		res.Sides = append(res.Sides, sr)
	}
	for rep := 1; rep <= opts.Reps && len(runnable) > 0; rep++ {
		for _, s := range runnable {
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			smp, err := runOnce(ctx, opts, w, l, s, rep)
			sr := res.side(s)
			if err != nil {
				logf(opts.Log, "%s %s rep %d: failed: %v", w.Name, s, rep, err)
				if sr.NA == "" && len(sr.Samples) == 0 && rep == opts.Reps {
					sr.NA = "failed: " + firstLine(err.Error())
				}
				continue
			}
			sr.Samples = append(sr.Samples, smp)
			logf(opts.Log, "%s %-7s rep %d: %8.0f %s/s  %6.2f CPU-s/M  peak %6.0f MiB  median %6.0f MiB  anon %6.0f MiB  refused %.0f dropped %.0f evicted %.0f  other CPU on cpu%d %.2fs (%.0f%%)  load cpu%d %.0f%% busy (harness %.0f%%)  sink %.0f/s  gen errors %d",
				w.Name, s, rep, smp.ItemsPerS, res.Unit, smp.CPUPerM, smp.PeakRSSMiB, smp.MedianRSSMiB, smp.PeakAnonMiB, smp.Refused, smp.Dropped, smp.Evicted,
				opts.AgentCPU, smp.OtherCPUS, smp.OtherCPUPct, opts.LoadCPU, smp.LoadCPUPct, smp.HarnessCPUPct, smp.SinkPerS, smp.GenErrors)
		}
	}
	for i := range res.Sides {
		if sr := &res.Sides[i]; sr.NA == "" && len(sr.Samples) == 0 {
			sr.NA = "every run failed"
		}
	}
	res.End = time.Now()
	for _, line := range ResultLines(res) {
		fmt.Fprintln(opts.Out, line)
	}
	return res, nil
}

func logf(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
	}
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// env is the placeholders a run's configs use.
type env struct {
	otlpIn, health, logDir, storageDir string
	metricsPort                        int
}

func (e env) vars(w Workload, l *load) []string {
	v := []string{
		"BENCH_OTLP_ENDPOINT=" + e.otlpIn,
		"BENCH_HEALTH_ENDPOINT=" + e.health,
		"BENCH_METRICS_PORT=" + strconv.Itoa(e.metricsPort),
		"BENCH_LOG_DIR=" + e.logDir,
		"BENCH_STORAGE_DIR=" + e.storageDir,
	}
	if l.otlp != nil {
		v = append(v, "BENCH_SINK_ENDPOINT="+l.otlp.Addr)
	}
	if l.rw != nil {
		v = append(v, "BENCH_RW_URL="+l.rw.URL)
	}
	if l.targets != nil {
		v = append(v, "BENCH_SCRAPE_TARGETS="+l.targets.YAMLList(), "BENCH_SCRAPE_INTERVAL="+w.Interval.String())
	}
	return v
}

func newEnv(dir string) (env, error) {
	ports, err := freePorts(3)
	if err != nil {
		return env{}, err
	}
	e := env{
		otlpIn:      "127.0.0.1:" + strconv.Itoa(ports[0]),
		health:      "127.0.0.1:" + strconv.Itoa(ports[1]),
		metricsPort: ports[2],
		logDir:      filepath.Join(dir, "pods"),
		storageDir:  filepath.Join(dir, "storage"),
	}
	return e, nil
}

func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	var ports []int
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func configPath(opts Options, w Workload, side string) string {
	return filepath.Join(opts.WorkloadsDir, w.Dir, side+".yaml")
}

// checkSide says why a side cannot run a workload ("" if it can): no binary,
// no config, or a config its binary rejects (a component it does not have).
func checkSide(ctx context.Context, opts Options, w Workload, l *load, side string) string {
	bin := opts.Bins[side]
	if bin == "" {
		return "no binary"
	}
	if _, err := os.Stat(bin); err != nil {
		return "no binary: " + err.Error()
	}
	cfg := configPath(opts, w, side)
	if _, err := os.Stat(cfg); err != nil {
		return "no config " + filepath.Join(w.Dir, side+".yaml")
	}
	e, err := newEnv(os.TempDir())
	if err != nil {
		return err.Error()
	}
	var cmd *exec.Cmd
	if side == VMAgent {
		cmd = exec.CommandContext(ctx, bin, "-promscrape.config="+cfg, "-dryRun")
	} else {
		cmd = exec.CommandContext(ctx, bin, "validate", "--config", cfg)
	}
	cmd.Env = append(os.Environ(), e.vars(w, l)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "config rejected: " + lastLine(string(out))
	}
	return ""
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// agent is one running agent process.
type agent struct {
	cmd     *exec.Cmd
	done    chan struct{}
	logPath string
	metrics string // URL of its own metrics
	health  string // URL that answers 200 when it is ready
}

func startAgent(opts Options, w Workload, l *load, side string, e env, dir string) (*agent, error) {
	bin := opts.Bins[side]
	cfg := configPath(opts, w, side)
	var args []string
	a := &agent{logPath: filepath.Join(dir, side+".log"), done: make(chan struct{})}
	if side == VMAgent {
		args = []string{bin,
			"-httpListenAddr=127.0.0.1:" + strconv.Itoa(e.metricsPort),
			"-promscrape.config=" + cfg,
			"-remoteWrite.url=" + l.rw.URL,
			"-remoteWrite.tmpDataPath=" + filepath.Join(dir, "vmagent-data"),
			"-loggerLevel=WARN",
		}
		a.metrics = fmt.Sprintf("http://127.0.0.1:%d/metrics", e.metricsPort)
		a.health = fmt.Sprintf("http://127.0.0.1:%d/health", e.metricsPort)
	} else {
		args = []string{bin, "--config", cfg}
		a.metrics = fmt.Sprintf("http://127.0.0.1:%d/metrics", e.metricsPort)
		a.health = "http://" + e.health + "/"
	}
	if opts.Pin {
		args = append([]string{"taskset", "-c", strconv.Itoa(opts.AgentCPU)}, args...)
	}
	logf, err := os.Create(a.logPath)
	if err != nil {
		return nil, err
	}
	// taskset execs the agent, so the pid is the agent's.
	a.cmd = exec.Command(args[0], args[1:]...)
	a.cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	a.cmd.Env = append(a.cmd.Env, e.vars(w, l)...)
	a.cmd.Stdout, a.cmd.Stderr = logf, logf
	if err := a.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("cannot start %s: %w", side, err)
	}
	go func() {
		_ = a.cmd.Wait()
		logf.Close()
		close(a.done)
	}()
	return a, nil
}

func (a *agent) pid() int { return a.cmd.Process.Pid }

func (a *agent) logTail() string {
	b, _ := os.ReadFile(a.logPath)
	s := strings.TrimSpace(string(b))
	if len(s) > 2000 {
		s = s[len(s)-2000:]
	}
	return s
}

func (a *agent) waitHealthy(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-a.done:
			return fmt.Errorf("agent exited before it was ready:\n%s", a.logTail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := httpClient.Get(a.health)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("agent not ready after %s:\n%s", timeout, a.logTail())
}

// stop asks the agent to shut down, and kills it if it has not after 20 s.
func (a *agent) stop() {
	select {
	case <-a.done:
		return
	default:
	}
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(20 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.done
	}
}

// snapshot is the state of one agent at one instant.
type snapshot struct {
	at        time.Time
	cpu, busy float64
	loadBusy  float64
	harness   float64
	c         counters
	sink      float64
	genErrors int64
}

func takeSnapshot(ctx context.Context, opts Options, w Workload, l *load, a *agent) (snapshot, error) {
	var s snapshot
	var err error
	if s.c, err = scrape(ctx, a.metrics); err != nil {
		return s, err
	}
	s.at = time.Now()
	if s.cpu, err = procCPU(a.pid()); err != nil {
		return s, err
	}
	if opts.Pin {
		// Per-CPU figures mean something only when the agent owns its CPU.
		if s.busy, err = cpuBusy(opts.AgentCPU); err != nil {
			return s, err
		}
		if s.loadBusy, err = cpuBusy(opts.LoadCPU); err != nil {
			return s, err
		}
	}
	if s.harness, err = procCPU(os.Getpid()); err != nil {
		return s, err
	}
	s.sink = l.sinkItems(w.Kind)
	if l.gen != nil {
		s.genErrors = l.gen.Stats().Errors
	}
	return s, nil
}

// itemCounts reads what an agent's own metrics say it accepted, refused,
// dropped and evicted.
func itemCounts(side string, k Kind, c counters) (accepted, refused, dropped, evicted float64) {
	if side == VMAgent {
		accepted = c.sum("vm_promscrape_scraped_samples_sum")
		dropped = c.sum("vmagent_remotewrite_samples_dropped", "vmagent_remotewrite_packets_dropped", "vm_promscrape_dropped_samples")
		return accepted, 0, dropped, 0
	}
	item := map[Kind]string{Traces: "spans", Metrics: "metric_points", Logs: "log_records"}[k]
	accepted = c.sum("otelcol_receiver_accepted_" + item)
	refused = c.sum("otelcol_receiver_refused_"+item, "otelcol_processor_refused_"+item)
	dropped = c.sum("otelcol_exporter_send_failed_"+item, "otelcol_exporter_enqueue_failed_"+item, "otelcol_processor_dropped_"+item)
	// Processors' own counts, in the unit each counts (spans, or traces).
	// Evicted: traces decided before their decision_wait was over because
	// the sampler ran out of room (contrib's ..._sampling_trace_dropped_too_early,
	// Vigil's ..._decided_early). A full decision cache forgetting trace IDs
	// already decided (Vigil's ..._cache_evictions) loses nothing and is not
	// counted.
	for name, v := range c {
		if !strings.HasPrefix(name, "otelcol_processor_") || strings.HasPrefix(name, "otelcol_processor_dropped_") ||
			strings.HasSuffix(name, "_bucket") || strings.HasSuffix(name, "_sum") || strings.HasSuffix(name, "_count") ||
			strings.Contains(name, "cache_evictions") {
			continue
		}
		switch {
		case strings.Contains(name, "dropped_too_early") || strings.Contains(name, "decided_early"):
			evicted += v
		case strings.Contains(name, "dropped"):
			dropped += v
		}
	}
	return accepted, refused, dropped, evicted
}

// runOnce runs one side once: start, warm up, measure, stop.
func runOnce(ctx context.Context, opts Options, w Workload, l *load, side string, rep int) (Sample, error) {
	smp := Sample{Side: side, Rep: rep}
	dir, err := os.MkdirTemp(opts.WorkDir, fmt.Sprintf("%s-%s-%d-", w.Name, side, rep))
	if err != nil {
		return smp, err
	}
	e, err := newEnv(dir)
	if err != nil {
		return smp, err
	}
	a, err := startAgent(opts, w, l, side, e, dir)
	if err != nil {
		return smp, err
	}
	// The run's state goes once the agent has stopped (log files can be
	// hundreds of MiB, in memory under /dev/shm); the agent's log stays.
	defer func() {
		for _, d := range []string{e.logDir, e.storageDir, filepath.Join(dir, "vmagent-data")} {
			_ = os.RemoveAll(d)
		}
	}()
	defer a.stop()
	if err := a.waitHealthy(ctx, 60*time.Second); err != nil {
		return smp, err
	}

	lctx, stopLoad := context.WithCancel(ctx)
	loadDone := make(chan error, 1)
	switch w.Kind {
	case Traces:
		cfg := w.Traces
		cfg.Endpoint = e.otlpIn
		cfg.Seed = uint64(rep)
		g, err := traces.New(cfg)
		if err != nil {
			stopLoad()
			return smp, err
		}
		l.gen = g
		go func() { loadDone <- g.Run(lctx) }()
	case Logs:
		cw, err := crilog.New(crilog.Config{Root: e.logDir, LineBytes: w.LineBytes, Rate: w.LogRate, RotateBytes: 64 << 20, KeepRotated: 2})
		if err != nil {
			stopLoad()
			return smp, err
		}
		go func() { loadDone <- cw.Run(lctx) }()
	default:
		loadDone <- nil // the targets are always up
	}
	defer func() {
		stopLoad()
		<-loadDone
		l.gen = nil
	}()

	if err := sleep(ctx, w.Warmup, a); err != nil {
		return smp, err
	}
	if w.Kind == Metrics {
		// Start the window half an interval after a scrape was committed, so
		// each window of whole intervals holds the same number of scrapes.
		if err := alignToScrape(ctx, side, w, a); err != nil {
			return smp, err
		}
	}
	s0, err := takeSnapshot(ctx, opts, w, l, a)
	if err != nil {
		return smp, err
	}
	var rss []float64
	end := s0.at.Add(w.Window)
	for time.Now().Before(end) {
		r, _, anon, err := procMemAnon(a.pid())
		if err != nil {
			return smp, fmt.Errorf("agent gone during the window: %w\n%s", err, a.logTail())
		}
		rss = append(rss, r)
		smp.PeakAnonMiB = max(smp.PeakAnonMiB, anon/(1<<20))
		if err := sleep(ctx, min(500*time.Millisecond, time.Until(end)), a); err != nil {
			return smp, err
		}
	}
	s1, err := takeSnapshot(ctx, opts, w, l, a)
	if err != nil {
		return smp, err
	}
	_, hwm, err := procMem(a.pid())
	if err != nil {
		return smp, err
	}
	acc0, ref0, drop0, ev0 := itemCounts(side, w.Kind, s0.c)
	acc1, ref1, drop1, ev1 := itemCounts(side, w.Kind, s1.c)
	smp.WindowS = s1.at.Sub(s0.at).Seconds()
	smp.Items = acc1 - acc0
	if w.Kind == Metrics {
		// Agents count scraped items differently (a histogram is one OTLP data
		// point but 14 samples); the samples that reached remote write are the
		// one unit every side shares.
		smp.Items = s1.sink - s0.sink
	}
	smp.ItemsPerS = smp.Items / smp.WindowS
	smp.CPUS = s1.cpu - s0.cpu
	if smp.Items > 0 {
		smp.CPUPerM = smp.CPUS / smp.Items * 1e6
	}
	smp.PeakRSSMiB = hwm / (1 << 20)
	smp.MedianRSSMiB = median(rss) / (1 << 20)
	smp.Refused, smp.Dropped, smp.Evicted = ref1-ref0, drop1-drop0, ev1-ev0
	if opts.Pin {
		smp.OtherCPUS = max(s1.busy-s0.busy-smp.CPUS, 0)
	}
	smp.OtherCPUPct = 100 * smp.OtherCPUS / smp.WindowS
	smp.SinkPerS = (s1.sink - s0.sink) / smp.WindowS
	smp.LoadCPUPct = 100 * (s1.loadBusy - s0.loadBusy) / smp.WindowS
	smp.HarnessCPUPct = 100 * (s1.harness - s0.harness) / smp.WindowS
	smp.GenErrors = s1.genErrors - s0.genErrors
	if w.Kind == Logs && smp.CPUS > 0 {
		smp.MiBPerCPUS = smp.Items * float64(w.LineBytes) / (1 << 20) / smp.CPUS
	}
	if smp.Items <= 0 {
		return smp, fmt.Errorf("the agent accepted nothing in the window:\n%s", a.logTail())
	}
	return smp, nil
}

// sleep waits d, failing early if the agent exits or ctx ends.
func sleep(ctx context.Context, d time.Duration, a *agent) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-a.done:
		return fmt.Errorf("agent exited:\n%s", a.logTail())
	}
}

func alignToScrape(ctx context.Context, side string, w Workload, a *agent) error {
	deadline := time.Now().Add(2 * w.Interval)
	c, err := scrape(ctx, a.metrics)
	if err != nil {
		return err
	}
	base, _, _, _ := itemCounts(side, w.Kind, c)
	for time.Now().Before(deadline) {
		if err := sleep(ctx, 200*time.Millisecond, a); err != nil {
			return err
		}
		if c, err = scrape(ctx, a.metrics); err != nil {
			return err
		}
		if n, _, _, _ := itemCounts(side, w.Kind, c); n != base {
			return sleep(ctx, w.Interval/2, a)
		}
	}
	return errors.New("no scrape was committed in two intervals")
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
