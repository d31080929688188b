package promrw

import (
	"bytes"
	"encoding/json"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

const ms0 = int64(1767323045000) // 2026-01-02T03:04:05Z

// lbls builds sorted labels from name, then k, v pairs.
func lbls(name string, kv ...string) []prompb.Label {
	out := []prompb.Label{{Name: labelName, Value: name}}
	for i := 0; i < len(kv); i += 2 {
		out = append(out, prompb.Label{Name: kv[i], Value: kv[i+1]})
	}
	sortLabels(out)
	return out
}

func sortLabels(ls []prompb.Label) {
	for i := 1; i < len(ls); i++ {
		for j := i; j > 0 && ls[j].Name < ls[j-1].Name; j-- {
			ls[j], ls[j-1] = ls[j-1], ls[j]
		}
	}
}

func series1(ls []prompb.Label, vals ...float64) prompb.TimeSeries {
	ts := prompb.TimeSeries{Labels: ls}
	for i, v := range vals {
		ts.Samples = append(ts.Samples, prompb.Sample{Value: v, Timestamp: ms0 + int64(i)*15000})
	}
	return ts
}

var stale = math.Float64frombits(value.StaleNaN)

// translateV1 runs one 1.0 request through the wire format and back.
func translateV1(t *testing.T, tr *Translator, req *prompb.WriteRequest) (pmetric.Metrics, Stats) {
	t.Helper()
	raw, err := req.Marshal()
	require.NoError(t, err)
	r := GetRequest()
	defer PutRequest(r)
	require.NoError(t, r.Decode(V1, raw))
	return tr.Translate(r)
}

func translateV2(t *testing.T, tr *Translator, req *writev2.Request) (pmetric.Metrics, Stats) {
	t.Helper()
	raw, err := req.Marshal()
	require.NoError(t, err)
	r := GetRequest()
	defer PutRequest(r)
	require.NoError(t, r.Decode(V2, raw))
	return tr.Translate(r)
}

// golden compares md, as indented OTLP JSON, with testdata/golden/name.json;
// go test -run ... -update rewrites it.
func golden(t *testing.T, name string, md pmetric.Metrics) {
	t.Helper()
	raw, err := (&pmetric.JSONMarshaler{}).MarshalMetrics(md)
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, json.Indent(&buf, raw, "", "  "))
	buf.WriteByte('\n')
	path := filepath.Join("testdata", "golden", name+".json")
	if *update {
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o600))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "no golden file: run go test ./internal/promrw -run %s -update", t.Name())
	require.Equal(t, string(want), buf.String(), "translation differs from %s (rerun with -update if the change is intended)", path)
}

