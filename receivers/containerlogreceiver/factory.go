// Package containerlogreceiver reads the container log files of a
// Kubernetes node (/var/log/pods, as the kubelet lays them out and the
// container runtime writes them): CRI and Docker json-file lines, partial
// lines merged, rotation followed, the pod's identity from the path, offsets
// checkpointed once the pipeline took the lines. It is the agent's hot path
// for logs, written to cost a fraction of upstream's file_log.
package containerlogreceiver

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configretry"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"

	"github.com/vigilhq/vigil/receivers/containerlogreceiver/internal/metadata"
)

// NewFactory returns the factory of the container_log receiver.
func NewFactory() receiver.Factory {
	return receiver.NewFactory(metadata.Type, createDefaultConfig,
		receiver.WithLogs(createLogs, metadata.LogsStability))
}

func createDefaultConfig() component.Config {
	retry := configretry.NewDefaultBackOffConfig()
	retry.InitialInterval = time.Second
	retry.MaxInterval = 30 * time.Second
	retry.MaxElapsedTime = 0
	return &Config{
		Include:        []string{"/var/log/pods/*/*/*.log", "/var/log/pods/*/*/*.log.*"},
		StartAt:        "beginning",
		PollInterval:   200 * time.Millisecond,
		MaxLogSize:     1 << 20,
		MaxOpenFiles:   1024,
		ReadBufferSize: 64 << 10,
		BatchSize:      4 << 20,
		JSON: JSONConfig{
			SeverityKeys: []string{"level", "severity", "lvl"},
			MessageKeys:  []string{"msg", "message"},
			TimeKeys:     []string{"time", "ts", "timestamp"},
		},
		Multiline:      MultilineConfig{MaxLines: 500, FlushAfter: 500 * time.Millisecond},
		RetryOnFailure: retry,
	}
}

func createLogs(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Logs) (receiver.Logs, error) {
	return newReceiver(set, cfg.(*Config), next)
}
