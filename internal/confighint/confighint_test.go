package confighint

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

const cfg = `receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:4317
        bogus: 2
processors:
  batch:
    timeout: soon
    send_batch_sise: 100
  memory_limiter:
    limit_mib: 100
    spike_limit_mib: 500
  tail_sampling:
    policies:
      - name: a
        type: latency
        latency: {treshold_ms: 5}
`

func TestHints(t *testing.T) {
	f := filepath.Join(t.TempDir(), "c.yaml")
	require.NoError(t, os.WriteFile(f, []byte(cfg), 0o600))
	files := []string{f}
	for msg, want := range map[string]string{
		"'processors' error reading configuration for \"batch\": decoding failed due to the following error(s):\n\n'timeout' time: invalid duration":                                                                                                                  f + `:9:5: timeout: "soon"`,
		"'processors' error reading configuration for \"batch\": decoding failed due to the following error(s):\n\n'batchprocessor.Config' has invalid keys: send_batch_sise":                                                                                         f + `:10:5: send_batch_sise: "100"`,
		"'receivers' error reading configuration for \"otlp\": decoding failed due to the following error(s):\n\n'protocols.grpc' decoding failed due to the following error(s):\n\n'configgrpc.ServerConfig' has invalid keys: bogus":                                f + `:6:9: bogus: "2"`,
		"processors::memory_limiter: 'spike_limit_mib' must be smaller than 'limit_mib'":                                                                                                                                                                              f + `:13:5: spike_limit_mib: "500"`,
		"'processors' error reading configuration for \"tail_sampling\": decoding failed due to the following error(s):\n\n'policies[0]' policy \"a\": 'latency' decoding failed due to the following error(s):\n\n'policy.LatencyCfg' has invalid keys: treshold_ms": f + `:18:19: treshold_ms: "5"`,
	} {
		require.Equal(t, []string{want}, Hints(msg, files), msg)
	}
	require.Empty(t, Hints("something else entirely", files))
	require.Empty(t, Hints("'processors' x", []string{filepath.Join(t.TempDir(), "missing.yaml")}))
}

func TestFiles(t *testing.T) {
	require.Equal(t, []string{"a.yaml", "b.yaml", "c.yaml"}, Files([]string{"validate", "--config", "a.yaml", "--config=file:b.yaml",
		"--config", "env:X", "--config", "vigil:default", "--config", "c.yaml", "--set", "x=1"}))
}

func FuzzHints(f *testing.F) {
	f.Add("'processors' error reading configuration for \"batch\": 'timeout' bad", "processors: {batch: {timeout: x}}")
	f.Add("a::b::c 'x[9]' has invalid keys: ,,,", "a: [1, {b: *x}]")
	f.Fuzz(func(t *testing.T, msg, doc string) {
		p := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
			t.Skip()
		}
		_ = Hints(msg, []string{p}) // never panics
	})
}
