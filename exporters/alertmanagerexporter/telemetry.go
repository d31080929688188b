package alertmanagerexporter

import (
	"context"
	"errors"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/vigilhq/vigil/exporters/alertmanagerexporter/internal/metadata"
)

// newTelemetry creates the instruments metadata.yaml declares (generated into
// internal/metadata) and registers the observable ones, labelled with the
// exporter's component ID so several alertmanager exporters stay apart.
func newTelemetry(set component.TelemetrySettings, e *amExporter) (*metadata.TelemetryBuilder, error) {
	tb, err := metadata.NewTelemetryBuilder(set)
	if err != nil {
		return nil, err
	}
	firing := metric.WithAttributes(e.exporterAttr, attribute.String("state", "firing"))
	resolved := metric.WithAttributes(e.exporterAttr, attribute.String("state", "resolved"))
	queue := metric.WithAttributes(e.exporterAttr)
	err = errors.Join(
		tb.RegisterExporterAlertmanagerAlertsCallback(func(_ context.Context, o metric.Int64Observer) error {
			e.mu.Lock()
			f, r := e.alerts.counts()
			e.mu.Unlock()
			o.Observe(int64(f), firing)
			o.Observe(int64(r), resolved)
			return nil
		}),
		tb.RegisterExporterAlertmanagerQueueLengthCallback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(int64(e.q.len()), queue)
			return nil
		}),
		tb.RegisterExporterAlertmanagerDNSTargetsCallback(func(_ context.Context, o metric.Int64Observer) error {
			for _, d := range e.dests {
				if d.dns != nil {
					o.Observe(int64(len(d.dns.current())), d.attrs)
				}
			}
			return nil
		}),
	)
	if err != nil {
		tb.Shutdown()
		return nil, err
	}
	return tb, nil
}
