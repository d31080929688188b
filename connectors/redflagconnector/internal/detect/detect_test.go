package detect

import (
	"math"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBinsAndQuantiles(t *testing.T) {
	// Even bins end at powers of two milliseconds: the exported bucket bounds.
	for i := 2; i < NumBins-1; i += 2 {
		require.InDelta(t, math.Exp2(float64(i-2)/2), BinUpperMs(i), 1e-9)
	}
	require.Equal(t, 0, BinOf(0))
	require.Equal(t, 0, BinOf(math.NaN()))
	require.Equal(t, 2, BinOf(1))
	require.Equal(t, 3, BinOf(1.2))
	require.Equal(t, NumBins-1, BinOf(1e9))
	// A duration equal to an even bin's upper bound (a power of two, an
	// exported bucket bound) is in that bin, the next float above it in the
	// next one: the exported buckets are le bounds.
	for i := 2; i < NumBins-1; i += 2 {
		u := BinUpperMs(i)
		require.Equal(t, i, BinOf(u), "BinOf(%v)", u)
		require.Equal(t, i+1, BinOf(math.Nextafter(u, math.Inf(1))), "just above %v", u)
	}
	for _, ms := range []float64{0.7, 3, 17, 250, 999, 5000} {
		b := BinOf(ms)
		require.LessOrEqual(t, ms, BinUpperMs(b))
		require.Greater(t, ms, BinUpperMs(b-1))
	}

	var c Counts
	for i := 0; i < 980; i++ {
		c.Observe(10, Outcome{})
	}
	for i := 0; i < 20; i++ {
		c.Observe(1000, Outcome{Failed: true, Class: ClassTimeout, OwnTimeout: true})
	}
	// Within a bin's width (a factor of sqrt 2).
	assert.InDelta(t, 10, c.Quantile(0.5), 10*0.42)
	assert.InDelta(t, 1000, c.Quantile(0.99), 1000*0.42)
	assert.InDelta(t, 0.02, c.ShareAtLeast(800), 0.01)
	assert.InDelta(t, 1.0, c.ShareAtLeast(0.1), 1e-9)
	assert.Equal(t, uint32(20), c.TimeoutN)
	assert.InDelta(t, 1000, float64(c.TimeoutMsSum)/float64(c.TimeoutN), 1e-3)
}

func TestSignificance(t *testing.T) {
	// 3 errors in 50 calls against a 0.1% baseline: possible by chance with a
	// real rate a little above it; 10 in 50 is not.
	bits := 14 * math.Ln2
	assert.False(t, significant(3, 50, 0.001, bits))
	assert.True(t, significant(10, 50, 0.001, bits))
	// A steady 2% edge erroring at 2.5% is not a spike, however many calls.
	assert.False(t, significant(250, 10000, 0.02, bits))
	assert.True(t, significant(600, 10000, 0.02, bits))
	assert.False(t, significant(0, 100, 0.01, bits))
	assert.False(t, poissonSignificant(12, 10, bits))
	assert.True(t, poissonSignificant(60, 10, bits))
}

func TestTemplate(t *testing.T) {
	for in, want := range map[string]string{
		"card declined for order 123456":                               "card declined for order <*>",
		"upstream timeout calling payments.shop.svc:8080 after 2000ms": "upstream timeout calling <*> after <*>",
		"user 4f1e2d3c-0000-4a5b-8c9d-0123456789ab not found":          "user <*> not found",
		"  spaces   collapse ":                                         "spaces collapse",
		"":                                                             "",
	} {
		assert.Equal(t, want, Template(in), in)
	}
	long := "a b c d e f g h i j k l m n o p"
	assert.Equal(t, "a b c d e f g h i j k l", Template(long))
}

// The bound: all state per edge within 8 KB.
func TestEdgeStateBounded(t *testing.T) {
	require.LessOrEqual(t, int(unsafe.Sizeof(edge{})), 8<<10)
}

func TestMaxEdgesOverflowCounted(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxEdges = 3
	e := New(cfg)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var b Batch
	for _, callee := range []string{"a", "b", "c", "d", "e"} {
		d := EdgeDelta{Caller: "x", Callee: callee}
		d.Observe(5, Outcome{})
		b.Edges = append(b.Edges, d)
	}
	e.Apply(now, &b)
	e.Evaluate(now)
	st := e.Stats()
	require.Equal(t, 3, st.Edges)
	require.Equal(t, uint64(2), st.EdgesOverflow)
	// Idle edges expire and make room.
	later := now.Add(cfg.IdleExpiry + time.Minute)
	e.Evaluate(later)
	require.Equal(t, 0, e.Stats().Edges)
	require.Equal(t, uint64(3), e.Stats().EdgesExpired)
}

func TestResolveAliases(t *testing.T) {
	e := New(DefaultConfig())
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := Batch{
		Services: []ServiceDelta{{Service: "payments"}},
		Claims:   []Claim{{Name: "10.0.0.7:8443", Service: "bank-adapter"}},
	}
	e.Apply(now, &b)
	for in, want := range map[string]string{
		"payments":                        "payments",
		"payments.shop.svc.cluster.local": "payments",
		"payments.shop.svc":               "payments",
		"payments.shop":                   "payments",
		"payments:8080":                   "payments",
		"payments.example.com":            "payments.example.com",
		"10.0.0.7:8443":                   "bank-adapter",
		"inventory-db":                    "inventory-db",
	} {
		assert.Equal(t, want, e.resolve(in), in)
	}
}

// The latency test fits its counts: three calls a minute that all got slow
// are enough against a long history, one slow call among three is not, a
// busy edge needs its slow share to be more than noise, and a distribution
// that shifted as a whole counts even when it stays under twice its p90.
func TestJudgeSlow(t *testing.T) {
	cfg := DefaultConfig().LatencySpike
	bits := 14 * math.Ln2
	normal := func(n int, ms float64) *baseHist {
		var b baseHist
		var h Hist
		for i := 0; i < n; i++ {
			h[BinOf(ms*(0.7+0.6*float64(i%10)/10))]++
		}
		b.add(&h, 1)
		return &b
	}
	recent := func(pairs ...float64) *Hist {
		var h Hist
		for i := 0; i+1 < len(pairs); i += 2 {
			h[BinOf(pairs[i+1])] += uint32(pairs[i])
		}
		return &h
	}
	for _, c := range []struct {
		name string
		base *baseHist
		hist *Hist
		slow bool
	}{
		{"three of three slow, quiet edge", normal(200, 20), recent(3, 400), true},
		{"one of three slow", normal(200, 20), recent(2, 20, 1, 400), false},
		{"two of two slow: too few", normal(200, 20), recent(2, 400), false},
		{"no history", normal(10, 20), recent(30, 400), false},
		{"busy edge, 5% slow", normal(5000, 20), recent(570, 20, 30, 400), false},
		{"busy edge, 40% slow", normal(5000, 20), recent(360, 20, 240, 400), true},
		{"whole distribution +60% of 500 ms", normal(5000, 500), recent(600, 800), true},
		{"whole distribution +3 ms of 5 ms", normal(5000, 5), recent(600, 8), false},
	} {
		r := judgeSlow(c.hist, c.base, cfg, bits, false)
		assert.Equal(t, c.slow, r.slow, "%s: %+v", c.name, r)
	}
}

// Edges whose spans wrap each other in a cycle (a misbehaving
// instrumentation) are followed a few hops, never forever.
func TestWrapCycle(t *testing.T) {
	e := New(DefaultConfig())
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 60; i++ {
		now = now.Add(BucketWidth)
		var b Batch
		for _, p := range [][2]string{{"a", "b"}, {"b", "c"}, {"c", "a"}} {
			d := EdgeDelta{Caller: "s", Callee: p[0], Wraps: p[1]}
			for j := 0; j < 20; j++ {
				d.Observe(5, Outcome{Failed: i >= 30})
			}
			b.Edges = append(b.Edges, d)
		}
		e.Apply(now.Add(-time.Second), &b)
		e.Evaluate(now)
	}
	require.NotEmpty(t, e.Alerts(), "the failing edges still alert")
}
