package prometheusremotewritereceiver

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/vigilhq/vigil/receivers/prometheusremotewritereceiver/internal/metadata"
)

func loadConfig(t *testing.T, name string) (*Config, error) {
	t.Helper()
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	sub, err := cm.Sub(component.NewIDWithName(metadata.Type, name).String())
	require.NoError(t, err)
	require.NoError(t, sub.Unmarshal(cfg))
	return cfg, confmap.Validate(cfg)
}

func TestDefaultConfig(t *testing.T) {
	cfg, err := loadConfig(t, "")
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:19291", cfg.NetAddr.Endpoint, "loopback by default")
	assert.Equal(t, int64(32<<20), cfg.MaxDecompressedSize)
	assert.Equal(t, 5*time.Second, cfg.RetryAfter)
	assert.NotNil(t, cfg.CompressionAlgorithms, "confighttp must not decompress for us")
	assert.Empty(t, cfg.CompressionAlgorithms)
}

func TestCustomConfig(t *testing.T) {
	cfg, err := loadConfig(t, "custom")
	require.NoError(t, err)
	assert.Equal(t, "0.0.0.0:9201", cfg.NetAddr.Endpoint)
	assert.Equal(t, int64(1<<20), cfg.MaxRequestBodySize)
	assert.Equal(t, int64(4<<20), cfg.MaxDecompressedSize)
	assert.Equal(t, 100, cfg.MetadataCacheSize)
	assert.Equal(t, 50, cfg.TargetInfoCacheSize)
	assert.Equal(t, 160, cfg.MaxNativeHistogramBuckets)
	assert.Equal(t, 30*time.Second, cfg.RetryAfter)
}

func TestInvalidConfigNamesEveryKey(t *testing.T) {
	_, err := loadConfig(t, "bad")
	require.Error(t, err)
	for _, want := range []string{
		"endpoint: must not be empty",
		"max_decompressed_size: must be positive, got 0",
		"metadata_cache_size: must be positive, got -1",
		"retry_after: must be at least 1s",
		"compression_algorithms: not supported",
	} {
		assert.ErrorContains(t, err, want)
	}
}

func TestFactoryAcceptsOldName(t *testing.T) {
	f := NewFactory()
	assert.Equal(t, "prometheus_remote_write", f.Type().String())
	type aliased interface{ DeprecatedAlias() component.Type }
	a, ok := f.(aliased)
	require.True(t, ok, "factory has no deprecated alias")
	assert.Equal(t, "prometheusremotewrite", a.DeprecatedAlias().String())
}

func TestUnknownKeyRefused(t *testing.T) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)
	sub, err := cm.Sub(component.NewIDWithName(metadata.Type, "typo").String())
	require.NoError(t, err)
	err = sub.Unmarshal(NewFactory().CreateDefaultConfig())
	require.ErrorContains(t, err, "max_decompresed_size")
}
