package policy

import (
	"encoding/hex"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigilhq/vigil/processors/tailsamplingprocessor/internal/store"
)

func newBuilder() *Builder {
	return &Builder{C: &Compiler{}, Set: componenttest.NewNopTelemetrySettings()}
}

// run builds one policy and decides on a trace made of the given spans, all in
// one resource, in order: the same path the processor takes.
func run(t *testing.T, cfg Config, res map[string]any, spans ...func(ptrace.Span)) Decision {
	t.Helper()
	b := newBuilder()
	e, err := b.build(&cfg, levelTop)
	require.NoError(t, err)
	rs := ptrace.NewResourceSpans()
	require.NoError(t, rs.Resource().Attributes().FromRaw(res))
	ss := rs.ScopeSpans().AppendEmpty()
	var sum store.Summary
	sum.Matched |= b.C.ResourceBits(rs.Resource().Attributes())
	for _, f := range spans {
		sp := ss.Spans().AppendEmpty()
		f(sp)
		m, e := b.C.SpanBits(sp, ss, rs)
		b.C.MergeSpan(&sum, m, e)
		b.C.ObserveTimes(&sum, uint64(sp.StartTimestamp()), uint64(sp.EndTimestamp()))
		sum.SpanCount++
		switch sp.Status().Code() {
		case ptrace.StatusCodeError:
			sum.Status |= store.StatusError
		case ptrace.StatusCodeOk:
			sum.Status |= store.StatusOK
		default:
			sum.Status |= store.StatusUnset
		}
	}
	return e.Evaluate(&Trace{ID: [16]byte{1}, Sum: &sum, Now: time.Now()})
}

func attrs(kv map[string]any) func(ptrace.Span) {
	return func(sp ptrace.Span) { _ = sp.Attributes().FromRaw(kv) }
}

func times(startMs, endMs int64) func(ptrace.Span) {
	return func(sp ptrace.Span) {
		sp.SetStartTimestamp(pcommon.Timestamp(1_700_000_000_000_000_000 + startMs*1e6))
		sp.SetEndTimestamp(pcommon.Timestamp(1_700_000_000_000_000_000 + endMs*1e6))
	}
}

func TestProbabilisticMatchesUpstreamVectors(t *testing.T) {
	// Hash and threshold vectors computed with upstream's code (spec §9).
	for _, c := range []struct {
		salt, id string
		hash     uint64
	}{
		{"default-hash-seed", "00000000000000000000000000000000", 0xe19536eed1bbac3d},
		{"default-hash-seed", "0102030405060708090a0b0c0d0e0f10", 0xdbcf64d5420f4cad},
		{"default-hash-seed", "4bf92f3577b34da6a3ce929d0e0e4736", 0xa54533ba2e4970b5},
		{"custom-salt", "ffffffffffffffffffffffffffffffff", 0xbc3cd541e27c3ad5},
		{"custom-salt", "1234567890abcdef1234567890abcdef", 0x82b5f24a7daeb26d},
	} {
		id, _ := hex.DecodeString(c.id)
		assert.Equal(t, c.hash, fnv1a([]byte(c.salt), id), "%s %s", c.salt, c.id)
	}
	for pct, want := range map[float64]uint64{
		0: 0, 0.1: 0x004189374bc6a7ef, 1: 0x028f5c28f5c28f5f, 10: 0x19999999999999ff, 25: 0x3fffffffffffffff,
		33.3: 0x553f7ced91686fff, 50: 0x7fffffffffffffff, 99.9: 0xffbe76c8b4395fff, 100: 0xffffffffffffffff,
		150: 0xffffffffffffffff, -1: 0,
	} {
		assert.Equal(t, want, threshold(pct/100), "%v%%", pct)
	}
	p, err := buildProbabilistic(nil, &Config{Probabilistic: &ProbabilisticCfg{SamplingPercentage: 10}}, levelTop)
	require.NoError(t, err)
	sampled := func(h string) bool {
		var id [16]byte
		b, _ := hex.DecodeString(h)
		copy(id[:], b)
		return p.Evaluate(&Trace{ID: id, Sum: &store.Summary{}}) == Sampled
	}
	assert.True(t, sampled("ffffffffffffffffffffffffffffffff"))
	assert.True(t, sampled("1234567890abcdef1234567890abcdef"))
	assert.False(t, sampled("00000000000000000000000000000000"))
	assert.False(t, sampled("0102030405060708090a0b0c0d0e0f10"))
}

