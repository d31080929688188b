package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/contrib/bridges/otelslog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
)

// scope is the instrumentation scope of the testbed's own spans, metrics and
// logs (the queue spans, the pool metrics, the error logs).
const scope = "github.com/vigilhq/vigil/benchmarks/testbed/service"

// telemetry is a replica's OpenTelemetry SDK, set up the way an application
// would: batch span export at most a second late, metrics every interval, a
// batch log processor behind an slog bridge, W3C trace context.
type telemetry struct {
	tp     *sdktrace.TracerProvider
	mp     *sdkmetric.MeterProvider
	lp     *sdklog.LoggerProvider
	prop   propagation.TextMapPropagator
	tracer trace.Tracer
	meter  metric.Meter
	log    *slog.Logger
}

// resourceAttrs are the replica's resource attributes, as the OpenTelemetry
// Operator or a Deployment's OTEL_RESOURCE_ATTRIBUTES would set them.
func resourceAttrs(cfg Config, podIP bool) []attribute.KeyValue {
	attrs := []attribute.KeyValue{
		semconv.ServiceName(cfg.Service),
		semconv.ServiceVersion(cfg.Version),
		semconv.ServiceInstanceID(cfg.Topology + "." + cfg.Pod + "." + cfg.Service),
		semconv.K8SNamespaceName(cfg.Topology),
		semconv.K8SPodName(cfg.Pod),
	}
	if podIP {
		attrs = append(attrs, semconv.K8SPodIP(cfg.IP))
	}
	return attrs
}

func newTelemetry(ctx context.Context, cfg Config, podIP bool) (*telemetry, error) {
	res, err := resource.Merge(resource.Default(), resource.NewWithAttributes(semconv.SchemaURL, resourceAttrs(cfg, podIP)...))
	if err != nil && !errors.Is(err, resource.ErrSchemaURLConflict) {
		return nil, fmt.Errorf("cannot build resource: %w", err)
	}
	spans, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(cfg.OTLP), otlptracegrpc.WithInsecure())
	if err != nil {
		return nil, fmt.Errorf("cannot create span exporter: %w", err)
	}
	metrics, err := otlpmetricgrpc.New(ctx, otlpmetricgrpc.WithEndpoint(cfg.OTLP), otlpmetricgrpc.WithInsecure())
	if err != nil {
		return nil, fmt.Errorf("cannot create metric exporter: %w", err)
	}
	logs, err := otlploggrpc.New(ctx, otlploggrpc.WithEndpoint(cfg.OTLP), otlploggrpc.WithInsecure())
	if err != nil {
		return nil, fmt.Errorf("cannot create log exporter: %w", err)
	}
	t := &telemetry{
		tp: sdktrace.NewTracerProvider(
			sdktrace.WithResource(res),
			sdktrace.WithSampler(sdktrace.AlwaysSample()),
			sdktrace.WithBatcher(spans, sdktrace.WithBatchTimeout(time.Second), sdktrace.WithMaxQueueSize(8192)),
		),
		mp: sdkmetric.NewMeterProvider(
			sdkmetric.WithResource(res),
			sdkmetric.WithReader(sdkmetric.NewPeriodicReader(metrics, sdkmetric.WithInterval(cfg.MetricsInterval))),
		),
		lp: sdklog.NewLoggerProvider(
			sdklog.WithResource(res),
			sdklog.WithProcessor(sdklog.NewBatchProcessor(logs, sdklog.WithExportInterval(time.Second))),
		),
		prop: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
	}
	t.tracer = t.tp.Tracer(scope)
	t.meter = t.mp.Meter(scope)
	t.log = otelslog.NewLogger(scope, otelslog.WithLoggerProvider(t.lp))
	return t, nil
}

// shutdown flushes and stops the providers.
func (t *telemetry) shutdown(ctx context.Context) error {
	return errors.Join(t.tp.Shutdown(ctx), t.mp.Shutdown(ctx), t.lp.Shutdown(ctx))
}