// Without any metadata the kinds come from the shape of the request: _total
// counters, le-labelled _bucket series with their _sum and _count (in any
// order), quantile-labelled summaries; anything else is a gauge.
func TestTranslateV1WithoutMetadata(t *testing.T) {
	job := []string{"job", "shop", "instance", "h:1"}
	with := func(kv ...string) []string { return append(append([]string{}, job...), kv...) }
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		series1(lbls("rpc_seconds_count", with("path", "/a")...), 10, 12),
		series1(lbls("http_requests_total", with("code", "200")...), 5, 6),
		series1(lbls("rpc_seconds_bucket", with("path", "/a", "le", "+Inf")...), 10, 12),
		series1(lbls("rpc_seconds_bucket", with("path", "/a", "le", "0.5")...), 7, 7),
		series1(lbls("rpc_seconds_bucket", with("path", "/a", "le", "0.1")...), 3, stale),
		series1(lbls("rpc_seconds_sum", with("path", "/a")...), 2.5, 3),
		series1(lbls("gc_seconds", with("quantile", "0.99")...), 0.2),
		series1(lbls("gc_seconds", with("quantile", "0.5")...), 0.1),
		series1(lbls("gc_seconds_count", job...), 40),
		series1(lbls("gc_seconds_sum", job...), 4),
		series1(lbls("lonely_count", job...), 3),
		series1(lbls("temperature", with("room", "kitchen")...), 21.5),
		series1(lbls("http_requests_created", with("code", "200")...), float64(ms0/1000-3600)),
		series1(lbls("target_info", with("k8s_pod_name", "shop-0", "region", "eu")...), 1),
		series1(lbls("up", "job", "db/postgres", "instance", "h:2"), 1),
		series1(lbls("lib_calls_total", with("otel_scope_name", "lib", "otel_scope_version", "2.0")...), 9),
	}}
	md, st := translateV1(t, NewTranslator(Options{ScopeName: "vigil"}), req)
	require.Zero(t, st.InvalidSeries, "%v", st.FirstInvalid)
	golden(t, "v1_no_metadata", md)

	require.Equal(t, 2, md.ResourceMetrics().Len())
	shop := md.ResourceMetrics().At(0).Resource().Attributes().AsRaw()
	assert.Equal(t, map[string]any{"service.name": "shop", "service.instance.id": "h:1", "k8s_pod_name": "shop-0", "region": "eu"}, shop)
	db := md.ResourceMetrics().At(1).Resource().Attributes().AsRaw()
	assert.Equal(t, map[string]any{"service.namespace": "db", "service.name": "postgres", "service.instance.id": "h:2"}, db)

	ms := metricsByName(t, md)
	assert.Equal(t, pmetric.MetricTypeSum, ms["http_requests_total"].Type())
	assert.True(t, ms["http_requests_total"].Sum().IsMonotonic())
	assert.Equal(t, uint64(ms0-3600000)*1e6, uint64(ms["http_requests_total"].Sum().DataPoints().At(0).StartTimestamp()),
		"_created sets the counter's start time")
	assert.NotContains(t, ms, "http_requests_created")

	h := ms["rpc_seconds"]
	require.Equal(t, pmetric.MetricTypeHistogram, h.Type())
	require.Equal(t, 2, h.Histogram().DataPoints().Len(), "one point per timestamp")
	p0 := h.Histogram().DataPoints().At(0)
	assert.Equal(t, []float64{0.1, 0.5}, p0.ExplicitBounds().AsRaw())
	assert.Equal(t, []uint64{3, 4, 3}, p0.BucketCounts().AsRaw())
	assert.Equal(t, uint64(10), p0.Count())
	assert.Equal(t, 2.5, p0.Sum())
	assert.Equal(t, map[string]any{"path": "/a"}, p0.Attributes().AsRaw())
	assert.True(t, h.Histogram().DataPoints().At(1).Flags().NoRecordedValue(), "a stale bucket makes the point stale")

	s := ms["gc_seconds"]
	require.Equal(t, pmetric.MetricTypeSummary, s.Type())
	sp := s.Summary().DataPoints().At(0)
	assert.Equal(t, uint64(40), sp.Count())
	assert.Equal(t, 0.5, sp.QuantileValues().At(0).Quantile(), "quantiles sorted")
	assert.Equal(t, 0.99, sp.QuantileValues().At(1).Quantile())

	assert.Equal(t, pmetric.MetricTypeGauge, ms["lonely_count"].Type())
	assert.Equal(t, pmetric.MetricTypeGauge, ms["temperature"].Type())
	assert.NotContains(t, ms, "target_info")

	var scopes []string
	sms := md.ResourceMetrics().At(0).ScopeMetrics()
	for i := 0; i < sms.Len(); i++ {
		scopes = append(scopes, sms.At(i).Scope().Name()+"@"+sms.At(i).Scope().Version())
	}
	assert.ElementsMatch(t, []string{"vigil@", "lib@2.0"}, scopes)
	assert.Equal(t, st.Samples, st.WrittenSamples)
}

