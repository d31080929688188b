package alertmanagerexporter

import (
	"context"
	"errors"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/vigilhq/vigil/exporters/alertmanagerexporter/internal/metadata"
)

// holdings are the alerts the exporter holds at one moment: firing ones, and
// resolved ones still re-sent during resolved_retention.
type holdings struct {
	Firing, Resolved int64
}

func (e *amExporter) holdings() holdings {
	e.mu.Lock()
	defer e.mu.Unlock()
	f, r := e.alerts.counts()
	return holdings{Firing: int64(f), Resolved: int64(r)}
}

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
			h := e.holdings()
			o.Observe(h.Firing, firing)
			o.Observe(h.Resolved, resolved)
			return nil
		}),
		tb.RegisterExporterAlertmanagerQueueLengthCallback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(int64(e.q.len()), queue)
			return nil
		}),
	)
	if err != nil {
		tb.Shutdown()
		return nil, err
	}
	return tb, nil
}
