package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/vigilhq/vigil/testkit/otlpsink"
)

func TestVersion(t *testing.T) {
	out, code := runVigil(t, 10*time.Second, "--version")
	require.Equal(t, 0, code, out)
	require.Regexp(t, `^vigil version \S+ \(commit \S+\)\n$`, out)
}

func TestComponentsListsTheDistribution(t *testing.T) {
	out, code := runVigil(t, 10*time.Second, "components")
	require.Equal(t, 0, code, out)
	want := map[string][]string{
		"receivers":  {"otlp", "prometheus", "prometheus_remote_write", "file_log", "container_log", "syslog", "tcp_log", "udp_log", "fluent_forward", "journald", "host_metrics", "kubelet_stats"},
		"processors": {"batch", "memory_limiter", "k8s_attributes", "resource", "resource_detection", "attributes", "filter", "transform"},
		"exporters":  {"otlp_grpc", "otlp_http", "debug", "file", "prometheus", "prometheus_remote_write", "load_balancing", "kafka", "alertmanager"},
		"connectors": {"forward", "span_metrics", "redflag"},
		"extensions": {"health_check", "pprof", "zpages", "file_storage", "bearertokenauth", "vigil_status"},
	}
	// Each names its module, upstream ones with the version linked.
	require.Regexp(t, `module: go\.opentelemetry\.io/collector/receiver/otlpreceiver v\d+\.\d+\.\d+\n`, out)
	require.Regexp(t, `module: github\.com/vigilhq/vigil/processors/tailsamplingprocessor\n`, out)
	got := componentsByKind(t, out)
	for kind, names := range want {
		for _, n := range names {
			require.Containsf(t, got[kind], n, "%s %q missing from `vigil components`", kind, n)
		}
	}
}

// componentsByKind reads the YAML of `vigil components` into kind -> names.
func componentsByKind(t *testing.T, out string) map[string][]string {
	got := map[string][]string{}
	kind := ""
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, " ") && strings.HasSuffix(line, ":") {
			kind = strings.TrimSuffix(line, ":")
			continue
		}
		if name, ok := strings.CutPrefix(strings.TrimSpace(line), "- name: "); ok {
			got[kind] = append(got[kind], name)
		}
	}
	require.NotEmpty(t, got["receivers"], out)
	return got
}

// Deprecated component names from before v0.161 still load, so existing
// configs keep working.
func TestOldComponentNamesValidate(t *testing.T) {
	cfg := writeConfig(t, `
receivers:
  filelog:
    include: [/tmp/none.log]
exporters:
  otlp:
    endpoint: 127.0.0.1:4317
  otlphttp:
    endpoint: http://127.0.0.1:4318
service:
  pipelines:
    logs:
      receivers: [filelog]
      exporters: [otlp, otlphttp]
`)
	out, code := runVigil(t, 20*time.Second, "validate", "--config", cfg)
	require.Equal(t, 0, code, out)
}

func TestExamplesValidate(t *testing.T) {
	files, err := filepath.Glob("../deploy/examples/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			out, code := runVigil(t, 20*time.Second, "validate", "--config", f)
			require.Equalf(t, 0, code, "vigil validate %s:\n%s", f, out)
		})
	}
	t.Run("embedded default", func(t *testing.T) {
		out, code := runVigil(t, 20*time.Second, "validate")
		require.Equal(t, 0, code, out)
	})
}

// Bad configs make vigil exit non-zero quickly, with a message naming what is
// wrong, both when running and under `validate`.
func TestBadConfigNamesTheProblem(t *testing.T) {
	good := `
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:%d
%s
exporters:
  debug: {}
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      processors: [%s]
      exporters: [debug]
`
	cases := []struct {
		name, processors, use string
		wantMsg               []string
	}{
		{"unknown key", "processors:\n  batch:\n    send_batch_sise: 100", "batch", []string{"send_batch_sise", "batch", `config.yaml:9:5: send_batch_sise: "100"`}},
		{"unknown component", "processors:\n  batchh: {}", "batchh", []string{"batchh", "config.yaml:8:3: batchh"}},
		{"wrong type", "processors:\n  batch:\n    timeout: soon", "batch", []string{"timeout", "invalid duration", `config.yaml:9:5: timeout: "soon"`}},
		{"invalid value", "processors:\n  memory_limiter:\n    check_interval: 1s\n    limit_mib: 100\n    spike_limit_mib: 500", "memory_limiter", []string{"memory_limiter", "spike_limit_mib", `config.yaml:11:5: spike_limit_mib: "500"`}},
		{"yaml syntax", "processors:\n  batch: {timeout: [}", "batch", []string{"yaml", "line"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := writeConfig(t, fmt.Sprintf(good, freePort(t), c.processors, c.use))
			for _, args := range [][]string{{"--config", cfg}, {"validate", "--config", cfg}} {
				start := time.Now()
				out, code := runVigil(t, 15*time.Second, args...)
				require.NotEqualf(t, 0, code, "vigil %v accepted a bad config:\n%s", args, out)
				require.Less(t, time.Since(start), 15*time.Second)
				for _, m := range c.wantMsg {
					require.Containsf(t, strings.ToLower(out), strings.ToLower(m), "vigil %v: message does not name %q:\n%s", args, m, out)
				}
			}
		})
	}
}

