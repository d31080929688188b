package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/vigilhq/vigil/testkit/otlpsink"
)

// The agent-to-gateway example routes by trace ID: with two gateways, every
// span of a trace lands on the same one, and both get a share.
func TestAgentToGatewayRoutesByTraceID(t *testing.T) {
	gw1, err := otlpsink.Start("127.0.0.1:0", true)
	require.NoError(t, err)
	t.Cleanup(gw1.Stop)
	gw2, err := otlpsink.Start("127.0.0.1:0", true)
	require.NoError(t, err)
	t.Cleanup(gw2.Stop)

	health, tel, grpcPort := freePort(t), freePort(t), freePort(t)
	override := writeConfig(t, fmt.Sprintf(`
extensions:
  health_check:
    endpoint: 127.0.0.1:%d
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:%d
processors:
  batch:
    timeout: 100ms
exporters:
  load_balancing:
    resolver:
      dns: null
      static:
        hostnames: [%s, %s]
service:
%s
`, health, grpcPort, gw1.Addr, gw2.Addr, telemetryYAML(tel)))
	startAgent(t, health, "--config", "../deploy/examples/agent-to-gateway.yaml", "--config", override)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(fmt.Sprintf("127.0.0.1:%d", grpcPort)), otlptracegrpc.WithInsecure())
	require.NoError(t, err)
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(testResource(t, "frontend")))
	const traces, spansPerTrace = 40, 5
	for i := range traces {
		rctx, root := tp.Tracer("e2e").Start(ctx, fmt.Sprintf("trace-%d", i))
		for j := range spansPerTrace - 1 {
			_, child := tp.Tracer("e2e").Start(rctx, fmt.Sprintf("child-%d", j))
			child.End()
		}
		root.End()
	}
	require.NoError(t, tp.Shutdown(ctx))

	require.True(t, otlpsink.WaitFor(20*time.Second, func() bool {
		return gw1.Spans.Load()+gw2.Spans.Load() >= traces*spansPerTrace
	}), "gateways got %d + %d spans", gw1.Spans.Load(), gw2.Spans.Load())

	owner := map[pcommon.TraceID]*otlpsink.Sink{}
	for _, gw := range []*otlpsink.Sink{gw1, gw2} {
		for _, td := range gw.Traces() {
			for _, rs := range td.ResourceSpans().All() {
				for _, ss := range rs.ScopeSpans().All() {
					for _, sp := range ss.Spans().All() {
						if o, ok := owner[sp.TraceID()]; ok {
							require.Same(t, o, gw, "trace %s split across gateways", sp.TraceID())
						}
						owner[sp.TraceID()] = gw
					}
				}
			}
		}
	}
	require.Len(t, owner, traces)
	require.Positive(t, gw1.Spans.Load())
	require.Positive(t, gw2.Spans.Load())
	require.Equal(t, int64(traces*spansPerTrace), gw1.Spans.Load()+gw2.Spans.Load())
}
