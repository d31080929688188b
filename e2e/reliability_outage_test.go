package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigilhq/vigil/testkit/otlpsink"
)

// outageDuration is how long backends stay away: 30 s in CI, longer with
// VIGIL_OUTAGE=3m (the soak/long mode).
func outageDuration(t *testing.T) time.Duration {
	if s := os.Getenv("VIGIL_OUTAGE"); s != "" {
		d, err := time.ParseDuration(s)
		require.NoError(t, err, "VIGIL_OUTAGE")
		return d
	}
	return 30 * time.Second
}

// reliabilityAgent is vigil on the embedded agent profile (vigil:agent) with
// only its ports moved, plus remote write to a real Prometheus and OTLP/HTTP
// logs to a real VictoriaLogs, both with the same loss-free settings.
type reliabilityAgent struct {
	*agent
	grpcAddr string
	telPort  int
	storage  string
	root     string
}

func startReliabilityAgent(t *testing.T, sinkAddr string, prom *restartablePrometheus, vl *victoriaLogs, extraYAML string) *reliabilityAgent {
	t.Helper()
	dir := t.TempDir()
	ra := &reliabilityAgent{storage: filepath.Join(dir, "storage"), root: filepath.Join(dir, "host")}
	health, grpcPort, httpPort, rw, promPort := freePort(t), freePort(t), freePort(t), freePort(t), freePort(t)
	ra.telPort = freePort(t)
	ra.grpcAddr = fmt.Sprintf("127.0.0.1:%d", grpcPort)
	t.Setenv("VIGIL_OTLP_ENDPOINT", sinkAddr)
	t.Setenv("VIGIL_OTLP_INSECURE", "true")
	t.Setenv("VIGIL_STORAGE_DIR", ra.storage)
	t.Setenv("VIGIL_HOST_ROOT", ra.root)
	metricsExporters, logsExporters := "[otlp_grpc, prometheus]", "[otlp_grpc]"
	var backends strings.Builder
	if prom != nil {
		metricsExporters = "[otlp_grpc, prometheus, prometheus_remote_write]"
		// Vigil's remote-write exporter: the collector's persistent
		// sending queue, retried until Prometheus is back.
		fmt.Fprintf(&backends, `
  prometheus_remote_write:
    endpoint: %s/api/v1/write
    timeout: 10s
    retry_on_failure:
      enabled: true
      initial_interval: 50ms
      max_interval: 5s
      max_elapsed_time: 0
    sending_queue:
      storage: file_storage
      queue_size: 100000
`, prom.URL)
	}
	if vl != nil {
		logsExporters = "[otlp_grpc, otlp_http/vlogs]"
		fmt.Fprintf(&backends, `
  otlp_http/vlogs:
    logs_endpoint: %s
    encoding: proto
    sending_queue:
      enabled: true
      storage: file_storage
      sizer: bytes
      queue_size: 268435456
      num_consumers: 2
      batch: {sizer: items, flush_timeout: 200ms, min_size: 2048, max_size: 8192}
    retry_on_failure:
      enabled: true
      initial_interval: 1s
      max_interval: 5s
      max_elapsed_time: 0
`, vl.OTLPLogsURL())
	}
	override := fmt.Sprintf(`
extensions:
  health_check:
    endpoint: 127.0.0.1:%d
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:%d
      http:
        endpoint: 127.0.0.1:%d
  prometheus_remote_write:
    endpoint: 127.0.0.1:%d
  container_log:
    poll_interval: 100ms
exporters:
  prometheus:
    endpoint: 127.0.0.1:%d
  # Shorter waits than the profile's, so a test drains in seconds.
  otlp_grpc:
    retry_on_failure:
      max_interval: 5s
  otlp_grpc/traces:
    retry_on_failure:
      max_interval: 5s
%s
service:
  telemetry:
    metrics:
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: %d
  pipelines:
    metrics:
      receivers: [forward/metrics, redflag]
      exporters: %s
    logs:
      receivers: [forward/logs, redflag]
      exporters: %s
`, health, grpcPort, httpPort, rw, promPort, backends.String(), ra.telPort, metricsExporters, logsExporters)
	args := []string{"--config", "vigil:agent", "--config", writeConfig(t, override)}
	if extraYAML != "" {
		// Merged on top, as a user's own file would be.
		p := filepath.Join(t.TempDir(), "extra.yaml")
		require.NoError(t, os.WriteFile(p, []byte(extraYAML), 0o600))
		args = append(args, "--config", p)
	}
	ra.agent = startAgent(t, health, args...)
	keepAgentLog(t, ra.agent)
	return ra
}

// outageBackends are the three backends of the outage tests.
type outageBackends struct {
	sink *restartableSink
	prom *restartablePrometheus
	vl   *victoriaLogs
}

func (b *outageBackends) stop() {
	b.sink.Stop()
	b.prom.Stop()
	b.vl.Stop()
}

