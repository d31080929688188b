package e2e

import (
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigilhq/vigil/testkit/otlpsink"
)

// TestSimulateThroughVigil runs `vigil simulate` against a vigil that
// forwards every signal to a sink, and checks what arrives: spans of the
// shop's services with the injected fault at the printed origin, logs and
// metrics.
func TestSimulateThroughVigil(t *testing.T) {
	grpcAddr, _, sink := forwardingAgent(t)
	// 20 s of simulated time at 4x: about 5 s of wall time, two metric intervals,
	// the fault from 5 s to 15 s.
	out, code := runVigil(t, 90*time.Second, "simulate", "--endpoint", grpcAddr, "--scenario", "error-dependency",
		"--seed", "2", "--rate", "40", "--duration", "20s", "--speed", "4", "--fault-after", "5s", "--fault-duration", "10s")
	require.Equal(t, 0, code, out)
	m := regexp.MustCompile(`scenario error-dependency \(seed 2, 40 root req/s\): origin (\S+), errors fails \d+% of requests`).FindStringSubmatch(out)
	require.NotNil(t, m, "ground truth line missing:\n%s", out)
	origin := m[1]
	last := regexp.MustCompile(`spans (\d+) \(\+\d+\)  logs (\d+) \(\+\d+\)  points (\d+) \(\+\d+\)  dropped 0  phase: fault over\n$`).FindStringSubmatch(out)
	require.NotNil(t, last, "final status line missing:\n%s", out)
	var spans, logs, points int64
	_, err := fmt.Sscan(last[1]+" "+last[2]+" "+last[3], &spans, &logs, &points)
	require.NoError(t, err)

	services := map[string]bool{}
	originErrors := 0
	ok := otlpsink.WaitFor(20*time.Second, func() bool {
		clear(services)
		originErrors = 0
		for _, td := range sink.Traces() {
			for _, rs := range td.ResourceSpans().All() {
				svc, _ := rs.Resource().Attributes().Get("service.name")
				services[svc.Str()] = true
				for _, ss := range rs.ScopeSpans().All() {
					for _, sp := range ss.Spans().All() {
						if svc.Str() == origin && sp.Kind() == ptrace.SpanKindServer && sp.Status().Code() == ptrace.StatusCodeError {
							originErrors++
						}
					}
				}
			}
		}
		// Everything the command says it sent arrived through vigil.
		return sink.Spans.Load() == spans && sink.LogRecords.Load() == logs && sink.DataPoints.Load() == points
	})
	require.True(t, ok, "sink has %d spans, %d logs, %d points\n%s", sink.Spans.Load(), sink.LogRecords.Load(), sink.DataPoints.Load(), out)
	require.Positive(t, logs)
	require.Positive(t, points)
	require.Len(t, services, 10, "spans of every service: %v", services)
	require.Positive(t, originErrors, "the origin %s fails", origin)
}

func TestSimulateListAndBadFlags(t *testing.T) {
	out, code := runVigil(t, 10*time.Second, "simulate", "--list")
	require.Equal(t, 0, code, out)
	for _, s := range []string{"healthy", "error-dependency", "slow-dependency", "retry-storm", "metastable", "pool-exhaustion",
		"bad-instance", "contained-by-fallback", "traffic-surge", "deploy", "low-traffic", "client-4xx-burst", "two-faults"} {
		require.Regexp(t, "(?m)^"+s+" ", out)
	}
	out, code = runVigil(t, 10*time.Second, "simulate", "--scenario", "nope")
	require.NotEqual(t, 0, code)
	require.Contains(t, out, `--scenario: unknown "nope"`)
	out, code = runVigil(t, 10*time.Second, "simulate", "--speed", "0")
	require.NotEqual(t, 0, code)
	require.Contains(t, out, "--speed")
}

func TestSimulateReportsAnUnreachableEndpoint(t *testing.T) {
	port := freePort(t) // nothing listens there
	out, code := runVigil(t, 60*time.Second, "simulate", "--endpoint", fmt.Sprintf("127.0.0.1:%d", port), "--duration", "2s", "--speed", "2")
	require.NotEqual(t, 0, code, out)
	require.Contains(t, out, "nothing was delivered")
	require.Regexp(t, `dropped [1-9]\d*`, out)
}
