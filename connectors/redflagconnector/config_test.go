package redflagconnector

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/vigilhq/vigil/connectors/redflagconnector/internal/metadata"
)

func loadConfig(t *testing.T, name string) (*Config, error) {
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

func TestConfigDefaultsAndTuned(t *testing.T) {
	cfg, err := loadConfig(t, "")
	require.NoError(t, err)
	require.Equal(t, createDefaultConfig(), cfg)

	cfg, err = loadConfig(t, "tuned")
	require.NoError(t, err)
	require.Equal(t, 5*time.Second, cfg.EvaluationInterval)
	require.Equal(t, 200, cfg.MaxEdges)
	require.Equal(t, 0.1, cfg.ErrorSpike.MinRatio)
	require.Equal(t, 3.0, cfg.ErrorSpike.BaselineFactor, "unset keys keep their defaults")
	require.Equal(t, time.Minute, cfg.ErrorSpike.For)
	require.Equal(t, 2*time.Second, cfg.TimeoutPressure.Timeouts["inventory-db"])
	require.Equal(t, 4.0, cfg.RetryStorm.CriticalAmplification)
	require.Len(t, cfg.SLOs, 1)
	require.Equal(t, 0.999, cfg.SLOs[0].Objective)
	require.NotEmpty(t, cfg.Saturation.Rules, "default rules stay")
	require.Zero(t, cfg.Saturation.TrendRise, "trend_rise: 0 turns the trend off")
	require.Equal(t, 50*time.Millisecond, cfg.LatencySpike.MinDelta)
	require.Equal(t, time.Minute, cfg.LatencySpike.For)
	require.Equal(t, 2.0, cfg.LatencySpike.Factor, "unset keys keep their defaults")

	// The former cascade.latency_factor and min_latency still work.
	cfg, err = loadConfig(t, "former_names")
	require.NoError(t, err)
	n := cfg.Normalized()
	require.Equal(t, 3.0, n.LatencySpike.Factor)
	require.Equal(t, 100*time.Millisecond, n.LatencySpike.MinDelta)
}

func TestConfigErrorsNameKeyAndValue(t *testing.T) {
	_, err := loadConfig(t, "bad")
	require.Error(t, err)
	for _, want := range []string{
		"evaluation_interval: 10ms must be at least 1s",
		"join_sample_ratio: 2 must be in (0, 1]",
		"error_spike.min_ratio: 0 must be in (0, 1]",
		"saturation.trend_rise: 1.5 must be in (0, 1]",
		"latency_spike.min_share: 0 must be in (0, 1]",
		`slos[0].service: "" must name a service`,
		"slos[0].objective: 99.9 must be in (0, 1), e.g. 0.999",
	} {
		require.ErrorContains(t, err, want)
	}
	_, err = loadConfig(t, "unknown_key")
	require.ErrorContains(t, err, "min_ration")
}

func FuzzConfig(f *testing.F) {
	f.Add(10.0, 0.25, 5000, 0.05, 3.0, 1.5, 0.999)
	f.Add(0.0, -1.0, -5, 2.0, 0.5, 0.1, 1.5)
	f.Fuzz(func(t *testing.T, evalS, join float64, maxEdges int, minRatio, factor, amp, objective float64) {
		cfg := createDefaultConfig().(*Config)
		cfg.EvaluationInterval = time.Duration(evalS * float64(time.Second))
		cfg.JoinSampleRatio = join
		cfg.MaxEdges = maxEdges
		cfg.ErrorSpike.MinRatio = minRatio
		cfg.ErrorSpike.BaselineFactor = factor
		cfg.RetryStorm.MinAmplification = amp
		cfg.SLOs = append(cfg.SLOs, defaultSLO(objective))
		if cfg.Validate() != nil {
			return
		}
		// A config that validates must run without panicking.
		newTestCore(t, cfg)
	})
}