func (b *outageBackends) start() {
	b.sink.Start()
	b.prom.Start()
	b.vl.Start()
}

// TestBackendOutage: under steady load of every signal, all three backends
// (an OTLP sink, Prometheus via remote write, VictoriaLogs via OTLP/HTTP) go
// away for VIGIL_OUTAGE (30 s by default) and come back; halfway through, the
// agent is restarted gracefully (SIGTERM: queues stay on disk, the tail
// sampler saves its pending traces). Every item the agent accepted then
// arrives at each backend, with duplicates counted.
func TestBackendOutage(t *testing.T) {
	testOutage(t, false)
}

// TestCrashDuringOutage: the same, and the agent is killed with SIGKILL in
// the middle of the outage and restarted: the persistent queues, the
// log offsets carry everything over. What the tail
// sampler held undecided at the kill is measured separately (it saves its
// state on graceful shutdown only).
func TestCrashDuringOutage(t *testing.T) {
	testOutage(t, true)
}

func testOutage(t *testing.T, crash bool) {
	b := &outageBackends{sink: startRestartableSink(t), prom: startRestartablePrometheus(t), vl: startVictoriaLogs(t)}
	ra := startReliabilityAgent(t, b.sink.Addr, b.prom, b.vl, "")
	rate := loadRate{Traces: 4, Series: 20, Logs: 20, FileLines: 20} // per 100 ms: 200 spans/s, 200 points/s, 200 records/s, 200 lines/s
	load := startLoad(t, ra.grpcAddr, loadLogFile(ra.root), rate)
	outage := outageDuration(t)

	time.Sleep(5 * time.Second)
	t0 := time.Now()
	b.stop()
	t.Logf("backends stopped for %s", outage)
	var maxQueue float64
	var restartedAt time.Time
	var pendingAtKill float64
	var before [4]float64
	for time.Since(t0) < outage {
		time.Sleep(time.Second)
		text := scrape(ra.telPort)
		if text != "" {
			maxQueue = max(maxQueue, metricSum(text, "otelcol_exporter_queue_size", nil))
		}
		if restartedAt.IsZero() && time.Since(t0) >= outage/2 {
			restartedAt = time.Now()
			if crash {
				// What the tail sampler holds undecided now is what a
				// SIGKILL can take from it.
				pendingAtKill = metricSum(text, "otelcol_processor_tail_sampling_sampling_traces_on_memory", nil)
				ra.Kill()
				t.Logf("agent killed (SIGKILL) %s into the outage, with %.0f traces undecided in the tail sampler", time.Since(t0).Round(time.Second), pendingAtKill)
			} else {
				// Paused so the agent's counters, which restart with it,
				// can be added up exactly.
				load.Pause()
				// The file reader polls: wait until what the agent counts
				// stops moving, so lines read after the scrape are not
				// counted by an agent that stops before the next one.
				before = settledAccepted(ra.telPort)
				ra.Stop()
				t.Logf("agent stopped (SIGTERM) %s into the outage", time.Since(t0).Round(time.Second))
			}
			ra.Restart()
			load.Resume()
			t.Logf("agent restarted and healthy after %s", time.Since(restartedAt).Round(100*time.Millisecond))
		}
	}
	b.start()
	back := time.Now()
	t.Logf("backends back after %s; exporter queues peaked at %.0f (sum of queue sizes)", back.Sub(t0).Round(time.Second), maxQueue)
	time.Sleep(5 * time.Second)
	load.Stop()

	spansAcc, pointsAcc, logsAcc, linesAcc := load.Accepted()
	t.Logf("accepted by the agent (client ledger): %d spans, %d points, %d records, %d file lines; retryable refusals %v",
		spansAcc, pointsAcc, logsAcc, linesAcc, load.Refused())
	require.Positive(t, spansAcc)

	// The sampler's gauge is read at most a second before the kill: the
	// traces of that second may also have been undecided.
	lossBound := (int64(pendingAtKill) + 10*int64(rate.Traces)) * spansPerTrace

	// Everything must reach the OTLP sink.
	var spans, points, logs, lines counts
	drained := otlpsink.WaitFor(3*time.Minute, func() bool {
		spans, points, logs, lines = load.tally(b.sink.All())
		if crash {
			// Undecided traces the sampler lost at the kill are judged below.
			return points.Lost == 0 && logs.Lost == 0 && lines.Lost == 0 && spans.Lost <= lossBound
		}
		return spans.Lost+points.Lost+logs.Lost+lines.Lost == 0
	})
	if crash && drained {
		// Spans still in the sampler's decision wait arrive a little later
		// than the rest: give them that before counting what was lost.
		time.Sleep(3 * time.Second)
		spans, points, logs, lines = load.tally(b.sink.All())
	}
	t.Logf("otlp sink, %s after the backends returned:\n  spans:  %v\n  points: %v\n  logs:   %v\n  file:   %v",
		time.Since(back).Round(100*time.Millisecond), spans, points, logs, lines)
	require.True(t, drained, "the sink did not receive everything accepted")
	for name, c := range map[string]counts{"points": points, "logs": logs, "file lines": lines} {
		require.Zerof(t, c.Lost, "%s lost", name)
		require.LessOrEqualf(t, c.Duplicates, c.Accepted/10, "%s: too many duplicates", name)
	}

	if crash {
		// Spans the sampler held undecided at the kill are lost unless they
		// were in a checkpoint; everything accepted earlier than one
		// decision wait before the kill must have arrived.
		t.Logf("tail sampler: %d spans (%d traces) lost at the SIGKILL, of %.0f traces it held undecided", spans.Lost, spans.Lost/spansPerTrace, pendingAtKill)
		require.LessOrEqual(t, spans.Lost, lossBound, "more spans lost than the tail sampler held undecided at the kill")
		require.LessOrEqual(t, spans.Duplicates, spans.Accepted/10)
	} else {
		require.Zero(t, spans.Lost)
		require.LessOrEqual(t, spans.Duplicates, spans.Accepted/10)
		require.Equal(t, spans.Distinct, int64(spansAcc))
	}
	if !crash {
		// The agent's own count of what it accepted (before and after the
		// restart) agrees with the client's and with what arrived.
		after := acceptedByAgent(scrape(ra.telPort))
		for i, want := range []int{spansAcc, pointsAcc, logsAcc, linesAcc} {
			require.InDeltaf(t, float64(want), before[i]+after[i], 0, "signal %d: the agent's accepted count", i)
		}
		t.Logf("agent's own metrics: accepted %v before and %v after the restart", before, after)
	}

	// Prometheus: every accepted point is a sample (it ignores a repeated
	// sample, so duplicates do not show here).
	var samples float64
	ok := otlpsink.WaitFor(2*time.Minute, func() bool {
		samples, _ = b.prom.scalar(`sum(count_over_time(vigil_loadgen_gauge{job="loadgen"}[1h]))`)
		return int(samples) >= pointsAcc
	})
	t.Logf("prometheus (remote write): %.0f samples of %d accepted points", samples, pointsAcc)
	require.True(t, ok, "%d points accepted by the agent never reached Prometheus", pointsAcc-int(samples))
	require.EqualValues(t, pointsAcc, samples)

	// VictoriaLogs: every accepted record, duplicates counted.
	var n, u int64
	ok = otlpsink.WaitFor(2*time.Minute, func() bool {
		var err error
		n, u, err = b.vl.countQuery(`"service.name":="loadgen" | stats count() n, count_uniq(seq) u`)
		return err == nil && u >= int64(logsAcc)
	})
	t.Logf("victoria-logs (otlp_http): %d records, %d distinct, of %d accepted (%d duplicates)", n, u, logsAcc, n-u)
	require.True(t, ok)
	require.EqualValues(t, logsAcc, u)
	require.LessOrEqual(t, n-u, int64(logsAcc)/10)
}

