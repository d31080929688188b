// Package prometheusremotewriteexporter is Vigil's prometheus_remote_write
// exporter. It takes upstream's configuration unchanged and converts metrics
// with upstream's translator, so the series Prometheus stores are the ones
// upstream's exporter would write; what it replaces is how they are sent:
//
//   - requests come off the collector's sending queue (with storage, a file
//     queue that survives restarts and SIGKILL) one at a time, in order;
//   - a request is cut into batches deterministically (series in label
//     order), so a request sent again after a crash is cut the same way and
//     each batch is either wholly at Prometheus or not at all;
//   - a series is in one batch only, and the batches of one request are
//     sent in parallel, so no sample overtakes an older one of its series
//     (Prometheus refuses a whole request for one out-of-order sample);
//   - 5xx, 429 and connection errors are retried by the collector's retry
//     sender with Retry-After honoured, sending only the batches not yet
//     accepted; other 4xx answers are permanent and counted with the
//     server's message.
//
// Remote write 2.0 (protobuf_message: io.prometheus.write.v2.Request,
// behind upstream's feature gate) still runs upstream's exporter.
package prometheusremotewriteexporter

import (
	"context"

	prw "github.com/open-telemetry/opentelemetry-collector-contrib/exporter/prometheusremotewriteexporter"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/resourcetotelemetry"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/exporter/xexporter"
	"go.opentelemetry.io/collector/featuregate"

	"github.com/vigilhq/vigil/exporters/prometheusremotewriteexporter/internal/metadata"
)

// multipleWorkers reports whether upstream's gate
// exporter.prometheusremotewritexporter.EnableMultipleWorkers (registered by
// upstream's package) is on.
func multipleWorkers() bool {
	var on bool
	featuregate.GlobalRegistry().VisitAll(func(g *featuregate.Gate) {
		if g.ID() == "exporter.prometheusremotewritexporter.EnableMultipleWorkers" {
			on = g.IsEnabled()
		}
	})
	return on
}

// upstream is contrib's factory: its defaults, and the exporter remote
// write 2.0 still runs on.
var upstream = prw.NewFactory()

// NewFactory returns the exporter's factory, under upstream's type and its
// deprecated alias prometheusremotewrite.
func NewFactory() exporter.Factory {
	return xexporter.NewFactory(metadata.Type, createDefaultConfig,
		xexporter.WithMetrics(createMetrics, metadata.MetricsStability),
		xexporter.WithDeprecatedTypeAlias(component.MustNewType("prometheusremotewrite")))
}

// createDefaultConfig is upstream's defaults; sending_queue, when the
// section is given, starts from the collector's queue defaults.
func createDefaultConfig() component.Config {
	return &Config{
		Config:       *upstream.CreateDefaultConfig().(*prw.Config),
		SendingQueue: configoptional.Default(exporterhelper.NewDefaultQueueConfig()),
	}
}

func createMetrics(ctx context.Context, set exporter.Settings, cfg component.Config) (exporter.Metrics, error) {
	c := cfg.(*Config)
	if c.v2() {
		return upstream.CreateMetrics(ctx, set, &c.Config)
	}
	e, err := newExporter(c, set)
	if err != nil {
		return nil, err
	}
	exp, err := exporterhelper.NewMetrics(ctx, set, c, e.push,
		exporterhelper.WithTimeout(c.TimeoutSettings),
		exporterhelper.WithRetry(c.BackOffConfig),
		exporterhelper.WithQueue(queueConfig(c)),
		exporterhelper.WithStart(e.start),
		exporterhelper.WithShutdown(e.shutdown),
		exporterhelper.WithCapabilities(consumer.Capabilities{MutatesData: false}))
	if err != nil {
		return nil, err
	}
	// Resource attributes as labels, as upstream does it.
	//nolint:staticcheck // resource_to_telemetry_conversion is upstream's deprecated key, still honoured
	r2t := c.ResourceConstantLabels
	if r2t.IsEmpty() {
		r2t = c.ResourceToTelemetrySettings //nolint:staticcheck // as above
	}
	return resourcetotelemetry.WrapMetricsExporter(r2t, exp), nil
}

// queueConfig is sending_queue when given, else upstream's
// remote_write_queue (in memory), else no queue. One consumer always: the
// parallelism is within a request (parallelism).
func queueConfig(c *Config) configoptional.Optional[exporterhelper.QueueBatchConfig] {
	if q := c.SendingQueue.Get(); q != nil {
		qc := *q
		qc.NumConsumers = 1
		// No batching consumer: it takes requests off the queue while one
		// is being sent (sending_queue::batch is refused).
		qc.Batch = configoptional.None[exporterhelper.BatchConfig]()
		return configoptional.Some(qc)
	}
	if !c.RemoteWriteQueue.Enabled {
		return configoptional.None[exporterhelper.QueueBatchConfig]()
	}
	qc := exporterhelper.NewDefaultQueueConfig()
	qc.QueueSize = int64(c.RemoteWriteQueue.QueueSize)
	qc.Sizer = exporterhelper.RequestSizerTypeRequests
	qc.NumConsumers = 1
	qc.Batch = configoptional.None[exporterhelper.BatchConfig]()
	return configoptional.Some(qc)
}

// parallelism is how many batches of one request are sent at once:
// max_batch_request_parallelism, else sending_queue's num_consumers, else
// remote_write_queue's (5 by default).
func parallelism(c *Config) int {
	n := c.RemoteWriteQueue.NumConsumers
	if multipleWorkers() {
		n = 5 // upstream's gate: num_consumers is then processing parallelism
	}
	if q := c.SendingQueue.Get(); q != nil {
		n = q.NumConsumers
	}
	if c.MaxBatchRequestParallelism != nil {
		n = *c.MaxBatchRequestParallelism
	}
	return max(n, 1)
}
