// Package prometheusremotewritereceiver receives Prometheus remote write 1.0
// and 2.0 on /api/v1/write and turns it into OTLP metrics.
package prometheusremotewritereceiver

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/xreceiver"

	"github.com/vigilhq/vigil/internal/promrw"
	"github.com/vigilhq/vigil/receivers/prometheusremotewritereceiver/internal/metadata"
)

// DefaultEndpoint is where the receiver listens unless configured otherwise:
// loopback only, on 19291, the port remote-write receivers conventionally use
// (Thanos Receive's remote-write port), so it does not clash with
// Prometheus itself on 9090 or the collector's ports.
const DefaultEndpoint = "127.0.0.1:19291"

// NewFactory returns the factory of the prometheus_remote_write receiver,
// which also answers to its old name prometheusremotewrite.
func NewFactory() receiver.Factory {
	return xreceiver.NewFactory(
		metadata.Type,
		createDefaultConfig,
		xreceiver.WithMetrics(createMetrics, metadata.MetricsStability),
		xreceiver.WithDeprecatedTypeAlias(metadata.DeprecatedType),
	)
}

func createDefaultConfig() component.Config {
	http := confighttp.NewDefaultServerConfig()
	http.NetAddr.Endpoint = DefaultEndpoint
	// Bodies are snappy blocks; the receiver decodes them itself, after
	// checking the announced size, so confighttp must leave them alone.
	http.CompressionAlgorithms = []string{}
	return &Config{
		ServerConfig:              http,
		MaxDecompressedSize:       32 << 20,
		MetadataCacheSize:         promrw.DefaultMetadataCacheSize,
		TargetInfoCacheSize:       promrw.DefaultTargetInfoCacheSize,
		MaxNativeHistogramBuckets: promrw.DefaultMaxNativeBuckets,
		RetryAfter:                5 * time.Second,
	}
}

func createMetrics(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Metrics) (receiver.Metrics, error) {
	return newReceiver(set, cfg.(*Config), next)
}