func TestLatencyPrefixSemantics(t *testing.T) {
	lat := func(th, up int64) Config {
		return Config{Type: "latency", Latency: &LatencyCfg{ThresholdMs: th, UpperThresholdMs: up}}
	}
	assert.Equal(t, Sampled, run(t, lat(100, 0), nil, times(0, 50), times(20, 150)))
	assert.Equal(t, NotSampled, run(t, lat(150, 0), nil, times(0, 50), times(20, 150)), "strictly greater")
	// A window is hit by a prefix even though the whole trace is longer.
	assert.Equal(t, Sampled, run(t, lat(50, 1000), nil, times(0, 100), times(0, 10000)))
	assert.Equal(t, NotSampled, run(t, lat(50, 1000), nil, times(0, 10000), times(0, 100)))
	assert.Equal(t, Sampled, run(t, lat(50, 100), nil, times(0, 100)), "upper bound inclusive")
}

func TestAttributePolicies(t *testing.T) {
	num := func(min, max int64, inv bool) Config {
		return Config{Type: "numeric_attribute", NumericAttribute: &NumericAttributeCfg{Key: "n", MinValue: min, MaxValue: max, InvertMatch: inv}}
	}
	assert.Equal(t, Sampled, run(t, num(50, 100, false), nil, attrs(map[string]any{"n": 75})))
	assert.Equal(t, NotSampled, run(t, num(50, 100, false), nil, attrs(map[string]any{"n": 101})))
	assert.Equal(t, Sampled, run(t, num(50, 100, false), map[string]any{"n": 50}, attrs(nil)), "resource attributes count")
	assert.Equal(t, Sampled, run(t, num(0, 100, false), nil, attrs(map[string]any{"n": -5})), "min 0 is unbounded")
	assert.Equal(t, Sampled, run(t, num(0, 100, false), nil, attrs(map[string]any{"n": 500.5})), "a double reads as 0")
	assert.Equal(t, Sampled, run(t, num(50, 100, true), nil, attrs(map[string]any{"other": 1})), "invert: nothing matches")
	assert.Equal(t, NotSampled, run(t, num(50, 100, true), nil, attrs(map[string]any{"n": 60}), attrs(nil)))
	_, err := newBuilder().build(&Config{Type: "numeric_attribute", NumericAttribute: &NumericAttributeCfg{Key: "n"}}, levelTop)
	require.ErrorContains(t, err, "set min_value or max_value")

	str := func(re bool, inv bool, vals ...string) Config {
		return Config{Type: "string_attribute", StringAttribute: &StringAttributeCfg{Key: "k", Values: vals, EnabledRegexMatching: re, InvertMatch: inv}}
	}
	assert.Equal(t, Sampled, run(t, str(false, false, "a", "b"), nil, attrs(map[string]any{"k": "b"})))
	assert.Equal(t, NotSampled, run(t, str(false, false, "a", ""), nil, attrs(map[string]any{"k": ""})))
	assert.Equal(t, Sampled, run(t, str(true, false, "val"), nil, attrs(map[string]any{"k": "xxvalue"})), "regexes are not anchored")
	assert.Equal(t, NotSampled, run(t, str(true, false, "^val$"), nil, attrs(map[string]any{"k": "xxvalue"})))
	assert.Equal(t, Sampled, run(t, str(true, false, "^$"), map[string]any{"k": 12}), "a non-string resource value reads as empty")
	assert.Equal(t, NotSampled, run(t, str(true, false, "^$"), nil, attrs(map[string]any{"k": 12})), "span values must be non-empty strings")
	assert.Equal(t, Sampled, run(t, str(false, true, "a"), nil, attrs(map[string]any{"k": "z"})))
	assert.Equal(t, NotSampled, run(t, str(false, true, "a"), nil, attrs(map[string]any{"k": "a"})))
	_, err = newBuilder().build(&Config{Type: "string_attribute", StringAttribute: &StringAttributeCfg{Key: "k", Values: []string{"("}, EnabledRegexMatching: true}}, levelTop)
	require.ErrorContains(t, err, "invalid regex `(`")

	boolean := func(v, inv bool) Config {
		return Config{Type: "boolean_attribute", BooleanAttribute: &BooleanAttributeCfg{Key: "b", Value: v, InvertMatch: inv}}
	}
	assert.Equal(t, Sampled, run(t, boolean(true, false), nil, attrs(map[string]any{"b": true})))
	assert.Equal(t, Sampled, run(t, boolean(false, false), nil, attrs(map[string]any{"b": "true"})), "non-bool reads as false")
	assert.Equal(t, Sampled, run(t, boolean(true, true), nil, attrs(nil)), "invert: missing key")
}

