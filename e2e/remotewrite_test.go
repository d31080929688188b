package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/vigilhq/vigil/testkit/otlpsink"
)

// shopExposition is what the test target serves: one metric of each kind,
// with constant values so the source and the destination must agree exactly.
const shopExposition = `# HELP shop_orders_total Orders placed.
# TYPE shop_orders_total counter
shop_orders_total{region="eu"} 42
shop_orders_total{region="us"} 17
# HELP shop_restarts Restarts, a counter named without _total.
# TYPE shop_restarts counter
shop_restarts 3
# HELP shop_queue_depth Items waiting.
# TYPE shop_queue_depth gauge
shop_queue_depth{queue="a"} 7
shop_queue_depth{queue="b"} 0
# HELP shop_latency_seconds Request latency.
# TYPE shop_latency_seconds histogram
shop_latency_seconds_bucket{route="/buy",le="0.1"} 3
shop_latency_seconds_bucket{route="/buy",le="1"} 9
shop_latency_seconds_bucket{route="/buy",le="+Inf"} 10
shop_latency_seconds_sum{route="/buy"} 4.5
shop_latency_seconds_count{route="/buy"} 10
# HELP shop_rpc_seconds RPC duration.
# TYPE shop_rpc_seconds summary
shop_rpc_seconds{quantile="0.5"} 0.2
shop_rpc_seconds{quantile="0.99"} 0.9
shop_rpc_seconds_sum 12
shop_rpc_seconds_count 40
`

