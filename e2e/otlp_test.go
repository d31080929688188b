package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otellog "go.opentelemetry.io/otel/log"
	"go.opentelemetry.io/otel/metric"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/vigilhq/vigil/testkit/otlpsink"
)

// forwardingAgent starts vigil with OTLP in (gRPC and HTTP) and every signal
// forwarded over OTLP/gRPC to a sink that keeps what it receives.
func forwardingAgent(t *testing.T) (grpcAddr, httpURL string, sink *otlpsink.Sink) {
	t.Helper()
	sink, err := otlpsink.Start("127.0.0.1:0", true)
	require.NoError(t, err)
	t.Cleanup(sink.Stop)
	health, grpcPort, httpPort, tel := freePort(t), freePort(t), freePort(t), freePort(t)
	cfg := fmt.Sprintf(`
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
processors:
  batch:
    timeout: 200ms
exporters:
  otlp_grpc:
    endpoint: %s
    tls:
      insecure: true
service:
  extensions: [health_check]
%s
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlp_grpc]
    metrics:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlp_grpc]
    logs:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlp_grpc]
`, health, grpcPort, httpPort, sink.Addr, telemetryYAML(tel))
	startAgent(t, health, "--config", writeConfig(t, cfg))
	return fmt.Sprintf("127.0.0.1:%d", grpcPort), fmt.Sprintf("127.0.0.1:%d", httpPort), sink
}

func testResource(t *testing.T, name string) *resource.Resource {
	r, err := resource.Merge(resource.Empty(), resource.NewSchemaless(
		semconv.ServiceName(name), attribute.String("deployment.environment.name", "e2e")))
	require.NoError(t, err)
	return r
}