func TestSpanLevelPolicies(t *testing.T) {
	ts := Config{Type: "trace_state", TraceState: &TraceStateCfg{Key: "key3", Values: []string{"value1"}}}
	state := func(s string) func(ptrace.Span) { return func(sp ptrace.Span) { sp.TraceState().FromRaw(s) } }
	for raw, want := range map[string]Decision{
		"key3=value1": Sampled, "a=b,key3=value1": Sampled, " key3=value1": Sampled, "key3=value1 ": Sampled,
		"key3= value1": NotSampled, "key3=value1,key3=value2": NotSampled, "Key3=value1": NotSampled, "key3=value1,bad key=x": NotSampled,
	} {
		assert.Equal(t, want, run(t, ts, nil, state(raw)), raw)
	}
	flags := Config{Type: "trace_flags"}
	assert.Equal(t, Sampled, run(t, flags, nil, attrs(nil), func(sp ptrace.Span) { sp.SetFlags(0x101) }))
	assert.Equal(t, NotSampled, run(t, flags, nil, func(sp ptrace.Span) { sp.SetFlags(0x100) }))

	st := Config{Type: "status_code", StatusCode: &StatusCodeCfg{StatusCodes: []string{"ERROR"}}}
	assert.Equal(t, Sampled, run(t, st, nil, attrs(nil), func(sp ptrace.Span) { sp.Status().SetCode(ptrace.StatusCodeError) }))
	assert.Equal(t, NotSampled, run(t, st, nil, func(sp ptrace.Span) { sp.Status().SetCode(ptrace.StatusCodeOk) }))
	_, err := newBuilder().build(&Config{Type: "status_code", StatusCode: &StatusCodeCfg{StatusCodes: []string{"error"}}}, levelTop)
	require.ErrorContains(t, err, `unknown status code "error", supported: OK, ERROR, UNSET`)

	sc := func(min, max int32) Config {
		return Config{Type: "span_count", SpanCount: &SpanCountCfg{MinSpans: min, MaxSpans: max}}
	}
	assert.Equal(t, NotSampled, run(t, sc(2, 0), nil, attrs(nil)))
	assert.Equal(t, Sampled, run(t, sc(2, 0), nil, attrs(nil), attrs(nil)))
	assert.Equal(t, NotSampled, run(t, sc(1, 2), nil, attrs(nil), attrs(nil), attrs(nil)))
}

func TestOTTLCondition(t *testing.T) {
	c := Config{Type: "ottl_condition", OTTLCondition: &OTTLConditionCfg{
		ErrorMode:           "ignore",
		SpanConditions:      []string{`attributes["http.route"] == "/pay"`, `IsRootSpan() and name == "never"`},
		SpanEventConditions: []string{`name == "exception"`},
	}}
	assert.Equal(t, Sampled, run(t, c, nil, attrs(map[string]any{"http.route": "/pay"})))
	assert.Equal(t, NotSampled, run(t, c, nil, attrs(map[string]any{"http.route": "/cart"})))
	assert.Equal(t, Sampled, run(t, c, nil, func(sp ptrace.Span) { sp.Events().AppendEmpty().SetName("exception") }))
	_, err := newBuilder().build(&Config{Type: "ottl_condition", OTTLCondition: &OTTLConditionCfg{}}, levelTop)
	require.ErrorContains(t, err, "at least one OTTL condition")
	_, err = newBuilder().build(&Config{Type: "ottl_condition", OTTLCondition: &OTTLConditionCfg{SpanConditions: []string{`nonsense(`}}}, levelTop)
	require.ErrorContains(t, err, "ottl_condition: span")
	_, err = newBuilder().build(&Config{Type: "ottl_condition", OTTLCondition: &OTTLConditionCfg{ErrorMode: "loud", SpanConditions: []string{`name == "x"`}}}, levelTop)
	require.ErrorContains(t, err, `unknown error mode "loud"`)
}

