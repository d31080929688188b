package edges

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/vigilhq/vigil/connectors/redflagconnector/internal/detect"
)

// scrape builds what the prometheus receiver makes of one scrape of a
// sidecar: a resource per target, cumulative sums and histograms.
type scrape struct {
	md    pmetric.Metrics
	sms   pmetric.ScopeMetrics
	ts    pcommon.Timestamp
	start pcommon.Timestamp // of the points added next (0: none)
}

// scrapeAt is the time of the scrapes newScrape builds (tests set it).
var scrapeAt time.Time

func newScrape(instance string) *scrape {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "kubernetes-pods")
	rm.Resource().Attributes().PutStr("service.instance.id", instance)
	return &scrape{md: md, sms: rm.ScopeMetrics().AppendEmpty(), ts: pcommon.NewTimestampFromTime(scrapeAt)}
}

func (s *scrape) counter(name string, v float64, labels ...string) {
	m := s.sms.Metrics().AppendEmpty()
	m.SetName(name)
	sum := m.SetEmptySum()
	sum.SetIsMonotonic(true)
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	dp := sum.DataPoints().AppendEmpty()
	dp.SetTimestamp(s.ts)
	dp.SetStartTimestamp(s.start)
	dp.SetDoubleValue(v)
	putLabels(dp.Attributes(), labels)
}

func (s *scrape) hist(name string, bounds []float64, counts []uint64, sum float64, labels ...string) {
	m := s.sms.Metrics().AppendEmpty()
	m.SetName(name)
	h := m.SetEmptyHistogram()
	h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	dp := h.DataPoints().AppendEmpty()
	dp.SetTimestamp(s.ts)
	dp.SetStartTimestamp(s.start)
	dp.ExplicitBounds().FromRaw(bounds)
	dp.BucketCounts().FromRaw(counts)
	var n uint64
	for _, c := range counts {
		n += c
	}
	dp.SetCount(n)
	dp.SetSum(sum)
	putLabels(dp.Attributes(), labels)
}

func putLabels(m pcommon.Map, kv []string) {
	for i := 0; i+1 < len(kv); i += 2 {
		m.PutStr(kv[i], kv[i+1])
	}
}

func istio(reporter, src, dst, code, flags string) []string {
	return []string{"reporter", reporter, "source_workload", src + "-v1", "source_canonical_service", src,
		"source_workload_namespace", "shop", "destination_workload", dst + "-v1", "destination_canonical_service", dst,
		"destination_service_name", dst, "destination_workload_namespace", "shop", "response_code", code,
		"response_flags", flags, "grpc_response_status", "", "request_protocol", "http"}
}

func findEdge(b *detect.Batch, caller, callee string) *detect.EdgeDelta {
	for i := range b.Edges {
		if b.Edges[i].Caller == caller && b.Edges[i].Callee == callee {
			return &b.Edges[i]
		}
	}
	return nil
}

func findService(b *detect.Batch, name string) *detect.ServiceDelta {
	for i := range b.Services {
		if b.Services[i].Service == name {
			return &b.Services[i]
		}
	}
	return nil
}

// Counters become per-scrape deltas: the first scrape of a target is a
// baseline, a series new on a known target counts whole, a counter that went
// down (the sidecar restarted) counts from zero.
func TestMeshIstioCounterDeltas(t *testing.T) {
	m := NewMesh(1000)
	t0 := time.Unix(1_000_000, 0)
	run := func(at time.Duration, ok200, err503 float64) *detect.Batch {
		scrapeAt = t0.Add(at)
		s := newScrape("10.0.0.5:15020")
		s.counter("istio_requests_total", ok200, istio("source", "frontend", "cart", "200", "-")...)
		if err503 > 0 {
			s.counter("istio_requests_total", err503, istio("source", "frontend", "cart", "503", "UO")...)
		}
		var b detect.Batch
		require.True(t, m.Metrics(s.md, t0.Add(at), &b))
		return &b
	}

	b := run(0, 1000, 0)
	assert.Nil(t, findEdge(b, "frontend", "cart"), "a target's first scrape is only a baseline")

	b = run(15*time.Second, 1150, 0)
	e := findEdge(b, "frontend", "cart")
	require.NotNil(t, e)
	assert.EqualValues(t, 150, e.Calls)
	assert.Zero(t, e.Errors)
	assert.Equal(t, []detect.Namespace{{Service: "frontend", Name: "shop"}, {Service: "cart", Name: "shop"}}, b.Namespaces)

	// The first 503s make a new series: all of it is this interval's.
	b = run(30*time.Second, 1250, 40)
	e = findEdge(b, "frontend", "cart")
	require.NotNil(t, e)
	assert.EqualValues(t, 140, e.Calls)
	assert.EqualValues(t, 40, e.Errors)
	assert.EqualValues(t, 40, e.Class[detect.ClassCircuitOpen], "UO is a circuit breaker open")

	// The sidecar restarted: its counters start again from zero.
	b = run(45*time.Second, 90, 10)
	e = findEdge(b, "frontend", "cart")
	require.NotNil(t, e)
	assert.EqualValues(t, 100, e.Calls)
	assert.EqualValues(t, 10, e.Errors)
	assert.EqualValues(t, 2, m.Stats().Resets)
	assert.EqualValues(t, 2, m.Stats().Series)
}

