// Package alertmanagerexporter is the alertmanager exporter: it consumes the
// red-flag connector's alert events (a logs pipeline, redflag ->
// alertmanager), keeps the current alert set and pushes it to one or more
// Alertmanagers over API v2 (POST /api/v2/alerts) with Prometheus's notifier
// semantics: pending alerts are not sent; firing ones are re-sent every
// resend_delay with endsAt four resends ahead; resolved ones are sent with
// their real endsAt and re-sent for resolved_retention; batches are bounded,
// the queue drops its oldest when full, every call has a timeout.
package alertmanagerexporter

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"

	"github.com/vigilhq/vigil/exporters/alertmanagerexporter/internal/metadata"
)

// NewFactory returns the alertmanager exporter's factory.
func NewFactory() exporter.Factory {
	return exporter.NewFactory(metadata.Type, createDefaultConfig,
		exporter.WithLogs(createLogs, metadata.LogsStability))
}

// The defaults are Prometheus's: a 10 s timeout per Alertmanager call, a
// 1-minute resend delay, resolved alerts re-sent for 15 minutes, a queue of
// 10000 alerts. Batches are 256 alerts (Prometheus sends 64; Alertmanager
// takes far larger bodies, and fewer requests matter during an incident).
// dns+ and dnssrv+ names are looked up again every 30 s, as Thanos does.
func createDefaultConfig() component.Config {
	cc := confighttp.NewDefaultClientConfig()
	cc.Timeout = 10 * time.Second
	return &Config{
		ClientConfig:       cc,
		DNSRefreshInterval: 30 * time.Second,
		ResendDelay:        time.Minute,
		ResolvedRetention:  15 * time.Minute,
		MaxBatchSize:       256,
		QueueSize:          10000,
		MaxAlerts:          10000,
		GeneratorURL:       "http://127.0.0.1:8890/",
	}
}

func createLogs(ctx context.Context, set exporter.Settings, cfg component.Config) (exporter.Logs, error) {
	e, err := newExporter(set, cfg.(*Config))
	if err != nil {
		return nil, err
	}
	return e.logsExporter(ctx, set)
}

// logsExporter wraps e in the collector's exporter helper.
func (e *amExporter) logsExporter(ctx context.Context, set exporter.Settings) (exporter.Logs, error) {
	return exporterhelper.NewLogs(ctx, set, e.cfg, e.consumeLogs,
		exporterhelper.WithStart(e.start),
		exporterhelper.WithShutdown(e.shutdown),
		exporterhelper.WithCapabilities(consumer.Capabilities{MutatesData: false}))
}