func TestCompositionAndDecide(t *testing.T) {
	errSpan := func(sp ptrace.Span) { sp.Status().SetCode(ptrace.StatusCodeError) }
	statusErr := Config{Name: "errors", Type: "status_code", StatusCode: &StatusCodeCfg{StatusCodes: []string{"ERROR"}}}
	attrK := Config{Name: "k", Type: "string_attribute", StringAttribute: &StringAttributeCfg{Key: "k", Values: []string{"v"}}}
	andCfg := Config{Type: "and", And: &AndCfg{SubPolicies: []Config{statusErr, attrK}}}
	assert.Equal(t, Sampled, run(t, andCfg, nil, errSpan, attrs(map[string]any{"k": "v"})))
	assert.Equal(t, NotSampled, run(t, andCfg, nil, errSpan))
	assert.Equal(t, Sampled, run(t, Config{Type: "and", And: &AndCfg{}}, nil), "an empty and samples")
	notCfg := Config{Type: "not", Not: &NotCfg{SubPolicy: &statusErr}}
	assert.Equal(t, NotSampled, run(t, notCfg, nil, errSpan))
	assert.Equal(t, Sampled, run(t, notCfg, nil, attrs(nil)))
	dropCfg := Config{Type: "drop", Drop: &DropCfg{SubPolicies: []Config{attrK}}}
	assert.Equal(t, Dropped, run(t, dropCfg, nil, attrs(map[string]any{"k": "v"})))
	assert.Equal(t, NotSampled, run(t, dropCfg, nil, attrs(nil)))
	assert.Equal(t, Dropped, run(t, Config{Type: "drop", Drop: &DropCfg{}}, nil), "an empty drop drops everything")

	// Nesting: what upstream allows at each level.
	b := newBuilder()
	_, err := b.build(&Config{Type: "and", And: &AndCfg{SubPolicies: []Config{{Type: "and"}}}}, levelTop)
	require.ErrorContains(t, err, `policy type "and" is not allowed in and_sub_policy`)
	_, err = b.build(&Config{Type: "composite", Composite: &CompositeCfg{SubPolicies: []Config{{Type: "drop"}}}}, levelTop)
	require.ErrorContains(t, err, `policy type "drop" is not allowed in composite_sub_policy`)
	_, err = b.build(&Config{Type: "Always_Sample"}, levelTop)
	require.ErrorContains(t, err, `unknown sampling policy type "Always_Sample"`)

	// Decide: drop first, then any Sampled wins; names unique and non-empty.
	ps, err := b.BuildAll([]Config{
		{Name: "keep-errors", Type: "status_code", StatusCode: &StatusCodeCfg{StatusCodes: []string{"ERROR"}}},
		{Name: "drop-health", Type: "drop", Drop: &DropCfg{SubPolicies: []Config{attrK}}},
		{Name: "all", Type: "always_sample"},
	})
	require.NoError(t, err)
	require.Equal(t, "drop-health", ps[0].Name, "drop policies are evaluated first")
	votes := make([]Decision, len(ps))
	d, by := Decide(ps, &Trace{Sum: &store.Summary{Status: store.StatusError}}, false, votes)
	assert.Equal(t, Sampled, d)
	assert.Equal(t, 1, by, "the first policy that sampled")
	assert.Equal(t, []Decision{NotSampled, Sampled, Sampled}, votes)
	d, by = Decide(ps, &Trace{Sum: &store.Summary{Status: store.StatusError}}, true, votes)
	assert.Equal(t, Sampled, d)
	assert.Equal(t, []Decision{NotSampled, Sampled, NotEvaluated}, votes, "sample_on_first_match stops")
	_, err = b.BuildAll([]Config{{Name: "a", Type: "always_sample"}, {Name: "a", Type: "always_sample"}, {Type: "always_sample"}})
	require.ErrorContains(t, err, `duplicate policy name "a"`)
	require.ErrorContains(t, err, "policy name cannot be empty")
}

func TestComposite(t *testing.T) {
	c := Config{Type: "composite", Composite: &CompositeCfg{
		MaxTotalSpansPerSecond: 1000,
		SubPolicies: []Config{
			{Name: "a", Type: "always_sample"},
			{Name: "b", Type: "always_sample"},
			{Name: "c", Type: "always_sample"},
		},
		RateAllocation: []RateAllocationCfg{{Policy: "a", Percent: 50}, {Policy: "b", Percent: 25}},
	}}
	e, err := newBuilder().build(&c, levelTop)
	require.NoError(t, err)
	cp := e.(*composite)
	assert.Equal(t, []int64{500, 250, 333}, cp.alloc, "unlisted policies get an equal share of the whole")
	now := time.Unix(1000, 0)
	tr := &Trace{Sum: &store.Summary{SpanCount: 300}, Now: now}
	assert.Equal(t, Sampled, e.Evaluate(tr))
	assert.Equal(t, NotSampled, e.Evaluate(tr), "a's share is spent; the first sampling sub-policy decides")
	tr.Now = now.Add(time.Second)
	assert.Equal(t, Sampled, e.Evaluate(tr), "a new second resets the budget")
}

func TestRateLimiting(t *testing.T) {
	now := time.Unix(1000, 0)
	for _, c := range []struct {
		sps, burst int64
		n          uint32
		want       Decision
	}{{10, 0, 20, Sampled}, {10, 0, 21, NotSampled}, {10, 5, 6, NotSampled}, {0, 5, 3, Sampled}, {0, 0, 1, NotSampled}} {
		e, err := buildRateLimiting(nil, &Config{RateLimiting: &RateLimitingCfg{SpansPerSecond: c.sps, BurstCapacity: c.burst}}, levelTop)
		require.NoError(t, err)
		assert.Equal(t, c.want, e.Evaluate(&Trace{Sum: &store.Summary{SpanCount: c.n}, Now: now}), "%+v", c)
	}
}
