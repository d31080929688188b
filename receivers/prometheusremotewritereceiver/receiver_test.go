package prometheusremotewritereceiver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/vigilhq/vigil/receivers/prometheusremotewritereceiver/internal/metadata"
)

type harness struct {
	url  string
	tel  *componenttest.Telemetry
	sink *consumertest.MetricsSink
}

// start runs the receiver on a free loopback port in front of next (a sink
// when nil) and stops it when the test ends.
func start(t *testing.T, next consumer.Metrics, edit func(*Config)) *harness {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	cfg := NewFactory().CreateDefaultConfig().(*Config)
	cfg.NetAddr.Endpoint = addr
	if edit != nil {
		edit(cfg)
	}
	h := &harness{url: "http://" + addr + WritePath, tel: componenttest.NewTelemetry(), sink: new(consumertest.MetricsSink)}
	if next == nil {
		next = h.sink
	}
	set := receivertest.NewNopSettings(metadata.Type)
	set.TelemetrySettings = h.tel.NewTelemetrySettings()
	r, err := NewFactory().CreateMetrics(context.Background(), set, cfg, next)
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() {
		require.NoError(t, r.Shutdown(context.Background()))
		require.NoError(t, h.tel.Shutdown(context.Background()))
	})
	return h
}

func (h *harness) post(t *testing.T, contentType, encoding string, body []byte) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.url, bytes.NewReader(body))
	require.NoError(t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func bodyOf(t *testing.T, r *http.Response) string {
	b, err := io.ReadAll(r.Body)
	require.NoError(t, err)
	return string(b)
}

const (
	ctV1 = "application/x-protobuf"
	ctV2 = "application/x-protobuf;proto=io.prometheus.write.v2.Request"
)

func v1Body(t *testing.T, series ...prompb.TimeSeries) []byte {
	raw, err := (&prompb.WriteRequest{Timeseries: series}).Marshal()
	require.NoError(t, err)
	return snappy.Encode(nil, raw)
}

func gauge(name string, v float64, kv ...string) prompb.TimeSeries {
	ls := []prompb.Label{{Name: "__name__", Value: name}}
	for i := 0; i < len(kv); i += 2 {
		ls = append(ls, prompb.Label{Name: kv[i], Value: kv[i+1]})
	}
	return prompb.TimeSeries{Labels: ls, Samples: []prompb.Sample{{Value: v, Timestamp: time.Now().UnixMilli()}}}
}

// sumCounter reads one of the receiver's counters for an attribute.
func sumCounter(t *testing.T, tel *componenttest.Telemetry, name string, attr attribute.KeyValue) int64 {
	t.Helper()
	m, err := tel.GetMetric(name)
	if err != nil {
		return 0
	}
	var total int64
	for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
		if v, ok := dp.Attributes.Value(attr.Key); ok && v == attr.Value {
			total += dp.Value
		}
	}
	return total
}

func TestWriteV1(t *testing.T) {
	h := start(t, nil, nil)
	resp := h.post(t, ctV1, "snappy", v1Body(t, gauge("temp", 21.5, "job", "house", "room", "kitchen")))
	require.Equal(t, http.StatusNoContent, resp.StatusCode, bodyOf(t, resp))
	assert.Empty(t, resp.Header.Get("X-Prometheus-Remote-Write-Samples-Written"), "1.0 answers carry no 2.0 headers")
	require.Len(t, h.sink.AllMetrics(), 1)
	md := h.sink.AllMetrics()[0]
	name, _ := md.ResourceMetrics().At(0).Resource().Attributes().Get("service.name")
	assert.Equal(t, "house", name.Str())
	m := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0)
	assert.Equal(t, "temp", m.Name())
	assert.Equal(t, 21.5, m.Gauge().DataPoints().At(0).DoubleValue())

	assert.Equal(t, int64(1), sumCounter(t, h.tel, "otelcol_receiver_prometheus_remote_write_requests", attribute.Int("code", 204)))
	assert.Equal(t, int64(1), sumCounter(t, h.tel, "otelcol_receiver_prometheus_remote_write_samples", attribute.String("kind", "float")))
	series, err := h.tel.GetMetric("otelcol_receiver_prometheus_remote_write_series")
	require.NoError(t, err)
	assert.Equal(t, int64(1), series.Data.(metricdata.Sum[int64]).DataPoints[0].Value)
	dur, err := h.tel.GetMetric("otelcol_receiver_prometheus_remote_write_decode_duration")
	require.NoError(t, err)
	assert.Equal(t, uint64(1), dur.Data.(metricdata.Histogram[float64]).DataPoints[0].Count)
	acc, err := h.tel.GetMetric("otelcol_receiver_accepted_metric_points")
	require.NoError(t, err, "the collector's standard receiver metrics are kept")
	assert.Equal(t, int64(1), acc.Data.(metricdata.Sum[int64]).DataPoints[0].Value)
}

