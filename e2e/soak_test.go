package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigilhq/vigil/testkit/otlpsink"
)

// TestSoak runs the agent profile under mixed traffic (OTLP traces, metrics
// and logs, and container log lines) for VIGIL_SOAK (`make soak`: 10m) and
// reports resident memory and goroutines over time. It holds when nothing is
// lost, the goroutine count does not climb, and memory after the warm-up
// grows by less than a quarter. Skipped unless VIGIL_SOAK is set.
func TestSoak(t *testing.T) {
	s := os.Getenv("VIGIL_SOAK")
	if s == "" {
		t.Skip("set VIGIL_SOAK=10m (make soak) to run the soak test")
	}
	d, err := time.ParseDuration(s)
	require.NoError(t, err)
	warmup := min(2*time.Minute, d/5)

	sink := startRestartableSink(t)
	pprofPort := freePort(t)
	ra := startReliabilityAgent(t, sink.Addr, nil, nil, fmt.Sprintf(`
extensions:
  pprof:
    endpoint: 127.0.0.1:%d
service:
  extensions: [health_check, file_storage, pprof]
`, pprofPort))
	rate := loadRate{Traces: 4, Series: 10, Logs: 10, FileLines: 10} // 500 items/s
	load := startLoad(t, ra.grpcAddr, loadLogFile(ra.root), rate)
	pid := ra.cmd.Process.Pid

	var samples []soakSample
	start := time.Now()
	for time.Since(start) < d {
		time.Sleep(10 * time.Second)
		rss, anon := rssOf(pid)
		text := scrape(ra.telPort)
		samples = append(samples, soakSample{
			at: time.Since(start).Round(time.Second), rss: rss, anon: anon,
			goroutines: goroutines(pprofPort),
			heap:       metricSum(text, "otelcol_process_runtime_heap_alloc_bytes", nil),
		})
	}
	load.Stop()
	spans, points, logs, lines := counts{}, counts{}, counts{}, counts{}
	drained := otlpsink.WaitFor(2*time.Minute, func() bool {
		spans, points, logs, lines = load.tally(sink.All())
		return spans.Lost+points.Lost+logs.Lost+lines.Lost == 0
	})

	var b strings.Builder
	fmt.Fprintf(&b, "soak %s at %d items/s (traces, metrics, logs over OTLP; container log lines)\n", d, 10*(rate.Traces*spansPerTrace+rate.Series+rate.Logs+rate.FileLines))
	fmt.Fprintf(&b, "%8s %9s %9s %9s %11s\n", "time", "rss MiB", "anon MiB", "heap MiB", "goroutines")
	for i, sm := range samples {
		if i%6 == 0 || i == len(samples)-1 {
			fmt.Fprintf(&b, "%8s %9d %9d %9.0f %11.0f\n", sm.at, sm.rss>>20, sm.anon>>20, sm.heap/(1<<20), sm.goroutines)
		}
	}
	var after []soakSample
	for _, sm := range samples {
		if sm.at >= warmup {
			after = append(after, sm)
		}
	}
	require.GreaterOrEqual(t, len(after), 2, "too short to judge drift")
	first, last := after[0], after[len(after)-1]
	slope := rssSlope(after)
	fmt.Fprintf(&b, "after the %s warm-up: rss %d -> %d MiB (%+.1f%%, least-squares slope %+.1f MiB/h), anon %d -> %d MiB, goroutines %.0f -> %.0f\n",
		warmup, first.rss>>20, last.rss>>20, 100*float64(last.rss-first.rss)/float64(first.rss), slope, first.anon>>20, last.anon>>20, first.goroutines, last.goroutines)
	fmt.Fprintf(&b, "spans %v\npoints %v\nlogs %v\nfile lines %v\n", spans, points, logs, lines)
	t.Log("\n" + b.String())
	if out := os.Getenv("VIGIL_SOAK_REPORT"); out != "" {
		require.NoError(t, os.WriteFile(out, []byte(b.String()), 0o644))
	}

	require.True(t, drained, "items lost in the soak")
	require.LessOrEqual(t, last.goroutines, first.goroutines+50, "goroutines climb")
	require.Less(t, float64(last.anon), 1.25*float64(first.anon), "anonymous memory grows by a quarter or more after the warm-up")
}

// goroutines reads the goroutine count from the pprof extension.
func goroutines(port int) float64 {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/goroutine?debug=1", port))
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	first, _, _ := strings.Cut(string(b), "\n")
	n, _ := strconv.ParseFloat(strings.TrimPrefix(first, "goroutine profile: total "), 64)
	return n
}

type soakSample struct {
	at               time.Duration
	rss, anon        int64
	goroutines, heap float64
}

// rssSlope fits rss = a + b*t by least squares and returns b in MiB/hour.
func rssSlope(samples []soakSample) float64 {
	var n, sx, sy, sxx, sxy float64
	for _, s := range samples {
		x, y := s.at.Hours(), float64(s.rss)/(1<<20)
		n++
		sx += x
		sy += y
		sxx += x * x
		sxy += x * y
	}
	if den := n*sxx - sx*sx; den != 0 {
		return (n*sxy - sx*sy) / den
	}
	return 0
}