func serveText(t *testing.T, body string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprint(w, body)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// vigilRelay starts vigil with the remote-write receiver (under receiverType,
// to exercise the old alias too) forwarding to a Prometheus through the
// prometheus_remote_write exporter and to an OTLP sink, where the test reads
// the OTLP types. It returns the write URL and the telemetry port.
func vigilRelay(t *testing.T, receiverType, promURL string, sink *otlpsink.Sink) (string, int) {
	t.Helper()
	health, tel, rw := freePort(t), freePort(t), freePort(t)
	cfg := fmt.Sprintf(`
extensions:
  health_check:
    endpoint: 127.0.0.1:%d
receivers:
  %s:
    endpoint: 127.0.0.1:%d
exporters:
  prometheus_remote_write:
    endpoint: %s/api/v1/write
    timeout: 5s
  otlp_grpc:
    endpoint: %s
    tls:
      insecure: true
service:
  extensions: [health_check]
%s
  pipelines:
    metrics:
      receivers: [%s]
      exporters: [prometheus_remote_write, otlp_grpc]
`, health, receiverType, rw, promURL, sink.Addr, telemetryYAML(tel), receiverType)
	startAgent(t, health, "--config", writeConfig(t, cfg))
	return fmt.Sprintf("http://127.0.0.1:%d/api/v1/write", rw), tel
}

// seriesKey renders a result's labels, without the scope labels the
// exporter adds, as name{k="v",...} sorted.
func seriesKey(m map[string]string, rename map[string]string) string {
	name := m["__name__"]
	if r, ok := rename[name]; ok {
		name = r
	}
	var kv []string
	for k, v := range m {
		if k == "__name__" || strings.HasPrefix(k, "otel_scope_") {
			continue
		}
		kv = append(kv, fmt.Sprintf("%s=%q", k, v))
	}
	sort.Strings(kv)
	return name + "{" + strings.Join(kv, ",") + "}"
}

func vectorOf(t *testing.T, p *promServer, q string, rename map[string]string) (map[string]string, error) {
	res, err := p.Query(q)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, s := range res {
		out[seriesKey(s.Metric, rename)] = fmt.Sprint(s.Value[1])
	}
	return out, nil
}

// findMetric returns the last metric named name the sink received.
func findMetric(sink *otlpsink.Sink, name string) (pmetric.Metric, bool) {
	var found pmetric.Metric
	ok := false
	for _, md := range sink.Metrics() {
		rms := md.ResourceMetrics()
		for i := 0; i < rms.Len(); i++ {
			sms := rms.At(i).ScopeMetrics()
			for j := 0; j < sms.Len(); j++ {
				ms := sms.At(j).Metrics()
				for k := 0; k < ms.Len(); k++ {
					if ms.At(k).Name() == name {
						found, ok = ms.At(k), true
					}
				}
			}
		}
	}
	return found, ok
}

// A real Prometheus scrapes a target and remote-writes (1.0, the only
// version Debian's Prometheus 2.42 sends) to vigil; vigil forwards through
// the prometheus_remote_write exporter to a second real Prometheus. Every
// series of the target must be there with the source's labels and values,
// and vigil must have typed each one as the target declared it.
func TestRemoteWritePrometheusToPrometheus(t *testing.T) {
	target := serveText(t, shopExposition)
	dest := startPrometheus(t, "")
	sink, err := otlpsink.Start("127.0.0.1:0", true)
	require.NoError(t, err)
	t.Cleanup(sink.Stop)
	writeURL, tel := vigilRelay(t, "prometheus_remote_write", dest.URL, sink)

	// startPrometheus writes "scrape_configs:" then this text; the
	// remote_write section follows at the top level. Metadata is sent every
	// second (default 1m) so types arrive quickly.
	source := startPrometheus(t, fmt.Sprintf(`  - job_name: shop
    scrape_interval: 1s
    static_configs:
      - targets: ["%s"]
remote_write:
  - url: %s
    remote_timeout: 5s
    queue_config:
      batch_send_deadline: 1s
      min_backoff: 100ms
      max_backoff: 1s
    metadata_config:
      send: true
      send_interval: 1s
`, target, writeURL))

	query := `{__name__=~"shop_.*"}`
	// A counter without _total is a monotonic sum in OTLP, so the exporter
	// names it shop_restarts_total at the destination: the visible proof
	// that the type survived. Everything else keeps its name.
	rename := map[string]string{"shop_restarts": "shop_restarts_total"}

	var want, got map[string]string
	require.Eventually(t, func() bool {
		want, err = vectorOf(t, source, query, rename)
		return err == nil && len(want) == 14
	}, 30*time.Second, 250*time.Millisecond, "source Prometheus never scraped the target: %v %v", want, err)
	t.Logf("source series: %v", want)

	ok := otlpsink.WaitFor(60*time.Second, func() bool {
		got, err = vectorOf(t, dest, query+` unless {__name__="shop_restarts"}`, nil)
		if err != nil {
			return false
		}
		for k, v := range want {
			if got[k] != v {
				return false
			}
		}
		return true
	})
	require.True(t, ok, "destination never matched the source\nwant %v\n got %v\nerr %v\nvigil forwarded: %v", want, got, err, sinkSummary(sink))

	// The OTLP view of the same data: types as the target declared them.
	var m map[string]pmetric.Metric
	ok = otlpsink.WaitFor(30*time.Second, func() bool {
		m = map[string]pmetric.Metric{}
		for _, n := range []string{"shop_orders_total", "shop_restarts", "shop_queue_depth", "shop_latency_seconds", "shop_rpc_seconds"} {
			mm, found := findMetric(sink, n)
			if !found {
				return false
			}
			m[n] = mm
		}
		return m["shop_restarts"].Type() == pmetric.MetricTypeSum // needs the metadata, sent separately
	})
	require.True(t, ok, "OTLP sink never saw every metric typed; have %v", m)
	assert.Equal(t, pmetric.MetricTypeSum, m["shop_orders_total"].Type())
	assert.True(t, m["shop_orders_total"].Sum().IsMonotonic())
	assert.Equal(t, "Orders placed.", m["shop_orders_total"].Description())
	assert.Equal(t, pmetric.MetricTypeGauge, m["shop_queue_depth"].Type())
	require.Equal(t, pmetric.MetricTypeHistogram, m["shop_latency_seconds"].Type())
	hp := m["shop_latency_seconds"].Histogram().DataPoints().At(0)
	assert.Equal(t, []float64{0.1, 1}, hp.ExplicitBounds().AsRaw())
	assert.Equal(t, []uint64{3, 6, 1}, hp.BucketCounts().AsRaw())
	assert.Equal(t, uint64(10), hp.Count())
	require.Equal(t, pmetric.MetricTypeSummary, m["shop_rpc_seconds"].Type())
	sp := m["shop_rpc_seconds"].Summary().DataPoints().At(0)
	assert.Equal(t, uint64(40), sp.Count())
	assert.Equal(t, 2, sp.QuantileValues().Len())

	// The receiver's own metrics, on vigil's telemetry endpoint.
	own := scrapeText(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", tel))
	for _, want := range []string{
		// This build's telemetry exposition adds no _total or unit suffixes.
		`otelcol_receiver_prometheus_remote_write_requests{`,
		`otelcol_receiver_prometheus_remote_write_samples{kind="float"}`,
		"otelcol_receiver_prometheus_remote_write_series ",
		`otelcol_receiver_prometheus_remote_write_decode_duration_bucket{`,
		`otelcol_receiver_accepted_metric_points{receiver="prometheus_remote_write"`,
	} {
		assert.Contains(t, own, want)
	}
	assert.Regexp(t, `otelcol_receiver_prometheus_remote_write_requests\{code="204",version="1.0"\} [1-9]`, own)
}

// sinkSummary lists what the OTLP sink received, request by request, for
// failure messages.
func sinkSummary(sink *otlpsink.Sink) []string {
	var out []string
	for _, md := range sink.Metrics() {
		var names []string
		rms := md.ResourceMetrics()
		for i := 0; i < rms.Len(); i++ {
			sms := rms.At(i).ScopeMetrics()
			for j := 0; j < sms.Len(); j++ {
				ms := sms.At(j).Metrics()
				for k := 0; k < ms.Len(); k++ {
					m := ms.At(k)
					var n int
					switch m.Type() {
					case pmetric.MetricTypeGauge:
						n = m.Gauge().DataPoints().Len()
					case pmetric.MetricTypeSum:
						n = m.Sum().DataPoints().Len()
					case pmetric.MetricTypeHistogram:
						n = m.Histogram().DataPoints().Len()
					case pmetric.MetricTypeSummary:
						n = m.Summary().DataPoints().Len()
					case pmetric.MetricTypeExponentialHistogram:
						n = m.ExponentialHistogram().DataPoints().Len()
					}
					names = append(names, fmt.Sprintf("%s:%s/%d", m.Name(), m.Type(), n))
				}
			}
		}
		out = append(out, strings.Join(names, " "))
	}
	return out
}

func scrapeText(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

// Debian's Prometheus cannot send remote write 2.0, so a Go client does:
// symbols, inline metadata, a counter with its start timestamp, a classic
// histogram and a native histogram. The receiver is configured under its
// old name prometheusremotewrite, which must still work.
func TestRemoteWriteV2Client(t *testing.T) {
	dest := startPrometheus(t, "")
	sink, err := otlpsink.Start("127.0.0.1:0", true)
	require.NoError(t, err)
	t.Cleanup(sink.Stop)
	writeURL, _ := vigilRelay(t, "prometheusremotewrite", dest.URL, sink)

	now := time.Now().UnixMilli()
	syms := []string{""}
	ref := func(s string) uint32 {
		for i, x := range syms {
			if x == s {
				return uint32(i)
			}
		}
		syms = append(syms, s)
		return uint32(len(syms) - 1)
	}
	refs := func(kv ...string) []uint32 {
		var out []uint32
		for _, s := range kv {
			out = append(out, ref(s))
		}
		return out
	}
	counter := writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_COUNTER, HelpRef: ref("Jobs done.")}
	hist := writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_HISTOGRAM, HelpRef: ref("Job time."), UnitRef: ref("seconds")}
	sizes := writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_HISTOGRAM, HelpRef: ref("Job size."), UnitRef: ref("bytes")}
	classic := func(name string, v float64, kv ...string) writev2.TimeSeries {
		return writev2.TimeSeries{
			LabelsRefs: refs(append([]string{"__name__", name}, append(kv, "instance", "w1:80", "job", "worker")...)...),
			Samples:    []writev2.Sample{{Value: v, Timestamp: now}},
			Metadata:   hist,
		}
	}
	first := &writev2.Request{Timeseries: []writev2.TimeSeries{
		{
			LabelsRefs: refs("__name__", "jobs_done_total", "instance", "w1:80", "job", "worker", "kind", "resize"),
			Samples:    []writev2.Sample{{Value: 128, Timestamp: now, StartTimestamp: now - 3_600_000}},
			Metadata:   counter,
		},
		classic("job_seconds_bucket", 5, "le", "0.5"),
		classic("job_seconds_bucket", 8, "le", "+Inf"),
		classic("job_seconds_sum", 3.25),
		classic("job_seconds_count", 8),
	}}
	first.Symbols = syms
	resp := postV2(t, writeURL, first)
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	assert.Equal(t, "5", resp.Header.Get("X-Prometheus-Remote-Write-Samples-Written"))

	second := &writev2.Request{Timeseries: []writev2.TimeSeries{{
		LabelsRefs: refs("__name__", "job_size_bytes", "instance", "w1:80", "job", "worker"),
		Histograms: []writev2.Histogram{{
			Count: &writev2.Histogram_CountInt{CountInt: 6}, Sum: 4096, Schema: 0,
			ZeroCount:      &writev2.Histogram_ZeroCountInt{ZeroCountInt: 1},
			PositiveSpans:  []writev2.BucketSpan{{Offset: 10, Length: 2}, {Offset: 1, Length: 1}},
			PositiveDeltas: []int64{2, 0, -1}, // 2, 2, 1
			Timestamp:      now,
		}},
		Metadata: sizes,
	}}}
	second.Symbols = syms
	resp = postV2(t, writeURL, second)
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	assert.Equal(t, "1", resp.Header.Get("X-Prometheus-Remote-Write-Histograms-Written"))

	// Through to the destination Prometheus (over remote write 1.0).
	want := map[string]string{
		`jobs_done_total{instance="w1:80",job="worker",kind="resize"}`: "128",
		`job_seconds_bucket{instance="w1:80",job="worker",le="0.5"}`:   "5",
		`job_seconds_bucket{instance="w1:80",job="worker",le="+Inf"}`:  "8",
		`job_seconds_count{instance="w1:80",job="worker"}`:             "8",
		`job_seconds_sum{instance="w1:80",job="worker"}`:               "3.25",
	}
	var got map[string]string
	ok := otlpsink.WaitFor(30*time.Second, func() bool {
		got, err = vectorOf(t, dest, `{job="worker"}`, nil)
		if err != nil {
			return false
		}
		for k, v := range want {
			if got[k] != v {
				return false
			}
		}
		return true
	})
	require.True(t, ok, "destination never showed the 2.0 samples\nwant %v\n got %v\nerr %v", want, got, err)

	var c, e pmetric.Metric
	ok = otlpsink.WaitFor(20*time.Second, func() bool {
		var ok1, ok2 bool
		c, ok1 = findMetric(sink, "jobs_done_total")
		e, ok2 = findMetric(sink, "job_size_bytes")
		return ok1 && ok2
	})
	require.True(t, ok, "OTLP sink never saw the 2.0 metrics")
	require.Equal(t, pmetric.MetricTypeSum, c.Type())
	assert.Equal(t, uint64(now-3_600_000)*1e6, uint64(c.Sum().DataPoints().At(0).StartTimestamp()), "start timestamp -> start time")
	require.Equal(t, pmetric.MetricTypeExponentialHistogram, e.Type())
	ep := e.ExponentialHistogram().DataPoints().At(0)
	assert.Equal(t, int32(9), ep.Positive().Offset())
	assert.Equal(t, []uint64{2, 2, 0, 1}, ep.Positive().BucketCounts().AsRaw())
	assert.Equal(t, uint64(6), ep.Count())
	assert.Equal(t, "By", e.Unit())
}

func postV2(t *testing.T, url string, req *writev2.Request) *http.Response {
	t.Helper()
	raw, err := req.Marshal()
	require.NoError(t, err)
	hreq, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(snappy.Encode(nil, raw)))
	require.NoError(t, err)
	hreq.Header.Set("Content-Type", "application/x-protobuf;proto=io.prometheus.write.v2.Request")
	hreq.Header.Set("Content-Encoding", "snappy")
	hreq.Header.Set("X-Prometheus-Remote-Write-Version", "2.0.0")
	resp, err := http.DefaultClient.Do(hreq)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Less(t, resp.StatusCode, 300, "vigil answered %s: %s", resp.Status, body)
	return resp
}
