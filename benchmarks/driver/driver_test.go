package driver

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseStatCPU(t *testing.T) {
	line := "4242 (my (weird) prog) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 9 0 100 1000 100 18446744073709551615\n"
	s, err := parseStatCPU([]byte(line))
	require.NoError(t, err)
	require.InDelta(t, 3.25, s, 1e-9)
	_, err = parseStatCPU([]byte("4242 (x) S 1 2"))
	require.Error(t, err)
}

func TestParseCPUBusy(t *testing.T) {
	stat := "cpu  10 0 10 100 0 0 0 0 0 0\ncpu0 5 0 5 50 7 0 0 0 0 0\ncpu1 300 2 100 900 50 3 4 1 300 0\nintr 1\n"
	b, err := parseCPUBusy([]byte(stat), 1)
	require.NoError(t, err)
	// user+nice+system+irq+softirq+steal; guest is inside user, idle and iowait are not busy.
	require.InDelta(t, float64(300+2+100+3+4+1)/clockTicks, b, 1e-9)
	_, err = parseCPUBusy([]byte(stat), 2)
	require.Error(t, err)
}

func TestParseExposition(t *testing.T) {
	text := `# HELP otelcol_receiver_accepted_spans Number of spans.
# TYPE otelcol_receiver_accepted_spans counter
otelcol_receiver_accepted_spans{receiver="otlp",transport="grpc"} 100
otelcol_receiver_accepted_spans{receiver="otlp",transport="http"} 5
otelcol_exporter_send_failed_spans_total{exporter="otlp_grpc",odd="a}b \"q\""} 2
otelcol_processor_tail_sampling_sampling_trace_dropped_too_early 3 1700000000000
otelcol_processor_tail_sampling_traces_dropped_too_large 4
otelcol_processor_tail_sampling_sampling_trace_removal_age_bucket{le="1"} 999
go_gc_duration_seconds NaN
`
	c, err := parseExposition(strings.NewReader(text))
	require.NoError(t, err)
	require.EqualValues(t, 105, c.sum("otelcol_receiver_accepted_spans"))
	acc, ref, drop, ev := itemCounts(Peer, Traces, c)
	require.EqualValues(t, 105, acc)
	require.EqualValues(t, 0, ref)
	require.EqualValues(t, 2+4, drop)
	require.EqualValues(t, 3, ev)

	// Vigil's sampler: traces decided early for want of room are evicted; a
	// full decision cache forgetting decided trace IDs is not.
	c, err = parseExposition(strings.NewReader(`otelcol_receiver_accepted_spans_total{receiver="otlp"} 50
otelcol_processor_tail_sampling_decided_early_total{reason="memory"} 7
otelcol_processor_tail_sampling_decided_early_total{reason="traces"} 2
otelcol_processor_tail_sampling_cache_evictions_total{cache="sampled"} 1000
`))
	require.NoError(t, err)
	acc, _, drop, ev = itemCounts(Vigil, Traces, c)
	require.EqualValues(t, 50, acc)
	require.EqualValues(t, 0, drop)
	require.EqualValues(t, 9, ev)

	for _, bad := range []string{"x{a=\"b\" 1", "{a=\"b\"} 1", "x notanumber"} {
		_, err := parseExposition(strings.NewReader(bad))
		require.Error(t, err, bad)
	}
}

// FuzzParseExposition: any text gives counters or an error naming the line.
func FuzzParseExposition(f *testing.F) {
	f.Add("a 1\nb{c=\"d\"} 2 3\n# x\n")
	f.Add("x{a=\"}\\\"\"} 1")
	f.Add("{")
	f.Fuzz(func(t *testing.T, s string) {
		_, err := parseExposition(strings.NewReader(s))
		if err != nil && !strings.Contains(err.Error(), "line") && !strings.Contains(err.Error(), "token too long") {
			t.Fatalf("error does not name the line: %v", err)
		}
	})
}