// Prometheus sends 1.0 metadata in requests of its own; the types must
// still apply to series that arrive later, and beat the suffix guesses.
func TestTranslateV1MetadataFromEarlierRequest(t *testing.T) {
	tr := NewTranslator(Options{})
	_, st := translateV1(t, tr, &prompb.WriteRequest{Metadata: []prompb.MetricMetadata{
		{MetricFamilyName: "items_total", Type: prompb.MetricMetadata_GAUGE, Help: "Items, a gauge despite the suffix."},
		{MetricFamilyName: "restarts", Type: prompb.MetricMetadata_COUNTER, Help: "Restarts."},
		{MetricFamilyName: "build_info", Type: prompb.MetricMetadata_INFO},
		{MetricFamilyName: "queue", Type: prompb.MetricMetadata_GAUGEHISTOGRAM},
		{MetricFamilyName: "disk", Type: prompb.MetricMetadata_GAUGE, Unit: "bytes"},
		{MetricFamilyName: "wait_seconds", Type: prompb.MetricMetadata_HISTOGRAM, Unit: "seconds"},
	}})
	assert.Equal(t, 6, st.Metadata)
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		series1(lbls("items_total", "job", "a"), 3),
		series1(lbls("restarts", "job", "a"), 2),
		series1(lbls("build_info", "job", "a", "version", "1.0"), 1),
		series1(lbls("queue_bucket", "job", "a", "le", "1"), 1),
		series1(lbls("queue_gcount", "job", "a"), 1),
		series1(lbls("disk", "job", "a"), 1e9),
		series1(lbls("wait_seconds_count", "job", "a"), 2),
		series1(lbls("wait_seconds_bucket", "job", "a", "le", "+Inf"), 2),
	}}
	md, st := translateV1(t, tr, req)
	require.Zero(t, st.InvalidSeries)
	golden(t, "v1_cached_metadata", md)
	ms := metricsByName(t, md)
	assert.Equal(t, pmetric.MetricTypeGauge, ms["items_total"].Type())
	assert.Equal(t, "Items, a gauge despite the suffix.", ms["items_total"].Description())
	assert.Equal(t, pmetric.MetricTypeSum, ms["restarts"].Type())
	assert.True(t, ms["restarts"].Sum().IsMonotonic())
	assert.Equal(t, pmetric.MetricTypeSum, ms["build_info"].Type())
	assert.False(t, ms["build_info"].Sum().IsMonotonic(), "info -> non-monotonic sum")
	assert.NotContains(t, ms, "queue", "gauge histograms are dropped")
	assert.NotContains(t, ms, "queue_bucket")
	assert.Equal(t, 2, st.Dropped)
	assert.Equal(t, "By", ms["disk"].Unit())
	typ, _ := ms["disk"].Metadata().Get("prometheus.type")
	assert.Equal(t, "gauge", typ.Str())
	w := ms["wait_seconds"]
	require.Equal(t, pmetric.MetricTypeHistogram, w.Type())
	assert.Equal(t, "s", w.Unit())
	assert.Equal(t, []uint64{2}, w.Histogram().DataPoints().At(0).BucketCounts().AsRaw())
}

// target_info sent in one request describes the resource of later ones.
func TestTargetInfoRemembered(t *testing.T) {
	tr := NewTranslator(Options{})
	_, _ = translateV1(t, tr, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		series1(lbls("target_info", "job", "a", "instance", "i", "cluster", "c1"), 1),
	}})
	md, _ := translateV1(t, tr, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		series1(lbls("up", "job", "a", "instance", "i"), 1),
		series1(lbls("up", "job", "b", "instance", "i"), 1),
	}})
	require.Equal(t, 2, md.ResourceMetrics().Len())
	got, ok := md.ResourceMetrics().At(0).Resource().Attributes().Get("cluster")
	require.True(t, ok)
	assert.Equal(t, "c1", got.Str())
	_, ok = md.ResourceMetrics().At(1).Resource().Attributes().Get("cluster")
	assert.False(t, ok, "another target does not inherit it")
}

