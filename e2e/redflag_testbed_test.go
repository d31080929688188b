package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vigilhq/vigil/benchmarks/testbed"
	"github.com/vigilhq/vigil/internal/alertevent"
	"github.com/vigilhq/vigil/internal/simulate"
	"github.com/vigilhq/vigil/testkit/otlpsink"
)

// testbedBinary is the testbed's binary: TESTBED_BIN (the Makefile builds
// it once), or built into the test's temp dir.
func testbedBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("TESTBED_BIN"); p != "" {
		return p
	}
	p := filepath.Join(t.TempDir(), "testbed")
	cmd := exec.Command("go", "build", "-o", p, "../benchmarks/cmd/testbed")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	require.NoError(t, cmd.Run(), "cannot build the testbed")
	return p
}

// logWriter sends progress lines to the test's log.
type logWriter struct {
	t  *testing.T
	mu sync.Mutex
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestRedFlagsOnRealServices plays the testbed's short plan against vigil:
// ledger, a deep chain of real Go services behind an HTTP gateway, talking
// gRPC with otelgrpc's stats handler (callees named by pod IP, or by nothing
// when a call never got a connection), exporting with the OpenTelemetry SDK.
// After two minutes of healthy traffic, one service fails, then, after a
// gap, one gets slow without failing (CPU starvation or a slow network).
// For each fault vigil must raise CascadingFailure naming the service where
// it started (never a caller, a sibling or an IP address), and the symptom
// on the edge into it; nothing may fire on the healthy traffic before.
// About seven minutes.
func TestRedFlagsOnRealServices(t *testing.T) {
	toxiproxy := lookTool(t, "toxiproxy-server")
	bin := testbedBinary(t)
	sink, err := otlpsink.Start("127.0.0.1:0", true)
	require.NoError(t, err)
	t.Cleanup(sink.Stop)

	grpcPort, healthPort, telPort := freePort(t), freePort(t), freePort(t)
	cfg := writeConfig(t, fmt.Sprintf(`extensions:
  health_check:
    endpoint: 127.0.0.1:%d
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:%d
connectors:
  redflag: {}
exporters:
  otlp_grpc/alerts:
    endpoint: %s
    tls: {insecure: true}
service:
  extensions: [health_check]
%s
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [redflag]
    metrics:
      receivers: [otlp]
      exporters: [redflag]
    logs:
      receivers: [otlp]
      exporters: [redflag]
    logs/alerts:
      receivers: [redflag]
      exporters: [otlp_grpc/alerts]
`, healthPort, grpcPort, sink.Addr, telemetryYAML(telPort)))
	startAgent(t, healthPort, "--config", cfg)

	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	start := time.Now()
	truths, err := testbed.Run(ctx, testbed.Options{
		Bin: bin, Endpoint: fmt.Sprintf("127.0.0.1:%d", grpcPort), Seed: 7, Plan: testbed.PlanShort,
		Topologies: []string{"ledger"}, WorkDir: t.TempDir(), Toxiproxy: toxiproxy, Log: &logWriter{t: t},
	})
	require.NoError(t, err)
	require.Len(t, truths, 1)
	truth := truths[0]
	require.Len(t, truth.Faults, 2)
	time.Sleep(20 * time.Second) // the last evaluations and their events

	var events []alertevent.Event
	for _, ld := range sink.Logs() {
		for _, rl := range ld.ResourceLogs().All() {
			for _, sl := range rl.ScopeLogs().All() {
				for _, lr := range sl.LogRecords().All() {
					if ev, err := alertevent.FromRecord(lr); err == nil {
						events = append(events, ev)
					}
				}
			}
		}
	}
	var fired []alertevent.Event
	for _, ev := range events {
		if ev.State == alertevent.StateFiring {
			fired = append(fired, ev)
			t.Logf("+%s firing %s %s", ev.FiredAt.Sub(start).Round(time.Second), ev.Name(), formatEventLabels(ev.Labels))
		}
	}

	warmupEnd := truth.Faults[0].Start
	for _, ev := range fired {
		assert.False(t, ev.FiredAt.Before(warmupEnd), "an alert on the healthy traffic before the first fault: %s %v", ev.Name(), ev.Labels)
		if o := ev.Labels["origin_service"]; o != "" {
			_, err := netip.ParseAddr(o)
			assert.Error(t, err, "an incident names a pod IP as its origin: %v", ev.Labels)
		}
	}
	const grace = 2 * time.Minute
	for _, f := range truth.Faults {
		t.Run(f.Kind+"@"+f.Origin, func(t *testing.T) {
			t.Logf("fault: %s %s (%s) from +%s to +%s", f.Origin, f.Kind, f.Detail, f.Start.Sub(start).Round(time.Second), f.End.Sub(start).Round(time.Second))
			// A fault owns what fires from its start until grace after its
			// end, or until the next fault starts (the short plan's gaps are
			// shorter than the grace).
			until := f.End.Add(grace)
			for _, g := range truth.Faults {
				if g.Start.After(f.Start) && g.Start.Before(until) {
					until = g.Start
				}
			}
			in := func(ev alertevent.Event) bool {
				return !ev.FiredAt.Before(f.Start) && ev.FiredAt.Before(until)
			}
			var first *alertevent.Event
			for i := range fired {
				ev := &fired[i]
				if in(*ev) && (ev.Name() == simulate.AlertCascadingFailure || ev.Name() == simulate.AlertIsolatedFailure) {
					if first == nil {
						first = ev
					}
					assert.Equal(t, f.Origin, ev.Labels["origin_service"], "an incident during the fault names another origin: %s %v", ev.Name(), ev.Labels)
				}
			}
			require.NotNil(t, first, "no CascadingFailure for %s", f.Origin)
			assert.Equal(t, simulate.AlertCascadingFailure, first.Name())
			t.Logf("CascadingFailure %s after the fault started", first.FiredAt.Sub(f.Start).Round(time.Second))
			for _, e := range f.Expect {
				if e.Alertname == simulate.AlertCascadingFailure {
					continue
				}
				met := false
				for _, ev := range fired {
					ok := in(ev) && ev.Name() == e.Alertname
					for k, v := range e.Labels {
						ok = ok && ev.Labels[k] == v
					}
					met = met || ok
				}
				assert.True(t, met, "expected %s%v", e.Alertname, e.Labels)
			}
		})
	}
}

func formatEventLabels(l map[string]string) string {
	var parts []string
	for _, k := range []string{"origin_service", "service", "callee", "cascade_id"} {
		if v := l[k]; v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	return "{" + strings.Join(parts, ",") + "}"
}
