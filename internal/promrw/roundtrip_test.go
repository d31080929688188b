package promrw

import (
	"sort"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	prw "github.com/open-telemetry/opentelemetry-collector-contrib/pkg/translator/prometheusremotewrite"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// The round trip: OTLP metrics of every kind go through the upstream
// collector's OTLP -> remote-write translator (the one behind the
// prometheus_remote_write exporter), onto the wire (protobuf + snappy), and
// back through this package. What comes out must carry the same types,
// values, attributes, resource and scope as what went in.

var (
	t0    = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	start = t0.Add(-time.Hour)
)

func sourceMetrics() pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	ra := rm.Resource().Attributes()
	ra.PutStr("service.namespace", "eu")
	ra.PutStr("service.name", "shop")
	ra.PutStr("service.instance.id", "10.0.0.1:9100")
	ra.PutStr("host.name", "node-1")
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName("shoplib")
	sm.Scope().SetVersion("1.2.3")

	ts := pcommon.NewTimestampFromTime(t0)
	st := pcommon.NewTimestampFromTime(start)

	g := sm.Metrics().AppendEmpty()
	g.SetName("queue_depth")
	g.SetDescription("Items waiting.")
	gp := g.SetEmptyGauge().DataPoints().AppendEmpty()
	gp.SetTimestamp(ts)
	gp.SetDoubleValue(7)
	gp.Attributes().PutStr("region", "eu")
	stale := g.Gauge().DataPoints().AppendEmpty()
	stale.SetTimestamp(ts)
	stale.Attributes().PutStr("region", "us")
	stale.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))

	c := sm.Metrics().AppendEmpty()
	c.SetName("orders")
	c.SetDescription("Orders placed.")
	cs := c.SetEmptySum()
	cs.SetIsMonotonic(true)
	cs.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	cp := cs.DataPoints().AppendEmpty()
	cp.SetTimestamp(ts)
	cp.SetStartTimestamp(st)
	cp.SetDoubleValue(42)
	cp.Attributes().PutStr("region", "eu")
	ex := cp.Exemplars().AppendEmpty()
	ex.SetDoubleValue(3)
	ex.SetTimestamp(ts)
	ex.SetTraceID(pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	ex.SetSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, 8})

	u := sm.Metrics().AppendEmpty()
	u.SetName("temperature_delta")
	us := u.SetEmptySum()
	us.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	up := us.DataPoints().AppendEmpty()
	up.SetTimestamp(ts)
	up.SetDoubleValue(-3)

	h := sm.Metrics().AppendEmpty()
	h.SetName("latency")
	h.SetUnit("s")
	h.SetDescription("Request latency.")
	hh := h.SetEmptyHistogram()
	hh.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	hp := hh.DataPoints().AppendEmpty()
	hp.SetTimestamp(ts)
	hp.SetStartTimestamp(st)
	hp.SetCount(10)
	hp.SetSum(4.5)
	hp.ExplicitBounds().FromRaw([]float64{0.1, 1})
	hp.BucketCounts().FromRaw([]uint64{3, 6, 1})
	hp.Attributes().PutStr("route", "/buy")

	s := sm.Metrics().AppendEmpty()
	s.SetName("rpc_duration")
	sp := s.SetEmptySummary().DataPoints().AppendEmpty()
	sp.SetTimestamp(ts)
	sp.SetStartTimestamp(st)
	sp.SetCount(5)
	sp.SetSum(7)
	for _, q := range [][2]float64{{0.5, 1}, {0.9, 2}} {
		qv := sp.QuantileValues().AppendEmpty()
		qv.SetQuantile(q[0])
		qv.SetValue(q[1])
	}

	e := sm.Metrics().AppendEmpty()
	e.SetName("payload_size")
	eh := e.SetEmptyExponentialHistogram()
	eh.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	ep := eh.DataPoints().AppendEmpty()
	ep.SetTimestamp(ts)
	ep.SetStartTimestamp(st)
	ep.SetScale(2)
	ep.SetCount(9)
	ep.SetSum(120)
	ep.SetZeroCount(1)
	ep.Positive().SetOffset(3)
	ep.Positive().BucketCounts().FromRaw([]uint64{1, 0, 0, 2, 3})
	ep.Negative().SetOffset(-2)
	ep.Negative().BucketCounts().FromRaw([]uint64{2})
	return md
}

