package prometheusremotewriteexporter

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/translator/prometheusremotewrite"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/vigilhq/vigil/exporters/prometheusremotewriteexporter/internal/metadata"
	"github.com/vigilhq/vigil/internal/promrw"
)

// fakePrometheus stores what it is sent as Prometheus's TSDB does: per
// series, a sample older than the newest it has, or at its time with
// another value, refuses the whole request (400, nothing of it kept); the
// same sample again is ignored. fail, when set, answers a request instead.
type fakePrometheus struct {
	mu      sync.Mutex
	series  map[string][]prompb.Sample
	posts   int
	refused int // 400 out of order
	bodies  [][]byte
	fail    func(n int, wr *prompb.WriteRequest) (code int, retryAfter string)
	at      []time.Time
}

func (p *fakePrometheus) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	pb, err := snappy.Decode(nil, body)
	if err != nil || r.Header.Get("Content-Encoding") != "snappy" || r.Header.Get("X-Prometheus-Remote-Write-Version") != "0.1.0" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	var wr prompb.WriteRequest
	if err := wr.Unmarshal(pb); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.posts++
	p.bodies = append(p.bodies, pb)
	p.at = append(p.at, time.Now())
	if p.fail != nil {
		if code, ra := p.fail(p.posts, &wr); code != 0 {
			if ra != "" {
				w.Header().Set("Retry-After", ra)
			}
			http.Error(w, "injected", code)
			return
		}
	}
	add := map[string][]prompb.Sample{}
	for _, ts := range wr.Timeseries {
		key := labelsKey(ts.Labels)
		have := append(p.series[key], add[key]...)
		for _, s := range ts.Samples {
			if n := len(have); n > 0 {
				last := have[n-1]
				if s.Timestamp < last.Timestamp || (s.Timestamp == last.Timestamp && s.Value != last.Value) {
					p.refused++
					http.Error(w, "out of order sample", http.StatusBadRequest)
					return
				}
				if s.Timestamp == last.Timestamp {
					continue
				}
			}
			have = append(have, s)
			add[key] = append(add[key], s)
		}
	}
	for k, v := range add {
		p.series[k] = append(p.series[k], v...)
	}
	w.WriteHeader(http.StatusNoContent)
}

func labelsKey(ls []prompb.Label) string {
	var b strings.Builder
	for _, l := range ls {
		b.WriteString(l.Name + "=" + l.Value + ",")
	}
	return b.String()
}

func startFake(t *testing.T) (*fakePrometheus, string) {
	p := &fakePrometheus{series: map[string][]prompb.Sample{}}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return p, srv.URL + "/api/v1/write"
}

// gauges builds n gauge series of one target, each with a point at t0 and
// one a second later.
func gauges(n int, t0 time.Time) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "shop")
	rm.Resource().Attributes().PutStr("service.instance.id", "10.0.0.1:8080")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("queue_depth")
	g := m.SetEmptyGauge()
	for i := range n {
		for j := range 2 {
			dp := g.DataPoints().AppendEmpty()
			dp.Attributes().PutStr("queue", fmt.Sprintf("q-%04d", i))
			dp.SetTimestamp(pcommon.NewTimestampFromTime(t0.Add(time.Duration(j) * time.Second)))
			dp.SetDoubleValue(float64(i*10 + j))
		}
	}
	return md
}

// newTestExporter builds the exporter as the collector would, synchronous
// (no queue) so a test sees what a push did, retrying quickly.
func newTestExporter(t *testing.T, url string, edit func(*Config)) exporter.Metrics {
	t.Helper()
	cfg := createDefaultConfig().(*Config)
	cfg.HTTP.Endpoint = url
	cfg.RemoteWriteQueue.Enabled = false
	cfg.TargetInfo.Enabled = false
	cfg.BackOffConfig.InitialInterval = 10 * time.Millisecond
	cfg.BackOffConfig.RandomizationFactor = 0
	cfg.BackOffConfig.MaxElapsedTime = 20 * time.Second
	if edit != nil {
		edit(cfg)
	}
	exp, err := NewFactory().CreateMetrics(context.Background(), exportertest.NewNopSettings(metadata.Type), cfg)
	require.NoError(t, err)
	require.NoError(t, exp.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, exp.Shutdown(context.Background())) })
	return exp
}

func (p *fakePrometheus) samples() (series, samples int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.series {
		samples += len(s)
	}
	return len(p.series), samples
}

// Every series arrives whole, in batches under max_batch_size_bytes, each
// series in one batch only.
func TestSendsEverySeriesInBatches(t *testing.T) {
	p, url := startFake(t)
	exp := newTestExporter(t, url, func(c *Config) { c.MaxBatchSizeBytes = 4000 })
	require.NoError(t, exp.ConsumeMetrics(context.Background(), gauges(500, time.Now())))
	series, samples := p.samples()
	assert.Equal(t, 500, series)
	assert.Equal(t, 1000, samples)
	assert.Greater(t, p.posts, 10, "cut into batches")
	seen := map[string]bool{}
	for _, b := range p.bodies {
		var wr prompb.WriteRequest
		require.NoError(t, wr.Unmarshal(b))
		assert.LessOrEqual(t, len(b), 4000+200)
		for _, ts := range wr.Timeseries {
			k := labelsKey(ts.Labels)
			assert.False(t, seen[k], "series %s in two batches", k)
			seen[k] = true
		}
	}
}