// A call reported by both sidecars counts once on the edge; the server
// side's report is the callee's own requests. A pair only the server side
// reports (a caller outside the mesh) counts on the edge from it.
func TestMeshIstioReporters(t *testing.T) {
	m := NewMesh(1000)
	t0 := time.Unix(1_000_000, 0)
	run := func(at time.Duration, n float64) *detect.Batch {
		scrapeAt = t0.Add(at)
		var b detect.Batch
		src := newScrape("10.0.0.5:15020") // frontend's sidecar
		src.counter("istio_requests_total", n, istio("source", "frontend", "cart", "200", "-")...)
		dst := newScrape("10.0.0.9:15020") // cart's sidecar
		dst.counter("istio_requests_total", n, istio("destination", "frontend", "cart", "200", "-")...)
		dst.counter("istio_requests_total", 2*n, istio("destination", "ingress", "cart", "200", "-")...)
		m.Metrics(src.md, t0.Add(at), &b)
		m.Metrics(dst.md, t0.Add(at), &b)
		return &b
	}
	run(0, 100)
	b := run(15*time.Second, 160)
	e := findEdge(b, "frontend", "cart")
	require.NotNil(t, e)
	assert.EqualValues(t, 60, e.Calls, "counted once, from the client side")
	in := findEdge(b, "ingress", "cart")
	require.NotNil(t, in)
	assert.EqualValues(t, 120, in.Calls, "only the server side reports it")
	svc := findService(b, "cart")
	require.NotNil(t, svc)
	assert.EqualValues(t, 180, svc.Calls, "every request cart served")
}

// Envoy's response flags and the codes give the failure class.
func TestMeshOutcomes(t *testing.T) {
	for _, tc := range []struct {
		code, grpc, flags string
		want              detect.Outcome
	}{
		{"200", "", "-", detect.Outcome{Class: detect.ClassOther}},
		{"503", "", "UO", detect.Outcome{Failed: true, Class: detect.ClassCircuitOpen}},
		{"504", "", "UT", detect.Outcome{Failed: true, Class: detect.ClassTimeout, OwnTimeout: true}},
		{"503", "", "UF,URX", detect.Outcome{Failed: true, Class: detect.ClassConnect}},
		{"503", "", "UH", detect.Outcome{Failed: true, Class: detect.ClassCircuitOpen}},
		{"0", "", "DR", detect.Outcome{Cancelled: true}},
		{"503", "", "UC", detect.Outcome{Failed: true, Class: detect.ClassConnect}},
		{"429", "", "RL", detect.Outcome{Failed: true, Class: detect.ClassOverload}},
		{"0", "", "DC", detect.Outcome{Cancelled: true}},
		{"503", "", "-", detect.Outcome{Failed: true, Class: detect.ClassOverload}},
		{"500", "", "-", detect.Outcome{Failed: true, Class: detect.ClassOther}},
		{"404", "", "NR", detect.Outcome{Client4xx: true, Class: detect.ClassOther}},
		{"200", "14", "-", detect.Outcome{Failed: true, Class: detect.ClassOverload}},
		{"200", "4", "-", detect.Outcome{Failed: true, Class: detect.ClassTimeout, OwnTimeout: true}},
		{"200", "1", "-", detect.Outcome{Cancelled: true}},
		{"200", "5", "-", detect.Outcome{Client4xx: true, Class: detect.ClassOther}},
	} {
		attrs := pcommon.NewMap()
		putLabels(attrs, []string{"reporter", "source", "source_workload", "a", "destination_workload", "b",
			"response_code", tc.code, "grpc_response_status", tc.grpc, "response_flags", tc.flags})
		c, ok := parseMeshCall(istioCount, attrs, pcommon.NewMap())
		require.True(t, ok)
		assert.Equal(t, tc.want, c.outcome, "code %s grpc %s flags %s", tc.code, tc.grpc, tc.flags)
	}
}