// keepAgentLog writes the agent's whole output to $VIGIL_E2E_LOGDIR/<test>.log
// when the test fails and that variable is set (the failure message shows
// only its tail).
func keepAgentLog(t *testing.T, a *agent) {
	dir := os.Getenv("VIGIL_E2E_LOGDIR")
	if dir == "" {
		return
	}
	t.Cleanup(func() {
		if t.Failed() {
			_ = os.MkdirAll(dir, 0o755)
			_ = os.WriteFile(filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+".log"), []byte(a.log.String()), 0o600)
		}
	})
}

// acceptedByAgent reads what the agent says it accepted from the load:
// spans, points and records over OTLP, and log lines from files.
// settledAccepted scrapes the agent's accepted counts until three scrapes
// 300 ms apart agree (at most 10 s), and returns them.
func settledAccepted(port int) [4]float64 {
	last, same := acceptedByAgent(scrape(port)), 0
	for deadline := time.Now().Add(10 * time.Second); same < 2 && time.Now().Before(deadline); {
		time.Sleep(300 * time.Millisecond)
		cur := acceptedByAgent(scrape(port))
		if cur == last {
			same++
		} else {
			last, same = cur, 0
		}
	}
	return last
}

func acceptedByAgent(text string) [4]float64 {
	return [4]float64{
		metricSum(text, "otelcol_receiver_accepted_spans", map[string]string{"receiver": "otlp"}),
		metricSum(text, "otelcol_receiver_accepted_metric_points", map[string]string{"receiver": "otlp"}),
		metricSum(text, "otelcol_receiver_accepted_log_records", map[string]string{"receiver": "otlp"}),
		metricSum(text, "otelcol_receiver_accepted_log_records", map[string]string{"receiver": "container_log"}),
	}
}
