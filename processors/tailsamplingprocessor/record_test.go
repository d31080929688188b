package tailsamplingprocessor

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/featuregate"
	"go.opentelemetry.io/collector/pdata/pcommon"
)

// scopeRecords returns, per kept trace, the record attributes of the scopes
// its spans arrived in (policy/composite/cached, "-" for absent).
func scopeRecords(sink *consumertest.TracesSink) map[pcommon.TraceID][]string {
	out := map[pcommon.TraceID][]string{}
	for _, td := range sink.AllTraces() {
		for _, rs := range td.ResourceSpans().All() {
			for _, ss := range rs.ScopeSpans().All() {
				attrs := ss.Scope().Attributes()
				rec := ""
				for _, k := range []string{"tailsampling.policy", "tailsampling.composite_policy", "tailsampling.cached_decision"} {
					v, ok := attrs.Get(k)
					if !ok {
						rec += "-/"
						continue
					}
					rec += v.AsString() + "/"
				}
				for _, sp := range ss.Spans().All() {
					out[sp.TraceID()] = append(out[sp.TraceID()], rec)
				}
			}
		}
	}
	return out
}

var recordPolicies = []any{
	map[string]any{"name": "errors", "type": "status_code", "status_code": map[string]any{"status_codes": []any{"ERROR"}}},
	map[string]any{"name": "budget", "type": "composite", "composite": map[string]any{
		"max_total_spans_per_second": 1000,
		"composite_sub_policy": []any{
			map[string]any{"name": "vip", "type": "string_attribute", "string_attribute": map[string]any{"key": "tier", "values": []any{"vip"}}},
			map[string]any{"name": "rest", "type": "always_sample"},
		},
	}},
	// Drop policies are evaluated first: the names must still be the
	// configured ones.
	map[string]any{"name": "junk", "type": "drop", "drop": map[string]any{"drop_sub_policy": []any{
		map[string]any{"name": "j", "type": "string_attribute", "string_attribute": map[string]any{"key": "junk", "values": []any{"yes"}}},
	}}},
}

func TestRecordPolicyNamesWhatKeptATrace(t *testing.T) {
	p, sink, _ := newTestSampler(t, map[string]any{"decision_wait": "200ms", "record_policy": true, "policies": recordPolicies})
	ctx := context.Background()
	// Trace 1 fails (errors, the first policy that samples, and the
	// composite's rest); 2 is a vip (the composite's vip); 3 is kept by rest.
	// They share one resource and scope, so one forwarded request must split
	// them into scopes of their own.
	td := makeTraces([]int{1, 3}, 2, map[int]bool{1: true}, nil)
	makeTraces([]int{2}, 2, nil, map[string]any{"tier": "vip"}).ResourceSpans().At(0).ScopeSpans().At(0).Spans().MoveAndAppendTo(
		td.ResourceSpans().At(0).ScopeSpans().At(0).Spans())
	require.NoError(t, p.ConsumeTraces(ctx, td))
	require.Eventually(t, func() bool { return sink.SpanCount() == 6 }, 5*time.Second, 10*time.Millisecond)
	got := scopeRecords(sink)
	require.Equal(t, []string{"errors/rest/-/", "errors/rest/-/"}, got[traceID(1)])
	require.Equal(t, []string{"budget/vip/-/", "budget/vip/-/"}, got[traceID(2)])
	require.Equal(t, []string{"budget/rest/-/", "budget/rest/-/"}, got[traceID(3)])
	for _, td := range sink.AllTraces() {
		for _, rs := range td.ResourceSpans().All() {
			for _, ss := range rs.ScopeSpans().All() {
				require.Equal(t, "test", ss.Scope().Name(), "the scope's own name is kept")
			}
		}
	}

	// A late span of a kept trace follows the cached decision, and says so.
	sink.Reset()
	require.NoError(t, p.ConsumeTraces(ctx, makeTraces([]int{2}, 1, nil, nil)))
	require.Equal(t, []string{"budget/-/true/"}, scopeRecords(sink)[traceID(2)], "as upstream: the policy, not the sub-policy")
	require.NoError(t, p.Shutdown(ctx))
}

func TestRecordPolicyOffByDefault(t *testing.T) {
	p, sink, _ := newTestSampler(t, map[string]any{"decision_wait": "200ms", "policies": recordPolicies})
	ctx := context.Background()
	require.NoError(t, p.ConsumeTraces(ctx, makeTraces([]int{1, 2}, 2, map[int]bool{1: true}, nil)))
	require.Eventually(t, func() bool { return sink.SpanCount() == 4 }, 5*time.Second, 10*time.Millisecond)
	for _, recs := range scopeRecords(sink) {
		for _, r := range recs {
			require.Equal(t, "-/-/-/", r)
		}
	}
	// One scope for both traces, as they arrived: nothing split.
	require.Equal(t, 1, sink.AllTraces()[0].ResourceSpans().Len())
	require.NoError(t, p.Shutdown(ctx))
}

func TestRecordPolicyFeatureGate(t *testing.T) {
	reg := featuregate.GlobalRegistry()
	require.NoError(t, reg.Set(recordPolicyGateID, true))
	t.Cleanup(func() { require.NoError(t, reg.Set(recordPolicyGateID, false)) })
	p, sink, _ := newTestSampler(t, map[string]any{"decision_wait": "200ms", "policies": recordPolicies})
	ctx := context.Background()
	require.NoError(t, p.ConsumeTraces(ctx, makeTraces([]int{1}, 1, map[int]bool{1: true}, nil)))
	require.Eventually(t, func() bool { return sink.SpanCount() == 1 }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, []string{"errors/rest/-/"}, scopeRecords(sink)[traceID(1)])
	require.NoError(t, p.Shutdown(ctx))
}