// Prometheus shards a family's series over requests. A classic point that
// arrives incomplete (no _count; a summary without _sum) goes on as the
// gauges it arrived as, with the names and label values as sent, so a
// Prometheus downstream gets exactly the source's series; the parts that did
// come together still form a point.
func TestClassicSplitAcrossRequests(t *testing.T) {
	tr := NewTranslator(Options{})
	md, st := translateV1(t, tr, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		series1(lbls("x_bucket", "job", "j", "le", "1.0e-05"), 1),
		series1(lbls("x_bucket", "job", "j", "le", "+Inf"), 4),
		series1(lbls("x_sum", "job", "j"), 2.5),
		series1(lbls("s", "job", "j", "quantile", "0.9"), 0.7),
		series1(lbls("s_count", "job", "j"), 9),
	}})
	golden(t, "v1_split", md)
	assert.Equal(t, 2, st.Split)
	assert.Equal(t, 5, md.DataPointCount())
	ms := metricsByName(t, md)
	assert.NotContains(t, ms, "x", "no histogram without _count")
	assert.Equal(t, pmetric.MetricTypeGauge, ms["s"].Type(), "no summary without _sum: the quantile as a gauge")
	b := ms["x_bucket"]
	require.Equal(t, pmetric.MetricTypeGauge, b.Type())
	require.Equal(t, 2, b.Gauge().DataPoints().Len())
	le, _ := b.Gauge().DataPoints().At(0).Attributes().Get("le")
	assert.Equal(t, "1.0e-05", le.Str(), "the le value as sent, not reformatted")
	assert.Equal(t, 2.5, ms["x_sum"].Gauge().DataPoints().At(0).DoubleValue())
	assert.Equal(t, 9.0, ms["s_count"].Gauge().DataPoints().At(0).DoubleValue())

	// The rest of the family in the next request.
	md, st = translateV1(t, tr, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		series1(lbls("x_count", "job", "j"), 4),
		series1(lbls("x_bucket", "job", "j", "le", "0.5"), 3),
		series1(lbls("s_sum", "job", "j"), 1),
	}})
	assert.Equal(t, 0, st.Split, "without metadata s_sum alone is just a gauge")
	ms = metricsByName(t, md)
	assert.Equal(t, 1.0, ms["s_sum"].Gauge().DataPoints().At(0).DoubleValue())
	require.Equal(t, pmetric.MetricTypeHistogram, ms["x"].Type(), "bucket and _count together form a point")
	assert.Equal(t, []uint64{3, 1}, ms["x"].Histogram().DataPoints().At(0).BucketCounts().AsRaw())
}

type symtab struct {
	syms []string
	idx  map[string]uint32
}

func newSymtab() *symtab { return &symtab{syms: []string{""}, idx: map[string]uint32{"": 0}} }

func (s *symtab) ref(v string) uint32 {
	if i, ok := s.idx[v]; ok {
		return i
	}
	s.syms = append(s.syms, v)
	s.idx[v] = uint32(len(s.syms) - 1)
	return s.idx[v]
}

func (s *symtab) refs(ls []prompb.Label) []uint32 {
	var out []uint32
	for _, l := range ls {
		out = append(out, s.ref(l.Name), s.ref(l.Value))
	}
	return out
}