// A malformed OTLP/HTTP body gets a 400 that says why, and the agent keeps
// accepting good data afterwards.
func TestMalformedOTLPHTTP(t *testing.T) {
	_, httpAddr, sink := forwardingAgent(t)
	client := &http.Client{Timeout: 5 * time.Second}
	post := func(ctype string, body []byte) (int, string) {
		resp, err := client.Post("http://"+httpAddr+"/v1/traces", ctype, bytes.NewReader(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, c := range []struct {
		ctype string
		body  []byte
	}{
		{"application/x-protobuf", []byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01}},
		{"application/x-protobuf", bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 1000)},
		{"application/json", []byte(`{"resourceSpans": [ {"scopeSpans": 7 `)},
		{"application/json", []byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"not-hex","name":"x"}]}]}]}`)},
	} {
		code, msg := post(c.ctype, c.body)
		require.Equalf(t, http.StatusBadRequest, code, "%s %q: %s", c.ctype, c.body[:min(len(c.body), 40)], msg)
		require.NotEmpty(t, strings.TrimSpace(msg))
	}
	good := `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"after-garbage"}}]},"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"still-works","startTimeUnixNano":"1","endTimeUnixNano":"2"}]}]}]}`
	code, msg := post("application/json", []byte(good))
	require.Equal(t, http.StatusOK, code, msg)
	require.True(t, otlpsink.WaitFor(10*time.Second, func() bool { return sink.Spans.Load() >= 1 }))
}

var acceptedSpansRe = regexp.MustCompile(`(?m)^otelcol_receiver_accepted_spans(?:_total)?\{[^}]*receiver="otlp"[^}]*\} (\d+)`)

// `vigil` with no flags runs the embedded default: OTLP on 127.0.0.1:4317,
// its own metrics on 127.0.0.1:8888 counting what it accepted, the pipeline's
// Prometheus endpoint on 8889, health on 13133, remote write in on 19291, the
// status page on 8890. It needs those fixed ports.
func TestEmbeddedDefault(t *testing.T) {
	for _, p := range []int{4317, 4318, 8888, 8889, 8890, 13133, 19291} {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			t.Fatalf("port %d of the embedded default is busy (is another vigil running?): %v", p, err)
		}
		ln.Close()
	}
	a := startAgent(t, 13133)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint("127.0.0.1:4317"), otlptracegrpc.WithInsecure())
	require.NoError(t, err)
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(testResource(t, "default-config")))
	const n = 37
	for i := range n {
		_, span := tp.Tracer("e2e").Start(ctx, fmt.Sprintf("op-%d", i))
		if i == 0 {
			span.SetStatus(codes.Error, "boom") // the default keeps every failed trace
		}
		span.End()
	}
	require.NoError(t, tp.Shutdown(ctx))

	var accepted int
	ok := otlpsink.WaitFor(20*time.Second, func() bool {
		resp, err := http.Get("http://127.0.0.1:8888/metrics")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m := acceptedSpansRe.FindSubmatch(b)
		if m == nil {
			return false
		}
		accepted, _ = strconv.Atoi(string(m[1]))
		return accepted == n
	})
	require.True(t, ok, "otelcol_receiver_accepted_spans = %d, want %d", accepted, n)
	// The debug exporter shows the sampled data arriving.
	require.True(t, otlpsink.WaitFor(10*time.Second, func() bool { return strings.Contains(a.log.String(), "Traces") }))

	resp, err := http.Get("http://127.0.0.1:8889/metrics")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	// The status page: the connector publishes after its first evaluation
	// (10 s), and the page then shows the service that sent spans.
	require.True(t, otlpsink.WaitFor(30*time.Second, func() bool {
		resp, err := http.Get("http://127.0.0.1:8890/api/status")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK && strings.Contains(string(b), `"spans_observed": 37`)
	}), "status page on 8890")
	resp, err = http.Get("http://127.0.0.1:8890/")
	require.NoError(t, err)
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, string(page), "Vigil status")

	// Remote write in: an empty 1.0 request (snappy of nothing) is accepted.
	resp, err = http.Post("http://127.0.0.1:19291/api/v1/write", "application/x-protobuf", strings.NewReader("\x00"))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
}