func encodeV1(t testing.TB, md pmetric.Metrics) []byte {
	t.Helper()
	settings := prw.Settings{AddMetricSuffixes: true, SendMetadata: true}
	tss, err := prw.FromMetrics(md, settings)
	require.NoError(t, err)
	meta, err := prw.OtelMetricsToMetadata(md, settings)
	require.NoError(t, err)
	req := &prompb.WriteRequest{}
	keys := make([]string, 0, len(tss))
	for k := range tss {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		req.Timeseries = append(req.Timeseries, *tss[k])
	}
	for _, m := range meta {
		req.Metadata = append(req.Metadata, *m)
	}
	raw, err := req.Marshal()
	require.NoError(t, err)
	return snappy.Encode(nil, raw)
}

func encodeV2(t testing.TB, md pmetric.Metrics) []byte {
	t.Helper()
	tss, syms, err := prw.FromMetricsV2(md, prw.Settings{AddMetricSuffixes: true})
	require.NoError(t, err)
	req := &writev2.Request{Symbols: syms.Symbols()}
	keys := make([]string, 0, len(tss))
	for k := range tss {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		req.Timeseries = append(req.Timeseries, *tss[k])
	}
	raw, err := req.Marshal()
	require.NoError(t, err)
	return snappy.Encode(nil, raw)
}

// decodeWire runs the receiver's decode path on a compressed body.
func decodeWire(t testing.TB, tr *Translator, v Version, body []byte) (pmetric.Metrics, Stats) {
	t.Helper()
	payload, err := Decompress(nil, body, 32<<20)
	require.NoError(t, err)
	r := GetRequest()
	defer PutRequest(r)
	require.NoError(t, r.Decode(v, payload))
	return tr.Translate(r)
}

// metricsByName indexes the output; a name must appear once.
func metricsByName(t testing.TB, md pmetric.Metrics) map[string]pmetric.Metric {
	t.Helper()
	out := map[string]pmetric.Metric{}
	for i := 0; i < md.ResourceMetrics().Len(); i++ {
		sms := md.ResourceMetrics().At(i).ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				m := ms.At(k)
				_, dup := out[m.Name()]
				require.False(t, dup, "metric %s appears twice", m.Name())
				out[m.Name()] = m
			}
		}
	}
	return out
}