func TestTranslateV2(t *testing.T) {
	st := newSymtab()
	meta := func(typ writev2.Metadata_MetricType, help, unit string) writev2.Metadata {
		return writev2.Metadata{Type: typ, HelpRef: st.ref(help), UnitRef: st.ref(unit)}
	}
	req := &writev2.Request{}
	add := func(ts writev2.TimeSeries) { req.Timeseries = append(req.Timeseries, ts) }
	job := []string{"job", "api", "instance", "h:9"}
	add(writev2.TimeSeries{
		LabelsRefs: st.refs(lbls("requests_total", append(job, "code", "500")...)),
		Samples:    []writev2.Sample{{Value: 17, Timestamp: ms0, StartTimestamp: ms0 - 60000}},
		Exemplars: []writev2.Exemplar{{
			LabelsRefs: st.refs([]prompb.Label{{Name: "trace_id", Value: "0102030405060708090a0b0c0d0e0f10"}, {Name: "user", Value: "u1"}}),
			Value:      1, Timestamp: ms0 - 5,
		}},
		Metadata: meta(writev2.Metadata_METRIC_TYPE_COUNTER, "Requests.", ""),
	})
	add(writev2.TimeSeries{
		LabelsRefs: st.refs(lbls("duration_seconds_bucket", append(job, "le", "0.25")...)),
		Samples:    []writev2.Sample{{Value: 4, Timestamp: ms0}},
		Metadata:   meta(writev2.Metadata_METRIC_TYPE_HISTOGRAM, "Duration.", "seconds"),
	})
	add(writev2.TimeSeries{
		LabelsRefs: st.refs(lbls("duration_seconds_bucket", append(job, "le", "+Inf")...)),
		Samples:    []writev2.Sample{{Value: 5, Timestamp: ms0}},
		Metadata:   meta(writev2.Metadata_METRIC_TYPE_HISTOGRAM, "Duration.", "seconds"),
	})
	add(writev2.TimeSeries{
		LabelsRefs: st.refs(lbls("duration_seconds_count", job...)),
		Samples:    []writev2.Sample{{Value: 5, Timestamp: ms0, StartTimestamp: ms0 - 120000}},
		Metadata:   meta(writev2.Metadata_METRIC_TYPE_HISTOGRAM, "Duration.", "seconds"),
	})
	// An integer native histogram: buckets at indexes 1,2 then a gap of 3,
	// then 6; one negative bucket at index 0.
	add(writev2.TimeSeries{
		LabelsRefs: st.refs(lbls("size_bytes", job...)),
		Histograms: []writev2.Histogram{{
			Count: &writev2.Histogram_CountInt{CountInt: 12}, Sum: 1000, Schema: 1, ZeroThreshold: 1e-9,
			ZeroCount:      &writev2.Histogram_ZeroCountInt{ZeroCountInt: 2},
			PositiveSpans:  []writev2.BucketSpan{{Offset: 1, Length: 2}, {Offset: 3, Length: 1}},
			PositiveDeltas: []int64{3, 1, -2}, // 3, 4, 2
			NegativeSpans:  []writev2.BucketSpan{{Offset: 0, Length: 1}},
			NegativeDeltas: []int64{1},
			Timestamp:      ms0, StartTimestamp: ms0 - 1000,
		}},
		Metadata: meta(writev2.Metadata_METRIC_TYPE_HISTOGRAM, "Sizes.", "bytes"),
	})
	// A float native histogram, and a stale one in the same series.
	add(writev2.TimeSeries{
		LabelsRefs: st.refs(lbls("ratio", job...)),
		Histograms: []writev2.Histogram{{
			Count: &writev2.Histogram_CountFloat{CountFloat: 3.5}, Sum: 1.5, Schema: 0,
			ZeroCount:      &writev2.Histogram_ZeroCountFloat{ZeroCountFloat: 0.5},
			PositiveSpans:  []writev2.BucketSpan{{Offset: -1, Length: 2}},
			PositiveCounts: []float64{1, 2},
			Timestamp:      ms0,
		}, {
			Count: &writev2.Histogram_CountInt{}, Sum: stale, Timestamp: ms0 + 15000,
		}},
	})
	// A gauge histogram: dropped.
	add(writev2.TimeSeries{
		LabelsRefs: st.refs(lbls("pool", job...)),
		Histograms: []writev2.Histogram{{Count: &writev2.Histogram_CountInt{CountInt: 1}, ResetHint: writev2.Histogram_RESET_HINT_GAUGE, Timestamp: ms0}},
	})
	// A bad series: a label ref past the symbol table.
	add(writev2.TimeSeries{LabelsRefs: []uint32{st.ref(labelName), 9999}, Samples: []writev2.Sample{{Value: 1, Timestamp: ms0}}})
	req.Symbols = st.syms

	md, stats := translateV2(t, NewTranslator(Options{ScopeName: "vigil"}), req)
	golden(t, "v2", md)
	assert.Equal(t, 1, stats.InvalidSeries)
	require.ErrorIs(t, stats.FirstInvalid, ErrInvalidSeries)
	assert.Contains(t, stats.FirstInvalid.Error(), "out of range")
	assert.Equal(t, 1, stats.Dropped)
	assert.Equal(t, 4, stats.WrittenSamples)
	assert.Equal(t, 3, stats.WrittenHistograms)
	assert.Equal(t, 1, stats.WrittenExemplars)

	ms := metricsByName(t, md)
	c := ms["requests_total"].Sum().DataPoints().At(0)
	assert.Equal(t, uint64(ms0-60000)*1e6, uint64(c.StartTimestamp()))
	assert.Equal(t, "0102030405060708090a0b0c0d0e0f10", c.Exemplars().At(0).TraceID().String())
	assert.Equal(t, map[string]any{"user": "u1"}, c.Exemplars().At(0).FilteredAttributes().AsRaw())

	d := ms["duration_seconds"]
	assert.Equal(t, "s", d.Unit())
	dp := d.Histogram().DataPoints().At(0)
	assert.Equal(t, []uint64{4, 1}, dp.BucketCounts().AsRaw())
	assert.Equal(t, uint64(ms0-120000)*1e6, uint64(dp.StartTimestamp()))
	assert.False(t, dp.HasSum(), "no _sum: sum unset")

	e := ms["size_bytes"].ExponentialHistogram().DataPoints().At(0)
	assert.Equal(t, int32(1), e.Scale())
	assert.Equal(t, int32(0), e.Positive().Offset(), "Prometheus index 1 is OTLP index 0")
	assert.Equal(t, []uint64{3, 4, 0, 0, 0, 2}, e.Positive().BucketCounts().AsRaw())
	assert.Equal(t, int32(-1), e.Negative().Offset())
	assert.Equal(t, []uint64{1}, e.Negative().BucketCounts().AsRaw())
	assert.Equal(t, uint64(12), e.Count())
	assert.Equal(t, uint64(2), e.ZeroCount())
	assert.Equal(t, "By", ms["size_bytes"].Unit())

	r := ms["ratio"].ExponentialHistogram().DataPoints()
	require.Equal(t, 2, r.Len())
	assert.Equal(t, []uint64{1, 2}, r.At(0).Positive().BucketCounts().AsRaw())
	assert.Equal(t, int32(-2), r.At(0).Positive().Offset())
	assert.Equal(t, uint64(4), r.At(0).Count(), "float count 3.5 rounds")
	assert.True(t, r.At(1).Flags().NoRecordedValue())
	assert.NotContains(t, ms, "pool")
}

