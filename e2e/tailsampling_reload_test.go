package e2e

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/vigilhq/vigil/testkit/otlpsink"
)

// TestTailSamplingReloadKeepsPendingTraces: a config change applied with
// SIGHUP (the collector shuts the pipeline down and builds it again) keeps
// every trace still waiting for its decision when the sampler has storage:
// after the reload they are decided by the new policies, whole, and their
// spans name the policy that kept them (record_policy).
func TestTailSamplingReloadKeepsPendingTraces(t *testing.T) {
	sink, err := otlpsink.Start("127.0.0.1:0", true)
	require.NoError(t, err)
	t.Cleanup(sink.Stop)
	health, tel, grpcPort := freePort(t), freePort(t), freePort(t)
	storage := t.TempDir()
	config := func(policy string) string {
		return fmt.Sprintf(`
extensions:
  health_check:
    endpoint: 127.0.0.1:%d
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:%d
processors:
  tail_sampling:
    decision_wait: 15s
    storage: %s
    record_policy: true
    policies: [%s]
exporters:
  otlp:
    endpoint: %s
    tls:
      insecure: true
service:
  extensions: [health_check]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [tail_sampling]
      exporters: [otlp]
%s
`, health, grpcPort, storage, policy, sink.Addr, telemetryYAML(tel))
	}
	const errorsPolicy = `{name: errors, type: status_code, status_code: {status_codes: [ERROR]}}`
	const goldPolicy = `{name: gold, type: string_attribute, string_attribute: {key: tier, values: [gold]}}`
	path := writeConfig(t, config(errorsPolicy))
	a := startAgent(t, health, "--config", path)

	// 60 traces of 3 spans: every third is a gold customer's, every fourth
	// failed. Under the first config the failed ones would be kept; under
	// the second, the gold ones.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(fmt.Sprintf("127.0.0.1:%d", grpcPort)), otlptracegrpc.WithInsecure())
	require.NoError(t, err)
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(testResource(t, "checkout")))
	const traces, spansPerTrace = 60, 3
	gold := map[pcommon.TraceID]bool{}
	for i := range traces {
		rctx, root := tp.Tracer("e2e").Start(ctx, fmt.Sprintf("order-%d", i))
		if i%3 == 0 {
			root.SetAttributes(attribute.String("tier", "gold"))
			gold[pcommon.TraceID(root.SpanContext().TraceID())] = true
		}
		for j := range spansPerTrace - 1 {
			_, child := tp.Tracer("e2e").Start(rctx, fmt.Sprintf("step-%d", j))
			if i%4 == 0 && j == 0 {
				child.SetStatus(codes.Error, "declined")
			}
			child.End()
		}
		root.End()
	}
	require.NoError(t, tp.Shutdown(ctx))
	require.True(t, otlpsink.WaitFor(10*time.Second, func() bool {
		return metricSum(scrape(tel), "otelcol_processor_tail_sampling_sampling_traces_on_memory", nil) == traces
	}), "the sampler holds every trace, waiting")
	require.Zero(t, sink.Spans.Load(), "nothing decided before decision_wait")

	require.NoError(t, os.WriteFile(path, []byte(config(goldPolicy)), 0o600))
	require.NoError(t, a.cmd.Process.Signal(syscall.SIGHUP))
	require.True(t, otlpsink.WaitFor(20*time.Second, func() bool {
		return metricSum(scrape(tel), "otelcol_processor_tail_sampling_sampling_traces_on_memory", nil) == traces
	}), "after the reload the sampler holds every pending trace again:\n%s", tail(a.log.String(), 4000))
	require.Contains(t, a.log.String(), "Config updated, restart service")
	require.Zero(t, sink.Spans.Load(), "the reload decided nothing: the traces wait out the rest of decision_wait")

	want := int64(len(gold) * spansPerTrace)
	require.True(t, otlpsink.WaitFor(40*time.Second, func() bool { return sink.Spans.Load() >= want }),
		"got %d of %d spans of gold traces", sink.Spans.Load(), want)
	time.Sleep(2 * time.Second) // anything else the sampler would send
	kept := map[pcommon.TraceID]int{}
	for _, td := range sink.Traces() {
		for _, rs := range td.ResourceSpans().All() {
			for _, ss := range rs.ScopeSpans().All() {
				p, _ := ss.Scope().Attributes().Get("tailsampling.policy")
				for _, sp := range ss.Spans().All() {
					require.Equal(t, "gold", p.AsString(), "kept by the policy in force after the reload")
					kept[sp.TraceID()]++
				}
			}
		}
	}
	require.Len(t, kept, len(gold), "exactly the gold traces: the new policy decided every trace pending at the reload")
	for id, n := range kept {
		require.True(t, gold[id])
		require.Equal(t, spansPerTrace, n, "trace %s arrives whole", id)
	}
}
