// Package driver runs the side-by-side benchmark: for each workload it starts
// the sink and the load, then runs the agents under test (Vigil, the upstream
// peer, and for M1 vmagent) one after the other, A B A B, each pinned to its
// own CPU, and measures items/s accepted, CPU-seconds per million items, peak
// and median RSS, and what each agent refused, dropped or evicted.
package driver

import (
	"time"

	"github.com/vigilhq/vigil/benchmarks/loadgen/traces"
)

// Kind is the signal a workload carries.
type Kind string

// Signal kinds.
const (
	Traces  Kind = "traces"
	Metrics Kind = "metrics"
	Logs    Kind = "logs"
)

// Unit is what the workload's items are called in reports.
func (k Kind) Unit() string {
	switch k {
	case Metrics:
		return "samples"
	case Logs:
		return "lines"
	}
	return "spans"
}

// Sides that can run a workload, each with its config file <side>.yaml in the
// workload's directory.
const (
	Vigil   = "vigil"
	Peer    = "peer"
	VMAgent = "vmagent"
)

// Workload is one benchmark: a config directory under benchmarks/workloads and
// the load to drive through it.
type Workload struct {
	// Name is what RESULT lines call it.
	Name string
	// Doc says what it measures, for the report.
	Doc string
	// Dir is the config directory (workloads sharing a config differ only in load).
	Dir  string
	Kind Kind
	// Sides run in this order in every repetition; Vigil first.
	Sides []string
	// Traces is the trace load (Rate 0: saturation).
	Traces traces.Config
	// Series, Targets and Interval are the scrape load.
	Series, Targets int
	Interval        time.Duration
	// LogRate (lines/s) and LineBytes are the log load.
	LogRate   float64
	LineBytes int
	// Warmup runs before the measurement window; Window is measured.
	Warmup, Window time.Duration
}

func tracesLoad(rate float64) traces.Config {
	c := traces.DefaultConfig()
	c.Rate = rate
	return c
}

// Workloads returns every workload, in the order a full run takes them.
func Workloads() []Workload {
	two := []string{Vigil, Peer}
	tw := func(name, dir, doc string, rate float64, warm time.Duration) Workload {
		return Workload{Name: name, Dir: dir, Doc: doc, Kind: Traces, Sides: two, Traces: tracesLoad(rate), Warmup: warm, Window: 15 * time.Second}
	}
	return []Workload{
		tw("T0", "T0", "receive only: OTLP/gRPC -> debug exporter, saturation", 0, 5*time.Second),
		tw("T1", "T1", "pass-through: OTLP/gRPC -> batch -> OTLP/gRPC (gzip, the default), saturation", 0, 5*time.Second),
		tw("T1-zstd", "T1-zstd", "T1 with zstd export compression", 0, 5*time.Second),
		tw("T1-none", "T1-none", "T1 without export compression", 0, 5*time.Second),
		tw("T2", "T2", "tail sampling (5 s wait; errors, > 500 ms, 10%), saturation", 0, 12*time.Second),
		tw("T2-100k", "T2", "T2 at a fixed 100k spans/s", 100_000, 12*time.Second),
		tw("T2-20k", "T2", "T2 at a fixed 20k spans/s", 20_000, 12*time.Second),
		tw("T2-ml", "T2-ml", "T2 behind a 1.5 GiB memory_limiter, saturation", 0, 12*time.Second),
		{Name: "T3", Dir: "T3", Doc: "T2 plus the red-flag connector on all spans (Vigil only; compare with Vigil's T2)",
			Kind: Traces, Sides: []string{Vigil}, Traces: tracesLoad(0), Warmup: 12 * time.Second, Window: 15 * time.Second},
		{Name: "M1", Dir: "M1", Doc: "Prometheus scrape of 100k series (10 targets) every 10 s -> remote write",
			Kind: Metrics, Sides: []string{Vigil, Peer, VMAgent}, Series: 100_000, Targets: 10, Interval: 10 * time.Second},
		{Name: "L1", Dir: "L1", Doc: "container log files (CRI, 1 KB JSON lines, JSON parsed) -> OTLP, writer at 60k lines/s",
			Kind: Logs, Sides: two, LogRate: 60_000, LineBytes: 1024, Warmup: 5 * time.Second, Window: 15 * time.Second},
		{Name: "L1-20k", Dir: "L1", Doc: "L1 at 20k lines/s, which both agents keep up with: memory at the same input rate",
			Kind: Logs, Sides: two, LogRate: 20_000, LineBytes: 1024, Warmup: 5 * time.Second, Window: 15 * time.Second},
		{Name: "L1-raw", Dir: "L1-raw", Doc: "L1 without JSON parsing, writer at 160k lines/s",
			Kind: Logs, Sides: two, LogRate: 160_000, LineBytes: 1024, Warmup: 5 * time.Second, Window: 15 * time.Second},
	}
}

// Lookup returns the named workload.
func Lookup(name string) (Workload, bool) {
	for _, w := range Workloads() {
		if w.Name == name {
			return w, true
		}
	}
	return Workload{}, false
}
