// Package metadata holds the alertmanager exporter's type, stability and its
// own telemetry. mdatagen cannot run here (its dependencies are not served by
// the module proxy), so this package is written by hand from
// ../../metadata.yaml; keep the two in step.
package metadata

import (
	"context"
	"errors"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Type is the exporter's config type.
var Type = component.MustNewType("alertmanager")

// ScopeName is the instrumentation scope of the exporter's own metrics.
const ScopeName = "github.com/vigilhq/vigil/exporters/alertmanagerexporter"

// LogsStability is the stability of the exporter's logs signal.
const LogsStability = component.StabilityLevelAlpha

// Observed is read by the builder's observable instruments at collection time.
type Observed interface {
	// Held returns the alerts the exporter holds: firing, and resolved ones
	// still re-sent during resolved_retention; and the alerts queued to send.
	Held() (firing, resolved, queued int64)
}

// TelemetryBuilder holds the exporter's own metrics (see metadata.yaml). The
// instruments are safe for concurrent use.
type TelemetryBuilder struct {
	// AlertsSent counts alerts an Alertmanager accepted (2xx), by alertmanager.
	AlertsSent metric.Int64Counter
	// AlertsFailed counts alerts in requests that failed (connection error,
	// timeout, non-2xx answer), by alertmanager. They are not retried: the
	// next resend carries them, as Prometheus's notifier does.
	AlertsFailed metric.Int64Counter
	// AlertsDropped counts alerts never sent, by reason (queue_full: the
	// oldest queued alert made room; alert_limit: max_alerts held;
	// invalid_labels; shutdown: still queued when the drain ran out of time).
	AlertsDropped metric.Int64Counter
	// RecordsIgnored counts log records that were not alert events
	// (not_alert) or were malformed ones (malformed).
	RecordsIgnored metric.Int64Counter
	// RequestDuration records the latency of one POST /api/v2/alerts, by
	// alertmanager and outcome.
	RequestDuration metric.Float64Histogram

	registration metric.Registration
}

// NewTelemetryBuilder creates the instruments on settings' MeterProvider.
// exporter (the component ID, as the collector's own exporter metrics label
// it) tells the gauges of several alertmanager exporters apart; callers add
// it to their measurements too.
func NewTelemetryBuilder(settings component.TelemetrySettings, obs Observed, exporter attribute.KeyValue) (*TelemetryBuilder, error) {
	m := settings.MeterProvider.Meter(ScopeName)
	b := &TelemetryBuilder{}
	var err, errs error
	counter := func(name, desc, unit string) metric.Int64Counter {
		var c metric.Int64Counter
		c, err = m.Int64Counter(name, metric.WithDescription(desc), metric.WithUnit(unit))
		errs = errors.Join(errs, err)
		return c
	}
	b.AlertsSent = counter("otelcol_exporter_alertmanager_alerts_sent",
		"Alerts an Alertmanager accepted (2xx), by alertmanager.", "{alert}")
	b.AlertsFailed = counter("otelcol_exporter_alertmanager_alerts_failed",
		"Alerts in requests to an Alertmanager that failed (connection error, timeout, non-2xx answer), by alertmanager. They are not retried; the next resend carries them, as Prometheus's notifier does.", "{alert}")
	b.AlertsDropped = counter("otelcol_exporter_alertmanager_alerts_dropped",
		"Alerts never sent, by reason: queue_full (the oldest queued alert made room), alert_limit (max_alerts already held), invalid_labels (a label name Alertmanager would refuse), shutdown (still queued when the drain at shutdown ran out of time).", "{alert}")
	b.RecordsIgnored = counter("otelcol_exporter_alertmanager_records_ignored",
		"Log records that were not vigil.alert events (not_alert) or were malformed ones (malformed).", "{record}")
	b.RequestDuration, err = m.Float64Histogram("otelcol_exporter_alertmanager_request_duration",
		metric.WithDescription("Latency of one POST /api/v2/alerts, by alertmanager and outcome (ok, error)."),
		metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
	errs = errors.Join(errs, err)
	alerts, err := m.Int64ObservableGauge("otelcol_exporter_alertmanager_alerts",
		metric.WithDescription("Alerts held, by state (firing, resolved)."),
		metric.WithUnit("{alert}"))
	errs = errors.Join(errs, err)
	queue, err := m.Int64ObservableGauge("otelcol_exporter_alertmanager_queue_length",
		metric.WithDescription("Alerts queued to send (bounded by queue_size)."),
		metric.WithUnit("{alert}"))
	errs = errors.Join(errs, err)
	if errs != nil {
		return nil, errs
	}
	firingAttr := metric.WithAttributes(exporter, attribute.String("state", "firing"))
	resolvedAttr := metric.WithAttributes(exporter, attribute.String("state", "resolved"))
	queueAttr := metric.WithAttributes(exporter)
	b.registration, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		f, r, q := obs.Held()
		o.ObserveInt64(alerts, f, firingAttr)
		o.ObserveInt64(alerts, r, resolvedAttr)
		o.ObserveInt64(queue, q, queueAttr)
		return nil
	}, alerts, queue)
	return b, err
}

// Shutdown unregisters the observable instruments' callback.
func (b *TelemetryBuilder) Shutdown() {
	if b.registration != nil {
		_ = b.registration.Unregister()
	}
}