func TestOTLPSignalsEndToEnd(t *testing.T) {
	grpcAddr, httpAddr, sink := forwardingAgent(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	for _, proto := range []string{"grpc", "http"} {
		t.Run("traces/"+proto, func(t *testing.T) {
			var exp sdktrace.SpanExporter
			var err error
			if proto == "grpc" {
				exp, err = otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(grpcAddr), otlptracegrpc.WithInsecure())
			} else {
				exp, err = otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(httpAddr), otlptracehttp.WithInsecure())
			}
			require.NoError(t, err)
			svc := "checkout-" + proto
			tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(testResource(t, svc)))
			tr := tp.Tracer("e2e")
			const n = 60
			for i := range n {
				_, span := tr.Start(ctx, fmt.Sprintf("GET /items/%d", i), trace.WithSpanKind(trace.SpanKindServer),
					trace.WithAttributes(attribute.String("http.request.method", "GET"), attribute.Int("item.index", i)))
				span.End()
			}
			require.NoError(t, tp.Shutdown(ctx))

			got := map[string]int64{}
			ok := otlpsink.WaitFor(20*time.Second, func() bool {
				clear(got)
				for _, td := range sink.Traces() {
					for _, rs := range td.ResourceSpans().All() {
						if v, _ := rs.Resource().Attributes().Get("service.name"); v.Str() != svc {
							continue
						}
						for _, ss := range rs.ScopeSpans().All() {
							for _, sp := range ss.Spans().All() {
								idx, _ := sp.Attributes().Get("item.index")
								m, _ := sp.Attributes().Get("http.request.method")
								require.Equal(t, "GET", m.Str())
								require.Equal(t, ptraceKindServer, int(sp.Kind()))
								got[sp.Name()] = idx.Int()
							}
						}
					}
				}
				return len(got) >= n
			})
			require.True(t, ok, "sink received %d of %d distinct spans", len(got), n)
			require.Len(t, got, n)
			for i := range n {
				require.Equal(t, int64(i), got[fmt.Sprintf("GET /items/%d", i)])
			}
		})

		t.Run("metrics/"+proto, func(t *testing.T) {
			var exp sdkmetric.Exporter
			var err error
			if proto == "grpc" {
				exp, err = otlpmetricgrpc.New(ctx, otlpmetricgrpc.WithEndpoint(grpcAddr), otlpmetricgrpc.WithInsecure())
			} else {
				exp, err = otlpmetrichttp.New(ctx, otlpmetrichttp.WithEndpoint(httpAddr), otlpmetrichttp.WithInsecure())
			}
			require.NoError(t, err)
			mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp)),
				sdkmetric.WithResource(testResource(t, "billing-"+proto)))
			meter := mp.Meter("e2e")
			name := "e2e.requests." + proto
			counter, err := meter.Int64Counter(name)
			require.NoError(t, err)
			for range 7 {
				counter.Add(ctx, 3, metric.WithAttributes(attribute.String("route", "/pay")))
			}
			hist, err := meter.Float64Histogram("e2e.latency."+proto, metric.WithUnit("s"))
			require.NoError(t, err)
			hist.Record(ctx, 0.25)
			hist.Record(ctx, 0.75)
			require.NoError(t, mp.Shutdown(ctx))

			var sum int64
			var histCount uint64
			ok := otlpsink.WaitFor(20*time.Second, func() bool {
				sum, histCount = 0, 0
				for _, md := range sink.Metrics() {
					for _, rm := range md.ResourceMetrics().All() {
						for _, sm := range rm.ScopeMetrics().All() {
							for _, m := range sm.Metrics().All() {
								switch {
								case m.Name() == name && m.Type() == pmetric.MetricTypeSum:
									for _, dp := range m.Sum().DataPoints().All() {
										route, _ := dp.Attributes().Get("route")
										require.Equal(t, "/pay", route.Str())
										sum = max(sum, dp.IntValue())
									}
								case m.Name() == "e2e.latency."+proto && m.Type() == pmetric.MetricTypeHistogram:
									require.Equal(t, "s", m.Unit())
									for _, dp := range m.Histogram().DataPoints().All() {
										histCount = max(histCount, dp.Count())
									}
								}
							}
						}
					}
				}
				return sum == 21 && histCount == 2
			})
			require.True(t, ok, "counter sum %d (want 21), histogram count %d (want 2)", sum, histCount)
		})

		t.Run("logs/"+proto, func(t *testing.T) {
			var exp sdklog.Exporter
			var err error
			if proto == "grpc" {
				exp, err = otlploggrpc.New(ctx, otlploggrpc.WithEndpoint(grpcAddr), otlploggrpc.WithInsecure())
			} else {
				exp, err = otlploghttp.New(ctx, otlploghttp.WithEndpoint(httpAddr), otlploghttp.WithInsecure())
			}
			require.NoError(t, err)
			svc := "inventory-" + proto
			lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(sdklog.NewBatchProcessor(exp)),
				sdklog.WithResource(testResource(t, svc)))
			logger := lp.Logger("e2e")
			const n = 25
			for i := range n {
				var r otellog.Record
				r.SetTimestamp(time.Now())
				r.SetSeverity(otellog.SeverityError)
				r.SetSeverityText("ERROR")
				r.SetBody(attribute.StringValue(fmt.Sprintf("payment %d failed", i)))
				r.AddAttributes(attribute.Int("attempt", i))
				logger.Emit(ctx, r)
			}
			require.NoError(t, lp.Shutdown(ctx))

			bodies := map[string]bool{}
			ok := otlpsink.WaitFor(20*time.Second, func() bool {
				clear(bodies)
				for _, ld := range sink.Logs() {
					for _, rl := range ld.ResourceLogs().All() {
						if v, _ := rl.Resource().Attributes().Get("service.name"); v.Str() != svc {
							continue
						}
						for _, sl := range rl.ScopeLogs().All() {
							for _, lr := range sl.LogRecords().All() {
								require.Equal(t, "ERROR", lr.SeverityText())
								require.Equal(t, int32(17), int32(lr.SeverityNumber()))
								_, ok := lr.Attributes().Get("attempt")
								require.True(t, ok)
								bodies[lr.Body().Str()] = true
							}
						}
					}
				}
				return len(bodies) >= n
			})
			require.True(t, ok, "sink received %d of %d log records", len(bodies), n)
			for i := range n {
				require.True(t, bodies[fmt.Sprintf("payment %d failed", i)])
			}
		})
	}
}

const ptraceKindServer = 2