func TestWriteV2Headers(t *testing.T) {
	h := start(t, nil, nil)
	req := &writev2.Request{
		Symbols: []string{"", "__name__", "up", "job", "db"},
		Timeseries: []writev2.TimeSeries{{
			LabelsRefs: []uint32{1, 2, 3, 4},
			Samples:    []writev2.Sample{{Value: 1, Timestamp: time.Now().UnixMilli()}, {Value: 1, Timestamp: time.Now().UnixMilli() + 1}},
			Metadata:   writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_GAUGE},
		}},
	}
	raw, err := req.Marshal()
	require.NoError(t, err)
	resp := h.post(t, ctV2, "snappy", snappy.Encode(nil, raw))
	require.Equal(t, http.StatusNoContent, resp.StatusCode, bodyOf(t, resp))
	assert.Equal(t, "2", resp.Header.Get("X-Prometheus-Remote-Write-Samples-Written"))
	assert.Equal(t, "0", resp.Header.Get("X-Prometheus-Remote-Write-Histograms-Written"))
	assert.Equal(t, "0", resp.Header.Get("X-Prometheus-Remote-Write-Exemplars-Written"))
	assert.Equal(t, 2, h.sink.DataPointCount())

	// The same bytes labelled 1.0 are not a valid 1.0 message: the
	// Content-Type decides, as in Prometheus.
	resp = h.post(t, ctV1, "snappy", snappy.Encode(nil, raw))
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Contains(t, bodyOf(t, resp), "a 2.0 request sent as Content-Type application/x-protobuf?")
}

func TestRefusals(t *testing.T) {
	good := v1Body(t, gauge("up", 1, "job", "a"))
	bomb := snappy.Encode(nil, make([]byte, 2<<20))
	huge := make([]byte, 3<<20)
	_, _ = rand.NewChaCha8([32]byte{1}).Read(huge) // incompressible
	hugeBody := snappy.Encode(nil, huge)
	partial := v1Body(t, gauge("ok", 1, "job", "a"), prompb.TimeSeries{
		Labels: []prompb.Label{{Name: "job", Value: "nameless"}}, Samples: []prompb.Sample{{Value: 1, Timestamp: 1}},
	})
	for _, tc := range []struct {
		name         string
		method       string
		ct, enc      string
		body         []byte
		code         int
		reason       string
		wantInBody   string
		wantDelivery int
	}{
		{"unknown content type", "", "application/json", "", good, 415, reasonMediaType, "content type", 0},
		{"unknown proto", "", "application/x-protobuf;proto=io.prometheus.write.v9.Request", "", good, 415, reasonMediaType, "unknown proto", 0},
		{"gzip", "", ctV1, "gzip", good, 415, reasonMediaType, "only snappy", 0},
		{"GET", http.MethodGet, ctV1, "snappy", nil, 405, reasonMethod, "POST", 0},
		{"compressed bomb", "", ctV1, "snappy", bomb, 413, reasonTooLarge, "exceeds max_decompressed_size", 0},
		{"body too large", "", ctV1, "snappy", hugeBody, 413, reasonTooLarge, "max_request_body_size 2097152 bytes", 0},
		{"not snappy", "", ctV1, "snappy", []byte("\xff\xff\xff\xff\xff\xffnot snappy"), 400, reasonMalformed, "snappy", 0},
		{"not protobuf", "", ctV1, "snappy", snappy.Encode(nil, []byte("\x0a\xff\xff\xff\xff\x0f")), 400, reasonMalformed, "cannot decode 1.0 protobuf", 0},
		{"partly invalid", "", ctV1, "snappy", partial, 400, reasonInvalidSeries, "1 of 2 series refused; first: invalid series", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, nil, func(c *Config) {
				c.MaxDecompressedSize = 1 << 20
				c.MaxRequestBodySize = 2 << 20
			})
			var resp *http.Response
			if tc.method == http.MethodGet {
				r, err := http.Get(h.url)
				require.NoError(t, err)
				t.Cleanup(func() { r.Body.Close() })
				resp = r
			} else {
				resp = h.post(t, tc.ct, tc.enc, tc.body)
			}
			assert.Equal(t, tc.code, resp.StatusCode)
			assert.Contains(t, bodyOf(t, resp), tc.wantInBody)
			assert.Equal(t, tc.wantDelivery, h.sink.DataPointCount())
			assert.Equal(t, int64(1), sumCounter(t, h.tel, "otelcol_receiver_prometheus_remote_write_rejects", attribute.String("reason", tc.reason)))
			assert.Equal(t, int64(1), sumCounter(t, h.tel, "otelcol_receiver_prometheus_remote_write_requests", attribute.Int("code", tc.code)))
		})
	}
}