func TestRoundTripEveryKind(t *testing.T) {
	for _, v := range []Version{V1, V2} {
		t.Run(v.String(), func(t *testing.T) {
			tr := NewTranslator(Options{ScopeName: "vigil"})
			var body []byte
			if v == V1 {
				body = encodeV1(t, sourceMetrics())
			} else {
				body = encodeV2(t, sourceMetrics())
			}
			md, st := decodeWire(t, tr, v, body)
			require.Zero(t, st.InvalidSeries, "%v", st.FirstInvalid)

			require.Equal(t, 1, md.ResourceMetrics().Len())
			rm := md.ResourceMetrics().At(0)
			attrs := rm.Resource().Attributes().AsRaw()
			assert.Equal(t, "shop", attrs["service.name"])
			assert.Equal(t, "eu", attrs["service.namespace"])
			assert.Equal(t, "10.0.0.1:9100", attrs["service.instance.id"])
			// target_info labels come back as resource attributes, with the
			// names Prometheus gave them (the spec forbids renaming).
			assert.Equal(t, "node-1", attrs["host_name"])

			require.Equal(t, 1, rm.ScopeMetrics().Len())
			assert.Equal(t, "shoplib", rm.ScopeMetrics().At(0).Scope().Name())
			assert.Equal(t, "1.2.3", rm.ScopeMetrics().At(0).Scope().Version())

			ms := metricsByName(t, md)
			require.Contains(t, ms, "queue_depth")
			g := ms["queue_depth"]
			require.Equal(t, pmetric.MetricTypeGauge, g.Type())
			assert.Equal(t, "Items waiting.", g.Description())
			require.Equal(t, 2, g.Gauge().DataPoints().Len())
			byRegion := map[string]pmetric.NumberDataPoint{}
			for i := 0; i < 2; i++ {
				dp := g.Gauge().DataPoints().At(i)
				r, _ := dp.Attributes().Get("region")
				byRegion[r.Str()] = dp
				assert.Equal(t, 1, dp.Attributes().Len(), "only region is a point attribute: %v", dp.Attributes().AsRaw())
				assert.Equal(t, pcommon.NewTimestampFromTime(t0), dp.Timestamp())
			}
			assert.Equal(t, 7.0, byRegion["eu"].DoubleValue())
			assert.True(t, byRegion["us"].Flags().NoRecordedValue(), "staleness marker -> no recorded value")

			require.Contains(t, ms, "orders_total")
			c := ms["orders_total"]
			require.Equal(t, pmetric.MetricTypeSum, c.Type())
			assert.True(t, c.Sum().IsMonotonic())
			assert.Equal(t, pmetric.AggregationTemporalityCumulative, c.Sum().AggregationTemporality())
			cp := c.Sum().DataPoints().At(0)
			assert.Equal(t, 42.0, cp.DoubleValue())
			if v == V2 {
				assert.Equal(t, pcommon.NewTimestampFromTime(start), cp.StartTimestamp(), "2.0 start timestamp -> start time")
			}
			require.Equal(t, 1, cp.Exemplars().Len())
			ex := cp.Exemplars().At(0)
			assert.Equal(t, 3.0, ex.DoubleValue())
			assert.Equal(t, pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, ex.TraceID())
			assert.Equal(t, pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, 8}, ex.SpanID())

			require.Contains(t, ms, "temperature_delta")
			assert.Equal(t, pmetric.MetricTypeGauge, ms["temperature_delta"].Type(),
				"a non-monotonic sum arrives as a Prometheus gauge")
			assert.Equal(t, -3.0, ms["temperature_delta"].Gauge().DataPoints().At(0).DoubleValue())

			require.Contains(t, ms, "latency_seconds")
			h := ms["latency_seconds"]
			require.Equal(t, pmetric.MetricTypeHistogram, h.Type())
			assert.Equal(t, "s", h.Unit())
			assert.Equal(t, "Request latency.", h.Description())
			require.Equal(t, 1, h.Histogram().DataPoints().Len())
			hp := h.Histogram().DataPoints().At(0)
			assert.Equal(t, []float64{0.1, 1}, hp.ExplicitBounds().AsRaw())
			assert.Equal(t, []uint64{3, 6, 1}, hp.BucketCounts().AsRaw())
			assert.Equal(t, uint64(10), hp.Count())
			assert.Equal(t, 4.5, hp.Sum())
			assert.Equal(t, map[string]any{"route": "/buy"}, hp.Attributes().AsRaw())
			if v == V2 {
				assert.Equal(t, pcommon.NewTimestampFromTime(start), hp.StartTimestamp())
			}

			require.Contains(t, ms, "rpc_duration")
			s := ms["rpc_duration"]
			require.Equal(t, pmetric.MetricTypeSummary, s.Type())
			sp := s.Summary().DataPoints().At(0)
			assert.Equal(t, uint64(5), sp.Count())
			assert.Equal(t, 7.0, sp.Sum())
			require.Equal(t, 2, sp.QuantileValues().Len())
			assert.Equal(t, 0.5, sp.QuantileValues().At(0).Quantile())
			assert.Equal(t, 1.0, sp.QuantileValues().At(0).Value())
			assert.Equal(t, 0.9, sp.QuantileValues().At(1).Quantile())
			assert.Equal(t, 2.0, sp.QuantileValues().At(1).Value())

			require.Contains(t, ms, "payload_size")
			e := ms["payload_size"]
			require.Equal(t, pmetric.MetricTypeExponentialHistogram, e.Type())
			ep := e.ExponentialHistogram().DataPoints().At(0)
			assert.Equal(t, int32(2), ep.Scale())
			assert.Equal(t, uint64(9), ep.Count())
			assert.Equal(t, 120.0, ep.Sum())
			assert.Equal(t, uint64(1), ep.ZeroCount())
			assert.Equal(t, int32(3), ep.Positive().Offset())
			assert.Equal(t, []uint64{1, 0, 0, 2, 3}, ep.Positive().BucketCounts().AsRaw())
			assert.Equal(t, int32(-2), ep.Negative().Offset())
			assert.Equal(t, []uint64{2}, ep.Negative().BucketCounts().AsRaw())

			assert.NotContains(t, ms, "target_info")
			assert.NotContains(t, ms, "otel_scope_info")
			if v == V2 {
				assert.Equal(t, st.Samples, st.WrittenSamples)
				assert.Equal(t, 1, st.WrittenHistograms)
				assert.Equal(t, 1, st.WrittenExemplars)
			}
		})
	}
}

