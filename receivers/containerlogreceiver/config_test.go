package containerlogreceiver

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/vigilhq/vigil/receivers/containerlogreceiver/internal/metadata"
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
	require.Equal(t, createDefaultConfig(), cfg)

	cfg, err = loadConfig(t, "custom")
	require.NoError(t, err)
	require.Equal(t, "end", cfg.StartAt)
	require.Equal(t, ByteSize(256<<10), cfg.MaxLogSize)
	require.Equal(t, ByteSize(32<<10), cfg.ReadBufferSize)
	require.Equal(t, ByteSize(2<<20), cfg.BatchSize)
	require.Equal(t, 500*time.Millisecond, cfg.PollInterval)
	require.Equal(t, "file_storage", cfg.Storage.String())
	require.True(t, cfg.JSON.Enabled)
	require.Equal(t, []string{"ts"}, cfg.JSON.TimeKeys)
	require.Equal(t, 100, cfg.Multiline.MaxLines)

	_, err = loadConfig(t, "bad")
	require.Error(t, err)
	for _, want := range []string{
		`include[0]: "/var/log/[pods" is not a valid glob`,
		`start_at: "middle" is neither beginning nor end`,
		"max_log_size: 10 bytes is below the minimum of 1KiB",
		"read_buffer_size: 1024 bytes is below the minimum of 4KiB",
		"batch_size: 1 bytes must be at least max_log_size",
		"multiline.line_start_pattern",
		"multiline.max_lines: 0 must be at least 1",
	} {
		require.ErrorContains(t, err, want)
	}
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{"1MiB": 1 << 20, "64KiB": 64 << 10, "1000": 1000, "1.5KiB": 1536, "2 MB": 2e6} {
		var b ByteSize
		require.NoError(t, b.UnmarshalText([]byte(in)), in)
		require.Equal(t, want, b, in)
	}
	var b ByteSize
	require.ErrorContains(t, b.UnmarshalText([]byte("1 parsec")), `unknown unit "parsec"`)
	require.ErrorContains(t, b.UnmarshalText([]byte("-1MiB")), "not a non-negative number")
}