// With max_request_body_size unset, a refusal names the limit in force
// (confighttp's default), not the unset 0.
func TestDefaultBodyLimitNamed(t *testing.T) {
	huge := make([]byte, 21<<20)
	_, _ = rand.NewChaCha8([32]byte{2}).Read(huge)
	h := start(t, nil, nil)
	resp := h.post(t, ctV1, "snappy", snappy.Encode(nil, huge))
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	assert.Contains(t, bodyOf(t, resp), "max_request_body_size 20971520 bytes")
}

// When the pipeline refuses (memory_limiter, a full queue) the client is
// told to come back later: 503 with Retry-After, which Prometheus retries.
// A permanent refusal is a 400, which Prometheus drops instead.
func TestBackpressure(t *testing.T) {
	body := v1Body(t, gauge("up", 1, "job", "a"))

	h := start(t, consumertest.NewErr(errors.New("data refused due to high memory usage")), func(c *Config) { c.RetryAfter = 7 * time.Second })
	resp := h.post(t, ctV1, "snappy", body)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "7", resp.Header.Get("Retry-After"))
	assert.Contains(t, bodyOf(t, resp), "high memory usage")
	assert.Equal(t, int64(1), sumCounter(t, h.tel, "otelcol_receiver_prometheus_remote_write_rejects", attribute.String("reason", reasonRefusedDownstream)))
	refused, err := h.tel.GetMetric("otelcol_receiver_refused_metric_points")
	require.NoError(t, err)
	assert.Equal(t, int64(1), refused.Data.(metricdata.Sum[int64]).DataPoints[0].Value)

	h = start(t, consumertest.NewErr(consumererror.NewPermanent(errors.New("bad data"))), nil)
	resp = h.post(t, ctV2, "snappy", snappy.Encode(nil, mustMarshalV2(t)))
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Empty(t, resp.Header.Get("Retry-After"))
	assert.Equal(t, "0", resp.Header.Get("X-Prometheus-Remote-Write-Samples-Written"))
}

func mustMarshalV2(t *testing.T) []byte {
	raw, err := (&writev2.Request{
		Symbols:    []string{"", "__name__", "up"},
		Timeseries: []writev2.TimeSeries{{LabelsRefs: []uint32{1, 2}, Samples: []writev2.Sample{{Value: 1, Timestamp: 1}}}},
	}).Marshal()
	require.NoError(t, err)
	return raw
}

// Many clients at once: every sample arrives once, nothing races.
func TestConcurrentWriters(t *testing.T) {
	h := start(t, nil, nil)
	const writers, each = 8, 25
	errs := make(chan error, writers)
	for w := range writers {
		go func() {
			for i := range each {
				body := v1Body(t, gauge("load", float64(i), "job", fmt.Sprint("w", w)))
				resp, err := http.Post(h.url, ctV1, bytes.NewReader(body))
				if err != nil {
					errs <- err
					return
				}
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusNoContent {
					errs <- fmt.Errorf("status %d", resp.StatusCode)
					return
				}
			}
			errs <- nil
		}()
	}
	for range writers {
		require.NoError(t, <-errs)
	}
	assert.Equal(t, writers*each, h.sink.DataPointCount())
	seen := map[string]int{}
	for _, md := range h.sink.AllMetrics() {
		rms := md.ResourceMetrics()
		for i := 0; i < rms.Len(); i++ {
			v, _ := rms.At(i).Resource().Attributes().Get("service.name")
			seen[v.Str()] += rms.At(i).ScopeMetrics().At(0).Metrics().At(0).Gauge().DataPoints().Len()
		}
	}
	for w := range writers {
		assert.Equal(t, each, seen[fmt.Sprint("w", w)])
	}
}

func TestShutdownWithoutStart(t *testing.T) {
	cfg := NewFactory().CreateDefaultConfig()
	r, err := NewFactory().CreateMetrics(context.Background(), receivertest.NewNopSettings(metadata.Type), cfg, consumertest.NewNop())
	require.NoError(t, err)
	require.NoError(t, r.Shutdown(context.Background()))
	require.NoError(t, r.Shutdown(context.Background()))
}