// Explicit histograms sent as native histograms with custom buckets (NHCB,
// schema -53) come back as explicit histograms.
func TestRoundTripCustomBuckets(t *testing.T) {
	md := sourceMetrics()
	tss, syms, err := prw.FromMetricsV2(md, prw.Settings{AddMetricSuffixes: true, ConvertExplicitHistogramsToNHCB: true})
	require.NoError(t, err)
	req := &writev2.Request{Symbols: syms.Symbols()}
	for _, ts := range tss {
		req.Timeseries = append(req.Timeseries, *ts)
	}
	raw, err := req.Marshal()
	require.NoError(t, err)
	out, st := decodeWire(t, NewTranslator(Options{}), V2, snappy.Encode(nil, raw))
	require.Zero(t, st.InvalidSeries, "%v", st.FirstInvalid)
	ms := metricsByName(t, out)
	var h pmetric.Metric
	for name, m := range ms {
		if m.Type() == pmetric.MetricTypeHistogram {
			h = m
			t.Logf("NHCB histogram arrived as %q", name)
		}
	}
	require.Equal(t, pmetric.MetricTypeHistogram, h.Type())
	hp := h.Histogram().DataPoints().At(0)
	assert.Equal(t, []float64{0.1, 1}, hp.ExplicitBounds().AsRaw())
	assert.Equal(t, []uint64{3, 6, 1}, hp.BucketCounts().AsRaw())
	assert.Equal(t, uint64(10), hp.Count())
	assert.Equal(t, 4.5, hp.Sum())
	assert.Equal(t, 2, st.WrittenHistograms, "the NHCB and the exponential histogram")
}

func TestDecompressRefusesBombBeforeDecoding(t *testing.T) {
	big := make([]byte, 8<<20) // zeros: compresses to a few hundred KiB
	body := snappy.Encode(nil, big)
	require.Less(t, len(body), 1<<20)
	_, err := Decompress(nil, body, 1<<20)
	require.ErrorIs(t, err, ErrTooLarge)
	require.ErrorContains(t, err, "decoded size 8388608 bytes exceeds max_decompressed_size 1048576")

	_, err = Decompress(nil, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 1<<20)
	require.ErrorIs(t, err, ErrMalformed)
	_, err = Decompress(nil, append(snappy.Encode(nil, []byte("hello world, hello")), 0x01), 1<<20)
	require.ErrorIs(t, err, ErrMalformed)
}

func TestParseContentType(t *testing.T) {
	for ct, want := range map[string]Version{
		"":                       V1,
		"application/x-protobuf": V1,
		"application/x-protobuf;proto=prometheus.WriteRequest":         V1,
		"application/x-protobuf; proto=io.prometheus.write.v2.Request": V2,
		"application/x-protobuf;proto=io.prometheus.write.v2.Request":  V2,
	} {
		got, err := ParseContentType(ct)
		require.NoError(t, err, ct)
		assert.Equal(t, want, got, ct)
	}
	for _, ct := range []string{"application/json", "text/plain", "application/x-protobuf;proto=io.prometheus.write.v3.Request", "application/x-protobuf;junk"} {
		_, err := ParseContentType(ct)
		require.ErrorIs(t, err, ErrUnsupportedMediaType, ct)
	}
	require.NoError(t, CheckEncoding("snappy"))
	require.NoError(t, CheckEncoding(""))
	require.ErrorIs(t, CheckEncoding("gzip"), ErrUnsupportedMediaType)
}