// Histogram buckets become the detectors' bins, per scrape.
func TestMeshIstioDuration(t *testing.T) {
	m := NewMesh(1000)
	t0 := time.Unix(1_000_000, 0)
	bounds := []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000}
	run := func(at time.Duration, counts []uint64, sum float64) *detect.Batch {
		scrapeAt = t0.Add(at)
		s := newScrape("10.0.0.5:15020")
		s.hist("istio_request_duration_milliseconds", bounds, counts, sum, istio("source", "frontend", "cart", "200", "-")...)
		s.hist("istio_request_duration_milliseconds", bounds, []uint64{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 0,
			istio("source", "frontend", "cart", "0", "DC")...)
		var b detect.Batch
		m.Metrics(s.md, t0.Add(at), &b)
		return &b
	}
	run(0, []uint64{0, 0, 10, 50, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 700)
	b := run(15*time.Second, []uint64{0, 0, 10, 50, 10, 0, 0, 30, 0, 0, 0, 0, 0, 0}, 700+30*170)
	e := findEdge(b, "frontend", "cart")
	require.NotNil(t, e)
	var n uint32
	for i, c := range e.Hist {
		n += c
		if c > 0 { // at the most the bucket's lower bound proves
			assert.LessOrEqual(t, detect.BinUpperMs(i), 100.0)
			assert.Greater(t, detect.BinUpperMs(i), 100.0/math.Sqrt2)
		}
	}
	assert.EqualValues(t, 30, n, "the 30 calls between 100 and 250 ms")
	assert.InDelta(t, 30*170, e.DurMsSum, 1e-6)
}

// A mesh's buckets are coarse: calls that moved from Istio's 10-25 ms bucket
// to its 25-50 ms one may have slowed by a millisecond or by thirty, and
// judging them at the bucket's middle paged on a 16 ms p90 drifting to 26
// (the testbed's tuning seed 20). Only what the buckets prove counts: calls
// that moved past 100 ms are a latency spike, calls that moved into 25-50 ms
// are not.
func TestMeshLatencyJudgedByWhatBucketsProve(t *testing.T) {
	bounds := []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000}
	normal := []uint64{0, 0, 0, 40, 100, 10, 0, 0, 0, 0, 0, 0, 0, 0}
	for _, tc := range []struct {
		name  string
		after []uint64 // per scrape, once the fault starts
		spike bool
	}{
		{"into 25-50 ms", []uint64{0, 0, 0, 40, 45, 65, 0, 0, 0, 0, 0, 0, 0, 0}, false},
		{"past 100 ms", []uint64{0, 0, 0, 40, 60, 5, 0, 45, 0, 0, 0, 0, 0, 0}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, e := NewMesh(1000), detect.New(detect.DefaultConfig())
			t0 := time.Unix(1_000_000, 0)
			cum := make([]uint64, len(normal))
			var spiked bool
			for i := 0; i < 6*20; i++ { // 20 minutes normal, then 10 of the fault
				per := normal
				if i >= 4*20 {
					per = tc.after
				}
				var calls float64
				for j, c := range per {
					cum[j] += c
				}
				for _, c := range cum {
					calls += float64(c)
				}
				at := t0.Add(time.Duration(i) * 15 * time.Second)
				scrapeAt = at
				var b detect.Batch
				for _, side := range []struct{ reporter, instance string }{{"source", "10.0.0.5:15020"}, {"destination", "10.0.0.6:15020"}} {
					s := newScrape(side.instance)
					s.counter("istio_requests_total", calls, istio(side.reporter, "frontend", "cart", "200", "-")...)
					s.hist("istio_request_duration_milliseconds", bounds, cum, 15*calls, istio(side.reporter, "frontend", "cart", "200", "-")...)
					m.Metrics(s.md, at, &b)
				}
				e.Apply(at, &b)
				for _, tr := range e.Evaluate(at) {
					if tr.Alert.Name() == "DependencyLatencySpike" && tr.Alert.State == detect.Firing {
						require.GreaterOrEqual(t, i, 4*20, "a spike before the fault")
						spiked = true
					}
				}
			}
			assert.Equal(t, tc.spike, spiked)
		})
	}
}