func TestInvalidSeries(t *testing.T) {
	for name, tc := range map[string]struct {
		ts   prompb.TimeSeries
		want string
	}{
		"no name":                   {series1([]prompb.Label{{Name: "job", Value: "a"}}, 1), "no metric name"},
		"bad utf8":                  {series1(lbls("x", "k", "\xff"), 1), "not valid UTF-8"},
		"duplicate label":           {series1([]prompb.Label{{Name: labelName, Value: "x"}, {Name: "a", Value: "1"}, {Name: "a", Value: "2"}}, 1), `duplicate label "a"`},
		"duplicate label, unsorted": {series1([]prompb.Label{{Name: "a", Value: "1"}, {Name: labelName, Value: "x"}, {Name: "a", Value: "2"}}, 1), `duplicate label "a"`},
		"empty label name":          {series1([]prompb.Label{{Name: "", Value: "v"}, {Name: labelName, Value: "x"}}, 1), "empty label name"},
		"bad le":                    {series1(lbls("x_bucket", "le", "high"), 1), `le="high" is not a number`},
		"bad quantile":              {series1(lbls("x", "quantile", "2"), 1), `quantile="2"`},
		"negative time":             {prompb.TimeSeries{Labels: lbls("x"), Samples: []prompb.Sample{{Value: 1, Timestamp: -1}}}, "out of range"},
		"samples and histograms": {prompb.TimeSeries{Labels: lbls("x"), Samples: []prompb.Sample{{Value: 1, Timestamp: 1}},
			Histograms: []prompb.Histogram{{Timestamp: 1}}}, "both float samples and native histograms"},
		"gap bomb": {prompb.TimeSeries{Labels: lbls("x"), Histograms: []prompb.Histogram{{
			Timestamp: 1, Schema: 0, PositiveSpans: []prompb.BucketSpan{{Offset: 0, Length: 1}, {Offset: 2_000_000_000, Length: 1}},
			PositiveDeltas: []int64{1, 0}, Count: &prompb.Histogram_CountInt{CountInt: 2},
		}}}, "more than the 4096 allowed"},
		"span count mismatch": {prompb.TimeSeries{Labels: lbls("x"), Histograms: []prompb.Histogram{{
			Timestamp: 1, PositiveSpans: []prompb.BucketSpan{{Offset: 0, Length: 3}}, PositiveDeltas: []int64{1},
		}}}, "spans hold 3 buckets but 1 counts are given"},
		"negative bucket": {prompb.TimeSeries{Labels: lbls("x"), Histograms: []prompb.Histogram{{
			Timestamp: 1, PositiveSpans: []prompb.BucketSpan{{Offset: 0, Length: 2}}, PositiveDeltas: []int64{1, -2},
		}}}, "bucket count -1 is negative"},
		"bad schema": {prompb.TimeSeries{Labels: lbls("x"), Histograms: []prompb.Histogram{{Timestamp: 1, Schema: 30}}}, "schema 30"},
	} {
		t.Run(name, func(t *testing.T) {
			good := series1(lbls("fine", "job", "a"), 1)
			md, st := translateV1(t, NewTranslator(Options{}), &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{tc.ts, good}})
			require.Equal(t, 1, st.InvalidSeries)
			require.ErrorIs(t, st.FirstInvalid, ErrInvalidSeries)
			assert.Contains(t, st.FirstInvalid.Error(), tc.want)
			assert.Equal(t, 1, md.DataPointCount(), "the valid series still goes through")
			assert.Equal(t, "fine", md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).Name())
		})
	}
}