func TestResultLines(t *testing.T) {
	r := Result{Workload: "T9", Sides: []SideResult{
		{Side: Vigil, Samples: []Sample{{Rep: 1, ItemsPerS: 100, CPUPerM: 2, PeakRSSMiB: 10, PeakAnonMiB: 5}, {Rep: 2, ItemsPerS: 300, CPUPerM: 4, PeakRSSMiB: 30, PeakAnonMiB: 7}, {Rep: 3, ItemsPerS: 200, CPUPerM: 3, PeakRSSMiB: 20, PeakAnonMiB: 6}}},
		{Side: Peer, Samples: []Sample{{Rep: 1, ItemsPerS: 100, CPUPerM: 4, PeakRSSMiB: 40, PeakAnonMiB: 24}, {Rep: 2, ItemsPerS: 100, CPUPerM: 4, PeakRSSMiB: 40, PeakAnonMiB: 24}, {Rep: 3, ItemsPerS: 100, CPUPerM: 4, PeakRSSMiB: 40, PeakAnonMiB: 24}}},
		{Side: VMAgent, NA: "no binary"},
	}}
	require.Equal(t, []string{
		"RESULT T9 items_per_s vigil=200.0 peer=100.0 ratio=2.000",
		"RESULT T9 cpu_s_per_million vigil=3 peer=4 ratio=0.750",
		"RESULT T9 peak_rss_mib vigil=20 peer=40 ratio=0.500",
		"RESULT T9 peak_anon_mib vigil=6 peer=24 ratio=0.250",
		"RESULT T9-vmagent items_per_s vigil=200.0 peer=n/a ratio=n/a",
		"RESULT T9-vmagent cpu_s_per_million vigil=3 peer=n/a ratio=n/a",
		"RESULT T9-vmagent peak_rss_mib vigil=20 peer=n/a ratio=n/a",
		"RESULT T9-vmagent peak_anon_mib vigil=6 peer=n/a ratio=n/a",
	}, ResultLines(r))
	var md bytes.Buffer
	require.NoError(t, WriteMarkdown(&md, Meta{Reps: 3}, []Result{r}))
	require.Contains(t, md.String(), "| items/s accepted | 200.0 [100.0–300.0] | 100.0 | n/a | 2.000 [1.000–3.000] | n/a |")
	require.Contains(t, md.String(), "vmagent: n/a, no binary")
}

// binary returns the binary named by env, or builds it from dir into the
// test's temp dir.
func binary(t *testing.T, env, dir, name string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		return p
	}
	out := filepath.Join(t.TempDir(), name)
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Dir = dir
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "cannot build %s (set %s to reuse a build):\n%s", name, env, b)
	return out
}

var resultLine = regexp.MustCompile(`^RESULT (\S+) (items_per_s|cpu_s_per_million|peak_rss_mib|peak_anon_mib) vigil=(\S+) peer=(\S+) ratio=(\S+)$`)

// TestHarnessRunsT1 runs T1 briefly, once per side, through the same code
// make bench uses, and checks that both agents ran, moved spans to the sink,
// and that the RESULT lines parse. It asserts no speed. A side that cannot
// run a workload (T3's peer has no config; Vigil has no red-flag connector
// yet, or has one) is reported n/a or measured, never an error.
func TestHarnessRunsT1(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the agents")
	}
	vigil := binary(t, "VIGIL_BIN", "../../cmd/vigil", "vigil")
	peer := binary(t, "PEER_BIN", "../peer", "peer")
	var out, log bytes.Buffer
	opts := Options{
		WorkloadsDir: "../workloads",
		Bins:         map[string]string{Vigil: vigil, Peer: peer},
		Reps:         1, Warmup: time.Second, Window: 2 * time.Second,
		AgentCPU: 1, LoadCPU: 0, Pin: runtime.NumCPU() >= 2,
		WorkDir: t.TempDir(), Out: &out, Log: &log,
	}
	w, ok := Lookup("T1")
	require.True(t, ok)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := Run(ctx, opts, w)
	require.NoError(t, err, log.String())
	t.Log(log.String())

	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, len(resultMetrics), out.String())
	for _, l := range lines {
		m := resultLine.FindStringSubmatch(l)
		require.NotNil(t, m, "RESULT line %q", l)
		require.Equal(t, "T1", m[1])
		for _, v := range m[3:] {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err, "%q in %q", v, l)
			require.Positive(t, f, l)
		}
	}
	for _, side := range []string{Vigil, Peer} {
		sr := res.side(side)
		require.Empty(t, sr.NA, side)
		require.Len(t, sr.Samples, 1)
		s := sr.Samples[0]
		require.Positive(t, s.Items, side)
		require.Positive(t, s.CPUS, side)
		require.Positive(t, s.SinkPerS, "%s delivered spans to the sink", side)
		require.Positive(t, s.MedianRSSMiB, side)
		require.GreaterOrEqual(t, s.PeakRSSMiB, s.MedianRSSMiB, side)
	}

	// T3: the peer has no config for it; Vigil runs it once its components exist.
	w3, ok := Lookup("T3")
	require.True(t, ok)
	out.Reset()
	opts.Reps = 0
	opts.Bins = map[string]string{Peer: peer, Vigil: "/nonexistent/vigil"}
	res3, err := Run(ctx, opts, w3)
	require.NoError(t, err)
	require.Contains(t, res3.side(Vigil).NA, "no binary")
	require.Contains(t, out.String(), "RESULT T3 items_per_s vigil=n/a peer=n/a ratio=n/a")
}
