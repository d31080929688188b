// Package metadata holds the vigil_status extension's type, stability and its
// own telemetry. mdatagen cannot run here (its dependencies are not served by
// the module proxy), so this package is written by hand from
// ../../metadata.yaml; keep the two in step.
package metadata

import (
	"errors"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/otel/metric"
)

// Type is the extension's config type.
var Type = component.MustNewType("vigil_status")

// ScopeName is the instrumentation scope of the extension's own metrics.
const ScopeName = "github.com/vigilhq/vigil/extensions/statusextension"

// Stability is the extension's stability.
const Stability = component.StabilityLevelAlpha

// TelemetryBuilder holds the extension's own metrics (see metadata.yaml).
type TelemetryBuilder struct {
	// Requests counts HTTP requests, by path (/, /api/status, other) and code.
	Requests metric.Int64Counter
	// Publishes counts red-flag snapshots received from the connector.
	Publishes metric.Int64Counter
	// RenderDuration records the time to lay out and render one response.
	RenderDuration metric.Float64Histogram
}

// NewTelemetryBuilder creates the instruments on settings' MeterProvider.
func NewTelemetryBuilder(settings component.TelemetrySettings) (*TelemetryBuilder, error) {
	m := settings.MeterProvider.Meter(ScopeName)
	b := &TelemetryBuilder{}
	var err, errs error
	b.Requests, err = m.Int64Counter("otelcol_extension_vigil_status_requests",
		metric.WithDescription("Status page HTTP requests, by path (/, /api/status, other) and status code."),
		metric.WithUnit("{request}"))
	errs = errors.Join(errs, err)
	b.Publishes, err = m.Int64Counter("otelcol_extension_vigil_status_publishes",
		metric.WithDescription("Red-flag snapshots received from the redflag connector (one per evaluation)."),
		metric.WithUnit("{snapshot}"))
	errs = errors.Join(errs, err)
	b.RenderDuration, err = m.Float64Histogram("otelcol_extension_vigil_status_render_duration",
		metric.WithDescription("Time to lay out and render one status response."),
		metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1))
	errs = errors.Join(errs, err)
	return b, errs
}