// Spans can encode large gaps in a few bytes; the request budget stops many
// histograms that each stay under the per-histogram limit.
func TestNativeBudgetPerRequest(t *testing.T) {
	req := &prompb.WriteRequest{}
	for i := range 200 {
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
			Labels: lbls("h", "i", strings.Repeat("x", i%7)+string(rune('a'+i%26))),
			Histograms: []prompb.Histogram{{
				Timestamp: int64(i + 1), PositiveSpans: []prompb.BucketSpan{{Offset: 0, Length: 1}, {Offset: 4000, Length: 1}},
				PositiveDeltas: []int64{1, 0}, Count: &prompb.Histogram_CountInt{CountInt: 2},
			}},
		})
	}
	_, st := translateV1(t, NewTranslator(Options{}), req)
	require.Positive(t, st.InvalidSeries)
	assert.Contains(t, st.FirstInvalid.Error(), "bucket budget")
	assert.Less(t, st.WrittenHistograms, 200)
}

func TestGenCacheBounded(t *testing.T) {
	c := newGenCache[string, int](10)
	for i := range 1000 {
		c.put(strings.Repeat("k", i%50+1), i)
		require.LessOrEqual(t, c.len(), 10)
	}
	c.put("hot", 1)
	for i := range 100 {
		_, ok := c.get("hot")
		require.True(t, ok, "an entry in use survives rotation (round %d)", i)
		c.put(strings.Repeat("z", i+1), i)
	}
}
