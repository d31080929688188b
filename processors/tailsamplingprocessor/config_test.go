package tailsamplingprocessor

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"
)

func load(t *testing.T, file, key string) (*Config, error) {
	t.Helper()
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", file))
	require.NoError(t, err)
	sub, err := cm.Sub(key)
	require.NoError(t, err)
	cfg := createDefaultConfig().(*Config)
	if err := sub.Unmarshal(cfg); err != nil {
		return nil, err
	}
	return cfg, confmap.Validate(cfg)
}

// Upstream's own sample configurations load unchanged.
func TestUpstreamConfigsLoad(t *testing.T) {
	cfg, err := load(t, "upstream_config.yaml", "tail_sampling")
	require.NoError(t, err)
	require.Equal(t, 10*time.Second, cfg.DecisionWait)
	require.Len(t, cfg.Policies, 15)
	require.Equal(t, 1000, *cfg.DecisionCache.SampledCacheSize)
	require.Equal(t, "custom-salt", cfg.Policies[3].Probabilistic.HashSalt)
	require.Len(t, cfg.Policies[12].And.SubPolicies, 3)
	require.Equal(t, "latency", cfg.Policies[12].And.SubPolicies[2].Not.SubPolicy.Type)
	require.Equal(t, int64(1000), cfg.Policies[14].Composite.MaxTotalSpansPerSecond)

	cfg, err = load(t, "upstream_readme_example.yaml", "processors::tail_sampling")
	require.NoError(t, err)
	require.NotEmpty(t, cfg.Policies)

	_, err = load(t, "upstream_practical_example.yaml", "tail_sampling")
	require.ErrorContains(t, err, "value", "upstream rejects it too")
}

func TestConfigErrorsNameTheProblem(t *testing.T) {
	cfg, err := load(t, "config.yaml", "tail_sampling/vigil")
	require.NoError(t, err)
	require.Equal(t, uint64(256), cfg.MemoryLimitMiB)
	require.Equal(t, "/var/lib/vigil/tail_sampling", cfg.Storage)
	require.Equal(t, "vigil_status", cfg.Policies[1].RedFlag.Status)

	for key, want := range map[string][]string{
		"tail_sampling/unknown_key":     {"treshold_ms"},
		"tail_sampling/unknown_top_key": {"decision_wiat"},
		"tail_sampling/typo_block":      {`unknown key "latencyy" in policy "slow"`},
		"tail_sampling/bad_values": {
			`invalid sampling_strategy "everything"`,
			"tail_storage is not supported",
		},
		"tail_sampling/span_ingest_stateful": {`requires all policies to be stateless, but policy "budget" is stateful`},
	} {
		_, err := load(t, "config.yaml", key)
		require.Error(t, err, key)
		for _, w := range want {
			require.ErrorContains(t, err, w, key)
		}
	}
	// Policies are built by Validate, so their errors surface in `vigil validate`.
	cfg = createDefaultConfig().(*Config)
	cm := confmap.NewFromStringMap(map[string]any{"policies": []any{
		map[string]any{"name": "both-zero", "type": "numeric_attribute", "numeric_attribute": map[string]any{"key": "n"}},
	}})
	require.NoError(t, cm.Unmarshal(cfg))
	require.ErrorContains(t, cfg.Validate(), `policies[0] "both-zero": numeric_attribute: set min_value or max_value`)
}

func FuzzConfig(f *testing.F) {
	f.Add("errors", "status_code", "ERROR", 10.0, int64(5), "trace-complete")
	f.Add("", "latency", "", -1.0, int64(-5), "span-ingest")
	f.Add("x", "string_attribute", "(", 50.0, int64(0), "")
	f.Fuzz(func(t *testing.T, name, typ, val string, pct float64, n int64, strategy string) {
		cm := confmap.NewFromStringMap(map[string]any{
			"sampling_strategy": strategy,
			"policies": []any{map[string]any{
				"name": name, "type": typ,
				typ: map[string]any{},
			}, map[string]any{
				"name": name + "2", "type": "probabilistic",
				"probabilistic": map[string]any{"sampling_percentage": pct, "hash_salt": val},
			}, map[string]any{
				"name": name + "3", "type": "span_count",
				"span_count": map[string]any{"min_spans": n % 1000},
			}},
		})
		cfg := createDefaultConfig().(*Config)
		if err := cm.Unmarshal(cfg); err != nil {
			return
		}
		_ = cfg.Validate() // must not panic, whatever the input
	})
}

// The byte budget follows the limit of the process's own cgroup (v1 or v2)
// before the root's.
func TestCgroupLimitFiles(t *testing.T) {
	require.Equal(t, []string{"/sys/fs/cgroup/system.slice/vigil.service/memory.max", "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"},
		cgroupLimitFiles("0::/system.slice/vigil.service\n"))
	require.Equal(t, []string{"/sys/fs/cgroup/memory/vigil-e2e/memory.limit_in_bytes", "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"},
		cgroupLimitFiles("9:name=systemd:/\n4:memory:/vigil-e2e\n3:cpuset:/\n0::/\n"))
	require.Equal(t, []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}, cgroupLimitFiles("0::/\n"))
	require.Len(t, cgroupLimitFiles("0::/../../etc\n"), 2)
}
