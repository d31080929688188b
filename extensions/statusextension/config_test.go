package statusextension

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/vigilhq/vigil/extensions/statusextension/internal/metadata"
)

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

func TestConfig(t *testing.T) {
	cfg, err := loadConfig(t, "")
	require.NoError(t, err)
	assert.Equal(t, createDefaultConfig(), cfg)
	assert.Equal(t, "127.0.0.1:8890", cfg.NetAddr.Endpoint, "loopback by default")

	cfg, err = loadConfig(t, "custom")
	require.NoError(t, err)
	assert.Equal(t, "0.0.0.0:9890", cfg.NetAddr.Endpoint)
	assert.Equal(t, 15*time.Second, cfg.Refresh)
	assert.Equal(t, 50, cfg.MaxEdges)

	_, err = loadConfig(t, "bad")
	for _, want := range []string{"endpoint: must not be empty", "refresh: 10ms must be at least 1s", "max_edges: 0 must be in [1, 5000]"} {
		assert.ErrorContains(t, err, want)
	}
	_, err = loadConfig(t, "typo")
	assert.ErrorContains(t, err, "max_edge")
}
