package e2e

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigilhq/vigil/testkit/otlpsink"
)

// TestSlowAndResetBackend puts toxiproxy between the agent profile and its
// OTLP backend and, under steady load, makes the backend slow (2 s added to
// every response), then cuts answers off (responses never come back: the
// backend has the data, the agent cannot know), then resets connections.
// Everything accepted arrives; what the agent had to send twice arrives
// twice and is counted.
func TestSlowAndResetBackend(t *testing.T) {
	sink := startRestartableSink(t)
	tp := startToxiproxy(t)
	proxy := tp.Proxy(t, "backend", sink.Addr)
	ra := startReliabilityAgent(t, proxy, nil, nil, "")
	rate := loadRate{Traces: 2, Series: 10, Logs: 10, FileLines: 10}
	load := startLoad(t, ra.grpcAddr, loadLogFile(ra.root), rate)

	phase := func(name, typ string, attrs map[string]any, d time.Duration) {
		t.Logf("backend %s for %s", name, d)
		tp.Toxic(t, "backend", name, typ, attrs)
		time.Sleep(d)
		tp.RemoveToxic(t, "backend", name)
	}
	time.Sleep(3 * time.Second)
	phase("slow", "latency", map[string]any{"latency": 2000, "jitter": 500}, 10*time.Second)
	// Responses swallowed: requests reach the backend, answers do not come
	// back, so the exporter times out (10 s) and sends again.
	phase("blackhole", "timeout", map[string]any{"timeout": 0}, 12*time.Second)
	phase("reset", "reset_peer", map[string]any{"timeout": 200}, 8*time.Second)
	time.Sleep(3 * time.Second)
	load.Stop()

	spansAcc, pointsAcc, logsAcc, linesAcc := load.Accepted()
	var spans, points, logs, lines counts
	ok := otlpsink.WaitFor(2*time.Minute, func() bool {
		spans, points, logs, lines = load.tally(sink.All())
		return spans.Lost+points.Lost+logs.Lost+lines.Lost == 0
	})
	t.Logf("accepted %d spans, %d points, %d records, %d lines\n  spans:  %v\n  points: %v\n  logs:   %v\n  file:   %v",
		spansAcc, pointsAcc, logsAcc, linesAcc, spans, points, logs, lines)
	require.True(t, ok, "items lost behind a slow, silent and resetting backend")
	for name, c := range map[string]counts{"spans": spans, "points": points, "logs": logs, "file lines": lines} {
		// A resend is at most what was in flight when an answer was lost.
		require.LessOrEqualf(t, c.Duplicates, c.Accepted/2, "%s: %d duplicates", name, c.Duplicates)
	}
}
