package prometheusremotewriteexporter

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"
	"go.opentelemetry.io/collector/exporter/exporterhelper"

	"github.com/vigilhq/vigil/exporters/prometheusremotewriteexporter/internal/metadata"
)

// loadConfig unmarshals a section of testdata/config.yaml as the collector
// does (Conf.Unmarshal, then every Validate).
func loadConfig(t *testing.T, name string) (*Config, error) {
	t.Helper()
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)
	sub, err := cm.Sub(component.NewIDWithName(metadata.Type, name).String())
	require.NoError(t, err)
	cfg := createDefaultConfig().(*Config)
	if err := sub.Unmarshal(cfg); err != nil {
		return nil, err
	}
	return cfg, confmap.Validate(cfg)
}

// The minimal config is upstream's defaults with the endpoint: an in-memory
// queue of 10000 requests, sent with 5 batches in parallel, target_info on.
func TestMinimalConfig(t *testing.T) {
	cfg, err := loadConfig(t, "")
	require.NoError(t, err)
	assert.Equal(t, "http://prometheus:9090/api/v1/write", cfg.HTTP.Endpoint)
	assert.True(t, cfg.TargetInfo.Enabled)
	assert.Equal(t, 3000000, cfg.MaxBatchSizeBytes)
	assert.False(t, cfg.SendingQueue.HasValue())
	qo := queueConfig(cfg)
	q := qo.Get()
	require.NotNil(t, q)
	assert.Equal(t, int64(10000), q.QueueSize)
	assert.Equal(t, 1, q.NumConsumers, "requests come off the queue one at a time, in order")
	assert.Nil(t, q.StorageID)
	assert.Equal(t, 5, parallelism(cfg))
}

// Every key of upstream's that users set keeps its meaning, and
// sending_queue with storage gives the persistent queue.
func TestFullConfig(t *testing.T) {
	cfg, err := loadConfig(t, "full")
	require.NoError(t, err)
	assert.Equal(t, "https://mimir:443/api/v1/push", cfg.HTTP.Endpoint)
	org, ok := cfg.HTTP.Headers.Get("X-Scope-OrgID")
	require.True(t, ok)
	assert.Equal(t, "team-a", string(org))
	assert.Equal(t, "/etc/mimir/ca.pem", cfg.HTTP.TLS.CAFile)
	assert.Equal(t, 10*time.Second, cfg.TimeoutSettings.Timeout)
	assert.Equal(t, "vigil", cfg.Namespace)
	assert.True(t, cfg.ResourceToTelemetrySettings.Enabled) //nolint:staticcheck // upstream's deprecated key
	assert.False(t, cfg.AddMetricSuffixes)                  //nolint:staticcheck // upstream's deprecated key
	assert.False(t, cfg.TargetInfo.Enabled)
	assert.True(t, cfg.SendMetadata)
	assert.Equal(t, 1000000, cfg.MaxBatchSizeBytes)
	assert.Equal(t, 3, parallelism(cfg))
	assert.Equal(t, 100*time.Millisecond, cfg.BackOffConfig.InitialInterval)
	assert.Zero(t, cfg.BackOffConfig.MaxElapsedTime)

	qo := queueConfig(cfg)
	q := qo.Get()
	require.NotNil(t, q)
	require.NotNil(t, q.StorageID)
	assert.Equal(t, "file_storage", q.StorageID.String())
	assert.Equal(t, int64(500), q.QueueSize)
	assert.Equal(t, 1, q.NumConsumers)

	labels, err := externalLabels(cfg)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"cluster": "prod-eu", "key_with_dash": "x"}, labels)
}

func TestRemoteWriteQueueConfig(t *testing.T) {
	cfg, err := loadConfig(t, "memoryqueue")
	require.NoError(t, err)
	qo := queueConfig(cfg)
	q := qo.Get()
	require.NotNil(t, q)
	assert.Equal(t, int64(200), q.QueueSize)
	assert.Equal(t, exporterhelper.RequestSizerTypeRequests, q.Sizer)
	assert.Equal(t, 1, q.NumConsumers)
	assert.Equal(t, 4, parallelism(cfg), "num_consumers sends batches of one request in parallel")

	cfg, err = loadConfig(t, "nowal")
	require.NoError(t, err, "a wal switched off is no wal")
	assert.False(t, cfg.WAL.HasValue())

	cfg, err = loadConfig(t, "httpblock")
	require.NoError(t, err)
	assert.Equal(t, "http://prometheus:9090/api/v1/write", cfg.HTTP.Endpoint)
}

// What cannot work is refused with a message that says what to do.
func TestConfigErrors(t *testing.T) {
	_, err := loadConfig(t, "wal")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "sending_queue")
	assert.Contains(t, err.Error(), "storage")

	_, err = loadConfig(t, "unknown")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "max_samples_per_send")

	// Upstream ignores a typo inside a section: max_elapsed_time would stay
	// 5 minutes, and data be dropped after that.
	_, err = loadConfig(t, "typo")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "retry_on_failure::max_elapsed")

	// A batching consumer takes requests off the queue while one is sent.
	_, err = loadConfig(t, "batch")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "sending_queue::batch")

	_, err = loadConfig(t, "zeroqueue")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "num_consumers")
}