// Linkerd's proxy metrics: outbound responses are the workload's calls,
// inbound ones its own requests; a response_total without Linkerd's labels
// is someone else's.
func TestMeshLinkerd(t *testing.T) {
	m := NewMesh(1000)
	t0 := time.Unix(1_000_000, 0)
	run := func(at time.Duration, ok, fail, inb float64) *detect.Batch {
		scrapeAt = t0.Add(at)
		s := newScrape("10.0.0.5:4191")
		s.counter("response_total", ok, "direction", "outbound", "deployment", "web", "namespace", "emojivoto",
			"dst_deployment", "voting", "dst_namespace", "emojivoto", "classification", "success", "status_code", "200")
		s.counter("response_total", fail, "direction", "outbound", "deployment", "web", "namespace", "emojivoto",
			"dst_deployment", "voting", "dst_namespace", "emojivoto", "classification", "failure", "status_code", "200", "grpc_status", "2")
		s.counter("response_total", inb, "direction", "inbound", "deployment", "web", "namespace", "emojivoto",
			"classification", "success", "status_code", "200")
		s.counter("response_total", 5, "code", "200") // an application's own metric of that name
		var b detect.Batch
		m.Metrics(s.md, t0.Add(at), &b)
		return &b
	}
	run(0, 100, 1, 50)
	b := run(10*time.Second, 150, 21, 90)
	e := findEdge(b, "web", "voting")
	require.NotNil(t, e)
	assert.EqualValues(t, 70, e.Calls)
	assert.EqualValues(t, 20, e.Errors)
	svc := findService(b, "web")
	require.NotNil(t, svc)
	assert.EqualValues(t, 40, svc.Calls)
	assert.Len(t, b.Edges, 1)
}

// The series tracked are capped; past the cap new series are dropped and
// counted, and series not seen for ten minutes make room.
func TestMeshSeriesCap(t *testing.T) {
	m := NewMesh(2)
	t0 := time.Unix(1_000_000, 0)
	s := newScrape("10.0.0.5:15020")
	for _, dst := range []string{"a", "b", "c"} {
		s.counter("istio_requests_total", 10, istio("source", "frontend", dst, "200", "-")...)
	}
	var b detect.Batch
	m.Metrics(s.md, t0, &b)
	st := m.Stats()
	assert.Equal(t, 2, st.Series)
	assert.EqualValues(t, 1, st.Dropped)

	s = newScrape("10.0.0.6:15020")
	s.counter("istio_requests_total", 10, istio("source", "cart", "d", "200", "-")...)
	m.Metrics(s.md, t0.Add(11*time.Minute), &b)
	st = m.Stats()
	assert.Equal(t, 1, st.Series, "the stale series were swept")
	assert.EqualValues(t, 1, st.Dropped)
}

// The prometheus receiver marks a series that left its target with a stale
// point (no recorded value, NaN): it is no call, and the series' count goes
// on from its last value when it comes back.
func TestMeshStaleMarkers(t *testing.T) {
	m := NewMesh(1000)
	t0 := time.Unix(1_000_000, 0)
	bounds := []float64{1, 10, 100}
	run := func(at time.Duration, n float64, stale bool) *detect.Batch {
		scrapeAt = t0.Add(at)
		s := newScrape("10.0.0.5:15020")
		s.counter("istio_requests_total", n, istio("source", "frontend", "cart", "200", "-")...)
		s.hist("istio_request_duration_milliseconds", bounds, []uint64{0, uint64(n), 0, 0}, 5*n, istio("source", "frontend", "cart", "200", "-")...)
		if stale {
			ms := s.sms.Metrics()
			c := ms.At(0).Sum().DataPoints().At(0)
			c.SetDoubleValue(math.NaN())
			c.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
			h := ms.At(1).Histogram().DataPoints().At(0)
			h.BucketCounts().FromRaw(nil)
			h.ExplicitBounds().FromRaw(nil)
			h.SetCount(0)
			h.SetSum(0)
			h.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
		}
		var b detect.Batch
		m.Metrics(s.md, t0.Add(at), &b)
		return &b
	}
	run(0, 100, false)
	b := run(15*time.Second, 0, true)
	assert.Nil(t, findEdge(b, "frontend", "cart"), "a stale marker is no call")
	b = run(30*time.Second, 130, false)
	e := findEdge(b, "frontend", "cart")
	require.NotNil(t, e)
	assert.EqualValues(t, 30, e.Calls)
	var n uint32
	for _, c := range e.Hist {
		n += c
	}
	assert.EqualValues(t, 30, n)
	assert.Zero(t, m.Stats().Resets)
}