// A request is cut the same way every time (series in label order), so a
// request sent again after a crash is the same batches, each of which
// Prometheus holds whole or not at all.
func TestCutIsDeterministic(t *testing.T) {
	t0 := time.Now()
	e := &prwExporter{}
	var first [][]byte
	for round := range 5 {
		series, err := prometheusremotewrite.FromMetrics(gauges(300, t0), e.settings)
		require.NoError(t, err)
		batches, err := promrw.Cut(series, nil, 3000)
		require.NoError(t, err)
		var got [][]byte
		for _, b := range batches {
			got = append(got, append([]byte(nil), b.PB...))
			b.Release()
		}
		if round == 0 {
			first = got
			continue
		}
		assert.Equal(t, first, got)
	}
}

// When one batch fails with a 5xx, the retry sends only that batch: the
// others are at Prometheus already, and sending them again (their series'
// first sample is older than their newest) would be refused whole.
func TestRetrySendsOnlyWhatFailed(t *testing.T) {
	p, url := startFake(t)
	failed := false
	p.fail = func(n int, _ *prompb.WriteRequest) (int, string) {
		if n == 3 && !failed {
			failed = true
			return http.StatusServiceUnavailable, ""
		}
		return 0, ""
	}
	exp := newTestExporter(t, url, func(c *Config) {
		c.MaxBatchSizeBytes = 4000
		one := 1
		c.MaxBatchRequestParallelism = &one
	})
	require.NoError(t, exp.ConsumeMetrics(context.Background(), gauges(300, time.Now())))
	series, samples := p.samples()
	assert.Equal(t, 300, series)
	assert.Equal(t, 600, samples)
	assert.Zero(t, p.refused, "a batch already accepted was sent again and refused as out of order")
	times := map[string]int{}
	for _, b := range p.bodies {
		times[string(b)]++
	}
	assert.Len(t, times, len(p.bodies)-1, "every batch sent once, and the failed one again")
	assert.Equal(t, 2, times[string(p.bodies[2])], "the third batch failed and was sent again")
}

// 400 is permanent: not retried, dropped, and the push fails for good so the
// collector counts the points as failed and the queue moves on.
func TestBadRequestIsPermanent(t *testing.T) {
	p, url := startFake(t)
	p.fail = func(int, *prompb.WriteRequest) (int, string) { return http.StatusBadRequest, "" }
	exp := newTestExporter(t, url, nil)
	err := exp.ConsumeMetrics(context.Background(), gauges(10, time.Now()))
	require.Error(t, err)
	assert.True(t, consumererror.IsPermanent(err), "%v", err)
	assert.Equal(t, 1, p.posts)
}

// 429 is retried, after the server's Retry-After.
func TestTooManyRequestsHonoursRetryAfter(t *testing.T) {
	p, url := startFake(t)
	p.fail = func(n int, _ *prompb.WriteRequest) (int, string) {
		if n == 1 {
			return http.StatusTooManyRequests, "1"
		}
		return 0, ""
	}
	exp := newTestExporter(t, url, nil)
	require.NoError(t, exp.ConsumeMetrics(context.Background(), gauges(10, time.Now())))
	require.Equal(t, 2, p.posts)
	assert.GreaterOrEqual(t, p.at[1].Sub(p.at[0]), 900*time.Millisecond, "retried before Retry-After")
	_, samples := p.samples()
	assert.Equal(t, 20, samples)
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	assert.Equal(t, 3*time.Second, retryAfter("3", now))
	assert.Equal(t, 30*time.Second, retryAfter(now.Add(30*time.Second).Format(http.TimeFormat), now))
	assert.Equal(t, time.Minute, retryAfter("86400", now))
	assert.Zero(t, retryAfter("", now))
	assert.Zero(t, retryAfter("soon", now))
	assert.Zero(t, retryAfter("-5", now))
}

// A request's batches are remembered for its retries only: batches with the
// same bytes in the next request (its metadata) are sent again.
func TestMetadataSentWithEveryRequest(t *testing.T) {
	p, url := startFake(t)
	exp := newTestExporter(t, url, func(c *Config) { c.SendMetadata = true })
	t0 := time.Now()
	for i := range 3 {
		require.NoError(t, exp.ConsumeMetrics(context.Background(), gauges(5, t0.Add(time.Duration(i)*time.Minute))))
	}
	var withMeta int
	for _, b := range p.bodies {
		var wr prompb.WriteRequest
		require.NoError(t, wr.Unmarshal(b))
		if len(wr.Metadata) > 0 {
			withMeta++
		}
	}
	assert.Equal(t, 3, withMeta)
}

// target_info goes in a batch of its own: stamped with the newest sample of
// its resource in each request, it can go back in time between requests,
// and Prometheus refusing it must not refuse data with it, nor fail the
// request.
func TestTargetInfoApart(t *testing.T) {
	p, url := startFake(t)
	exp := newTestExporter(t, url, func(c *Config) { c.TargetInfo.Enabled = true })
	t0 := time.Now()
	md := gauges(3, t0.Add(time.Minute))
	md.ResourceMetrics().At(0).Resource().Attributes().PutStr("k8s.pod.name", "shop-0")
	require.NoError(t, exp.ConsumeMetrics(context.Background(), md))
	older := gauges(3, t0) // target_info goes back a minute; the data is new series
	older.ResourceMetrics().At(0).Resource().Attributes().PutStr("k8s.pod.name", "shop-0")
	m := older.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0)
	m.SetName("other_gauge")
	require.NoError(t, exp.ConsumeMetrics(context.Background(), older), "a refused target_info fails nothing")
	assert.Equal(t, 1, p.refused, "the second target_info, older than the first")
	p.mu.Lock()
	defer p.mu.Unlock()
	var data, info int
	for k, v := range p.series {
		if strings.HasPrefix(k, "__name__=target_info,") {
			info++
			continue
		}
		data += len(v)
	}
	assert.Equal(t, 12, data, "every data sample of both requests")
	assert.Equal(t, 1, info)
}
