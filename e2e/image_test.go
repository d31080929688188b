package e2e

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

// The container image runs the embedded default with deploy/docker/container.yaml
// on top. No Docker engine here, so the image itself is not built; these tests
// hold the Dockerfile and that config to what the image promises.

// Every listener of the embedded default is rebound to 0.0.0.0 in the image:
// a listener left on 127.0.0.1 is unreachable through a published port.
func TestContainerConfigBindsEveryListener(t *testing.T) {
	var def, over map[string]any
	b, err := os.ReadFile("../pipeline/configs/default.yaml")
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, &def))
	b, err = os.ReadFile("../deploy/docker/container.yaml")
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, &over))
	merged := mergeConfig(def, over)

	var listeners int
	walkListeners(merged, "", func(path, addr string) {
		listeners++
		assert.Truef(t, strings.HasPrefix(addr, "0.0.0.0:") || addr == "0.0.0.0", "%s = %q in the image: unreachable from outside the container", path, addr)
	})
	// The default's own listeners: health, OTLP x2, remote write, pipeline
	// metrics, own telemetry.
	assert.GreaterOrEqual(t, listeners, 6)

	out, code := runVigil(t, 20*time.Second, "validate", "--config", "vigil:default", "--config", "../deploy/docker/container.yaml")
	require.Equal(t, 0, code, out)
}

// mergeConfig merges b onto a the way the collector layers --config files:
// maps merge key by key, everything else is replaced.
func mergeConfig(a, b map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		am, aok := out[k].(map[string]any)
		bm, bok := v.(map[string]any)
		if aok && bok {
			out[k] = mergeConfig(am, bm)
		} else {
			out[k] = v
		}
	}
	return out
}

// walkListeners calls fn for every listen address in a collector config: an
// "endpoint" under receivers or extensions, the prometheus exporter's
// endpoint, and the telemetry readers' host:port.
func walkListeners(v any, path string, fn func(path, addr string)) {
	switch v := v.(type) {
	case map[string]any:
		for k, child := range v {
			p := path + "::" + k
			if s, ok := child.(string); ok {
				listens := strings.HasPrefix(p, "::receivers::") || strings.HasPrefix(p, "::extensions::") ||
					strings.HasPrefix(p, "::exporters::prometheus::") || strings.HasPrefix(p, "::exporters::prometheus/")
				switch {
				case k == "endpoint" && listens:
					fn(p, s)
				case k == "host" && strings.Contains(p, "::telemetry::"):
					fn(p, s)
				}
				continue
			}
			walkListeners(child, p, fn)
		}
	case []any:
		for _, child := range v {
			walkListeners(child, path+"[]", fn)
		}
	}
}

// The Dockerfile: multi-stage, a static (CGO_ENABLED=0) binary, a distroless
// or scratch runtime stage, a numeric non-root user, and a CMD whose config is
// the file it copies in.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("../Dockerfile")
	require.NoError(t, err)
	df := string(b)
	froms := regexp.MustCompile(`(?m)^FROM\s+(\S+)(?:\s+AS\s+(\S+))?`).FindAllStringSubmatch(df, -1)
	require.GreaterOrEqual(t, len(froms), 2, "multi-stage")
	final := froms[len(froms)-1][1]
	assert.Regexp(t, `^(scratch|gcr\.io/distroless/static)`, final, "runtime stage")
	finalStage := df[strings.LastIndex(df, "\nFROM ")+1:]
	buildStage := df[:strings.LastIndex(df, "\nFROM ")]

	assert.Regexp(t, `(?m)^ENV .*CGO_ENABLED=0`, buildStage, "static binary")
	assert.Regexp(t, `go build .*-o /out/vigil \./cmd/vigil`, buildStage)

	user := regexp.MustCompile(`(?m)^USER\s+(\d+)(?::(\d+))?\s*$`).FindStringSubmatch(finalStage)
	require.NotNil(t, user, "USER as a numeric uid (runAsNonRoot can check it)")
	assert.NotEqual(t, "0", user[1])
	// The chart's default pod securityContext runs as the same user.
	vals, err := os.ReadFile("../deploy/helm/vigil/values.yaml")
	require.NoError(t, err)
	assert.Contains(t, string(vals), "runAsUser: "+user[1])

	copies := regexp.MustCompile(`(?m)^COPY\s+(?:--from=\S+\s+)?(\S+)\s+(\S+)`).FindAllStringSubmatch(finalStage, -1)
	dest := map[string]string{}
	for _, c := range copies {
		dest[c[2]] = c[1]
		if !strings.HasPrefix(c[0], "COPY --from") {
			_, err := os.Stat("../" + c[1])
			assert.NoErrorf(t, err, "COPY source %s", c[1])
		}
	}
	entry := regexp.MustCompile(`(?m)^ENTRYPOINT \["([^"]+)"\]`).FindStringSubmatch(finalStage)
	require.NotNil(t, entry)
	assert.Equal(t, "/out/vigil", dest[entry[1]], "ENTRYPOINT is the binary built in the first stage")
	cmd := regexp.MustCompile(`(?m)^CMD \[(.*)\]`).FindStringSubmatch(finalStage)
	require.NotNil(t, cmd)
	for _, arg := range regexp.MustCompile(`"([^"]+)"`).FindAllStringSubmatch(cmd[1], -1) {
		if strings.HasPrefix(arg[1], "/") {
			assert.Contains(t, dest, arg[1], "CMD's config %s is copied into the image", arg[1])
		}
	}
}
