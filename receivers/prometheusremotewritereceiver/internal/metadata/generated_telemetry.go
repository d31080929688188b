package metadata

import (
	"errors"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/otel/metric"
)

// Meter returns the meter the receiver's own metrics are created on.
func Meter(settings component.TelemetrySettings) metric.Meter {
	return settings.MeterProvider.Meter(ScopeName)
}

// TelemetryBuilder holds the instruments of the receiver's own metrics, as
// declared in metadata.yaml. The instruments are safe for concurrent use.
type TelemetryBuilder struct {
	// ReceiverPrometheusRemoteWriteRequests counts HTTP requests on the write
	// path, by protocol version ("1.0", "2.0", "unknown") and status code.
	ReceiverPrometheusRemoteWriteRequests metric.Int64Counter
	// ReceiverPrometheusRemoteWriteSeries counts time series decoded.
	ReceiverPrometheusRemoteWriteSeries metric.Int64Counter
	// ReceiverPrometheusRemoteWriteSamples counts samples decoded, by kind
	// ("float", "histogram", "exemplar").
	ReceiverPrometheusRemoteWriteSamples metric.Int64Counter
	// ReceiverPrometheusRemoteWriteRejects counts requests or series refused,
	// by reason.
	ReceiverPrometheusRemoteWriteRejects metric.Int64Counter
	// ReceiverPrometheusRemoteWriteSplitPoints counts classic histogram and
	// summary points that arrived incomplete in one request and were
	// forwarded as their component gauges.
	ReceiverPrometheusRemoteWriteSplitPoints metric.Int64Counter
	// ReceiverPrometheusRemoteWriteDecodeDuration records the time spent
	// decompressing, decoding and translating one request, in seconds.
	ReceiverPrometheusRemoteWriteDecodeDuration metric.Float64Histogram
	// ReceiverPrometheusRemoteWriteCacheEntries reports the entries held in the
	// metadata and target_info caches, by cache.
	ReceiverPrometheusRemoteWriteCacheEntries metric.Int64Gauge
}

// NewTelemetryBuilder creates the receiver's instruments on settings'
// MeterProvider.
func NewTelemetryBuilder(settings component.TelemetrySettings) (*TelemetryBuilder, error) {
	m := Meter(settings)
	b := &TelemetryBuilder{}
	var err, errs error
	b.ReceiverPrometheusRemoteWriteRequests, err = m.Int64Counter(
		"otelcol_receiver_prometheus_remote_write_requests",
		metric.WithDescription("Remote-write HTTP requests, by protocol version (1.0, 2.0, unknown) and status code."),
		metric.WithUnit("{request}"))
	errs = errors.Join(errs, err)
	b.ReceiverPrometheusRemoteWriteSeries, err = m.Int64Counter(
		"otelcol_receiver_prometheus_remote_write_series",
		metric.WithDescription("Time series decoded from remote-write requests."),
		metric.WithUnit("{series}"))
	errs = errors.Join(errs, err)
	b.ReceiverPrometheusRemoteWriteSamples, err = m.Int64Counter(
		"otelcol_receiver_prometheus_remote_write_samples",
		metric.WithDescription("Samples decoded from remote-write requests, by kind (float, histogram, exemplar)."),
		metric.WithUnit("{sample}"))
	errs = errors.Join(errs, err)
	b.ReceiverPrometheusRemoteWriteRejects, err = m.Int64Counter(
		"otelcol_receiver_prometheus_remote_write_rejects",
		metric.WithDescription("Requests or series refused, by reason: method_not_allowed, unsupported_media_type (415), too_large (413: body over max_request_body_size, or decoded size announced over max_decompressed_size), malformed and read_error (400), invalid_series (400, the rest of the request is forwarded), dropped_by_spec (gauge histograms, bad exemplars; not an error), refused_downstream (503 + Retry-After), refused_permanent (400)."),
		metric.WithUnit("{reject}"))
	errs = errors.Join(errs, err)
	b.ReceiverPrometheusRemoteWriteSplitPoints, err = m.Int64Counter(
		"otelcol_receiver_prometheus_remote_write_split_points",
		metric.WithDescription("Classic histogram and summary points that arrived incomplete in one request (Prometheus shards a family's series over requests) and were forwarded as their component gauges."),
		metric.WithUnit("{point}"))
	errs = errors.Join(errs, err)
	b.ReceiverPrometheusRemoteWriteDecodeDuration, err = m.Float64Histogram(
		"otelcol_receiver_prometheus_remote_write_decode_duration",
		metric.WithDescription("Time to decompress, decode and translate one request."),
		metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1))
	errs = errors.Join(errs, err)
	b.ReceiverPrometheusRemoteWriteCacheEntries, err = m.Int64Gauge(
		"otelcol_receiver_prometheus_remote_write_cache_entries",
		metric.WithDescription("Entries held in the bounded caches, by kind (metadata, target_info)."),
		metric.WithUnit("{entry}"))
	errs = errors.Join(errs, err)
	return b, errs
}

// Shutdown releases nothing today; it exists so callers keep the mdatagen
// shape and can defer it.
func (b *TelemetryBuilder) Shutdown() {}