// A series that only looks new is a baseline, not calls of this interval:
// the second half of a target's first scrape when a batch split it, or a
// series let in again under the cap. What tells them apart from a series
// Envoy just created is its start time (the prometheus receiver's).
func TestMeshSeriesThatOnlyLookNew(t *testing.T) {
	m := NewMesh(1000)
	t0 := time.Unix(1_000_000, 0)
	long := pcommon.NewTimestampFromTime(t0.Add(-24 * time.Hour))
	scrapeAt = t0
	half := func(dst string, v float64) *scrape {
		s := newScrape("10.0.0.5:15020")
		s.start = long
		s.counter("istio_requests_total", v, istio("source", "frontend", dst, "200", "-")...)
		return s
	}
	var b detect.Batch
	m.Metrics(half("cart", 5e5).md, t0, &b)
	m.Metrics(half("checkout", 7e5).md, t0, &b) // the same scrape, split
	assert.Empty(t, b.Edges, "a target's first scrape is a baseline, in however many batches")

	scrapeAt = t0.Add(15 * time.Second)
	s := half("cart", 5e5+10)
	s.counter("istio_requests_total", 7e5+20, istio("source", "frontend", "checkout", "200", "-")...)
	s.start = pcommon.NewTimestampFromTime(t0.Add(14 * time.Second)) // Envoy created it since
	s.counter("istio_requests_total", 3, istio("source", "frontend", "checkout", "503", "-")...)
	s.start = long // a series long running, seen for the first time
	s.counter("istio_requests_total", 9e5, istio("source", "frontend", "payments", "200", "-")...)
	b = detect.Batch{}
	m.Metrics(s.md, t0.Add(15*time.Second), &b)
	require.NotNil(t, findEdge(&b, "frontend", "cart"))
	assert.EqualValues(t, 10, findEdge(&b, "frontend", "cart").Calls)
	co := findEdge(&b, "frontend", "checkout")
	require.NotNil(t, co)
	assert.EqualValues(t, 23, co.Calls)
	assert.EqualValues(t, 3, co.Errors)
	assert.Nil(t, findEdge(&b, "frontend", "payments"))
}

// Without start times (the prometheus receiver sets none for Envoy's and
// Linkerd's counters): a series refused at the cap and let in later is a
// baseline, not its whole life counted at once; and a target's first scrape
// whose points carry different timestamps is a baseline throughout.
func TestMeshSeriesWithoutStartTime(t *testing.T) {
	m := NewMesh(1)
	t0 := time.Unix(1_000_000, 0)
	one := func(at time.Duration, dst string, v float64) *detect.Batch {
		scrapeAt = t0.Add(at)
		s := newScrape("10.0.0.5:15020")
		s.counter("istio_requests_total", v, istio("source", "frontend", dst, "200", "-")...)
		if dst == "cart" {
			s.counter("istio_requests_total", 5e5, istio("source", "frontend", "payments", "200", "-")...)
		}
		var b detect.Batch
		m.Metrics(s.md, t0.Add(at), &b)
		return &b
	}
	one(0, "cart", 100) // cart kept, payments refused at the cap
	assert.EqualValues(t, 1, m.Stats().Dropped)
	b := one(15*time.Second, "cart", 130)
	require.NotNil(t, findEdge(b, "frontend", "cart"))
	assert.EqualValues(t, 30, findEdge(b, "frontend", "cart").Calls)
	// cart goes away; eleven minutes later payments is let in: a baseline.
	b = one(11*time.Minute, "payments", 9e5)
	assert.Nil(t, findEdge(b, "frontend", "payments"), "a series let in again under the cap counted whole")
	b = one(11*time.Minute+15*time.Second, "payments", 9e5+12)
	require.NotNil(t, findEdge(b, "frontend", "payments"))
	assert.EqualValues(t, 12, findEdge(b, "frontend", "payments").Calls)

	// A first scrape whose points carry two timestamps.
	m = NewMesh(100)
	scrapeAt = t0
	s := newScrape("10.0.0.7:9090")
	s.counter("istio_requests_total", 7, istio("source", "web", "a", "200", "-")...)
	s.ts = pcommon.NewTimestampFromTime(t0.Add(time.Second))
	s.counter("istio_requests_total", 9e6, istio("source", "web", "b", "200", "-")...)
	var fb detect.Batch
	m.Metrics(s.md, t0, &fb)
	assert.Empty(t, fb.Edges)
}
