package tailsamplingprocessor

import (
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor/processortest"

	"github.com/vigilhq/vigil/internal/redflag"
	"github.com/vigilhq/vigil/processors/tailsamplingprocessor/internal/metadata"
)

func traceID(i int) pcommon.TraceID {
	var id pcommon.TraceID
	binary.BigEndian.PutUint64(id[:8], uint64(i)+1)
	binary.BigEndian.PutUint64(id[8:], uint64(i)*0x9e3779b97f4a7c15+7)
	return id
}

// makeTraces builds one request holding `spans` spans of each trace in ids;
// traces listed in failing get an error span.
func makeTraces(ids []int, spans int, failing map[int]bool, attrs map[string]any) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "checkout")
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("test")
	now := time.Now()
	for _, i := range ids {
		for s := 0; s < spans; s++ {
			sp := ss.Spans().AppendEmpty()
			sp.SetTraceID(traceID(i))
			sp.SetSpanID(pcommon.SpanID{byte(s + 1), byte(i), byte(i >> 8), 1})
			if s > 0 {
				sp.SetParentSpanID(pcommon.SpanID{1, byte(i), byte(i >> 8), 1})
			}
			sp.SetName(fmt.Sprintf("op-%d", s))
			sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now))
			sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Duration(s+1) * time.Millisecond)))
			sp.Attributes().PutStr("http.request.method", "GET")
			sp.Attributes().PutStr("padding", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")
			for k, v := range attrs {
				_ = sp.Attributes().PutEmpty(k).FromRaw(v)
			}
			if failing[i] && s == spans-1 {
				sp.Status().SetCode(ptrace.StatusCodeError)
			}
		}
	}
	return td
}

func newTestSampler(t *testing.T, raw map[string]any) (*sampler, *consumertest.TracesSink, *componenttest.Telemetry) {
	t.Helper()
	cfg := createDefaultConfig().(*Config)
	require.NoError(t, confmap.NewFromStringMap(raw).Unmarshal(cfg))
	require.NoError(t, cfg.Validate())
	sink := new(consumertest.TracesSink)
	tel := componenttest.NewTelemetry()
	set := processortest.NewNopSettings(metadata.Type)
	set.TelemetrySettings = tel.NewTelemetrySettings()
	p, err := newSampler(set, cfg, sink)
	require.NoError(t, err)
	require.NoError(t, p.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	return p, sink, tel
}

var errorsPolicy = []any{map[string]any{"name": "errors", "type": "status_code", "status_code": map[string]any{"status_codes": []any{"ERROR"}}}}

func keptIDs(sink *consumertest.TracesSink) map[pcommon.TraceID]int {
	out := map[pcommon.TraceID]int{}
	for _, td := range sink.AllTraces() {
		for _, rs := range td.ResourceSpans().All() {
			for _, ss := range rs.ScopeSpans().All() {
				for _, sp := range ss.Spans().All() {
					out[sp.TraceID()]++
				}
			}
		}
	}
	return out
}

func TestSamplesErrorsAfterDecisionWait(t *testing.T) {
	p, sink, _ := newTestSampler(t, map[string]any{"decision_wait": "300ms", "policies": errorsPolicy})
	ctx := context.Background()
	ids := []int{1, 2, 3, 4, 5, 6}
	failing := map[int]bool{2: true, 5: true}
	// Each trace arrives in two requests.
	require.NoError(t, p.ConsumeTraces(ctx, makeTraces(ids, 3, nil, nil)))
	require.NoError(t, p.ConsumeTraces(ctx, makeTraces(ids, 2, failing, nil)))
	require.Zero(t, sink.SpanCount(), "nothing before decision_wait")
	require.Eventually(t, func() bool { return sink.SpanCount() == 10 }, 5*time.Second, 10*time.Millisecond)
	kept := keptIDs(sink)
	require.Equal(t, map[pcommon.TraceID]int{traceID(2): 5, traceID(5): 5}, kept, "whole traces, only the failing ones")
	// The forwarded spans are intact.
	td := sink.AllTraces()[0]
	sp := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
	v, _ := sp.Attributes().Get("http.request.method")
	assert.Equal(t, "GET", v.Str())
	svc, _ := td.ResourceSpans().At(0).Resource().Attributes().Get("service.name")
	assert.Equal(t, "checkout", svc.Str())
	assert.Equal(t, "test", td.ResourceSpans().At(0).ScopeSpans().At(0).Scope().Name())
	require.NoError(t, p.Shutdown(ctx))
}

func TestLateSpansFollowTheDecision(t *testing.T) {
	p, sink, _ := newTestSampler(t, map[string]any{"decision_wait": "200ms", "policies": errorsPolicy})
	ctx := context.Background()
	require.NoError(t, p.ConsumeTraces(ctx, makeTraces([]int{1, 2}, 2, map[int]bool{1: true}, nil)))
	require.Eventually(t, func() bool { return sink.SpanCount() == 2 }, 5*time.Second, 10*time.Millisecond)
	// Late spans: the sampled trace's are forwarded at once, the other's dropped,
	// though the late spans alone would decide differently.
	require.NoError(t, p.ConsumeTraces(ctx, makeTraces([]int{1, 2}, 1, map[int]bool{2: true}, nil)))
	require.Equal(t, 3, sink.SpanCount(), "forwarded synchronously")
	time.Sleep(400 * time.Millisecond)
	require.Equal(t, map[pcommon.TraceID]int{traceID(1): 3}, keptIDs(sink))
	require.NoError(t, p.Shutdown(ctx))
}

func TestRootSpanShortensTheWait(t *testing.T) {
	p, sink, _ := newTestSampler(t, map[string]any{"decision_wait": "30s", "decision_wait_after_root_received": "100ms",
		"policies": []any{map[string]any{"name": "all", "type": "always_sample"}}})
	ctx := context.Background()
	require.NoError(t, p.ConsumeTraces(ctx, makeTraces([]int{7}, 3, nil, nil)))
	require.Eventually(t, func() bool { return sink.SpanCount() == 3 }, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, p.Shutdown(ctx))
}

func TestMaximumTraceSize(t *testing.T) {
	p, sink, _ := newTestSampler(t, map[string]any{"decision_wait": "200ms", "maximum_trace_size_bytes": 2000,
		"policies": []any{map[string]any{"name": "all", "type": "always_sample"}}})
	ctx := context.Background()
	require.NoError(t, p.ConsumeTraces(ctx, makeTraces([]int{1}, 2, nil, nil)))
	require.NoError(t, p.ConsumeTraces(ctx, makeTraces([]int{2}, 40, nil, nil)))
	time.Sleep(500 * time.Millisecond)
	require.Equal(t, map[pcommon.TraceID]int{traceID(1): 2}, keptIDs(sink), "the big trace is not sampled")
	require.NoError(t, p.Shutdown(ctx))
}

// Under a generator sending ten times the budget, the arena never maps more
// than the budget, nothing is refused, and every trace is decided (early,
// counted) rather than lost.
func TestMemoryBudgetNeverExceeded(t *testing.T) {
	p, sink, tel := newTestSampler(t, map[string]any{"decision_wait": "1m", "memory_limit_mib": 4,
		"policies": []any{map[string]any{"name": "all", "type": "always_sample"}}})
	ctx := context.Background()
	budget := p.budget
	var sent int
	maxMapped := int64(0)
	for batch := 0; sent*250 < 10*int(budget); batch++ {
		ids := make([]int, 100)
		for j := range ids {
			ids[j] = batch*100 + j
		}
		td := makeTraces(ids, 10, nil, nil)
		sent += td.SpanCount()
		require.NoError(t, p.ConsumeTraces(ctx, td))
		p.mu.Lock()
		maxMapped = max(maxMapped, p.arena.MappedBytes()+int64(p.store.Len())*traceOverhead)
		p.mu.Unlock()
	}
	require.LessOrEqual(t, maxMapped, budget)
	require.Greater(t, sink.SpanCount(), 0, "early decisions forwarded sampled traces")
	require.NoError(t, p.Shutdown(ctx))
	require.Equal(t, sent, sink.SpanCount(), "every span decided and (always_sample) forwarded")
	m, err := tel.GetMetric("otelcol_processor_tail_sampling_decided_early")
	require.NoError(t, err)
	require.NotZero(t, m.Data, "decided early is counted")
}

// With a storage directory, pending traces survive a restart and are decided
// after the rest of their wait; decision caches too.
func TestRestartKeepsPendingTraces(t *testing.T) {
	dir := t.TempDir()
	raw := map[string]any{"decision_wait": "2s", "storage": dir, "policies": errorsPolicy}
	p, sink, _ := newTestSampler(t, raw)
	ctx := context.Background()
	require.NoError(t, p.ConsumeTraces(ctx, makeTraces([]int{1, 2, 3}, 4, map[int]bool{1: true, 3: true}, nil)))
	require.NoError(t, p.Shutdown(ctx))
	require.Zero(t, sink.SpanCount(), "saved, not decided, at shutdown")

	p2, sink2, tel := newTestSampler(t, raw)
	require.Eventually(t, func() bool { return sink2.SpanCount() == 8 }, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, map[pcommon.TraceID]int{traceID(1): 4, traceID(3): 4}, keptIDs(sink2))
	// A late span of a restored, decided trace follows its cached decision.
	require.NoError(t, p2.ConsumeTraces(ctx, makeTraces([]int{2}, 1, map[int]bool{2: true}, nil)))
	time.Sleep(100 * time.Millisecond)
	require.Equal(t, 8, sink2.SpanCount())
	require.NoError(t, p2.Shutdown(ctx))
	m, err := tel.GetMetric("otelcol_processor_tail_sampling_restored")
	require.NoError(t, err)
	require.NotNil(t, m)
}

func TestShutdownDecidesOrDropsPending(t *testing.T) {
	for _, drop := range []bool{false, true} {
		p, sink, _ := newTestSampler(t, map[string]any{"decision_wait": "1m", "drop_pending_traces_on_shutdown": drop, "policies": errorsPolicy})
		require.NoError(t, p.ConsumeTraces(context.Background(), makeTraces([]int{1, 2}, 2, map[int]bool{2: true}, nil)))
		require.NoError(t, p.Shutdown(context.Background()))
		if drop {
			require.Zero(t, sink.SpanCount())
		} else {
			require.Equal(t, map[pcommon.TraceID]int{traceID(2): 2}, keptIDs(sink))
		}
		require.NoError(t, p.Shutdown(context.Background()), "idempotent")
	}
}

func TestSpanIngest(t *testing.T) {
	p, sink, _ := newTestSampler(t, map[string]any{"decision_wait": "300ms", "sampling_strategy": "span-ingest", "policies": errorsPolicy})
	ctx := context.Background()
	require.NoError(t, p.ConsumeTraces(ctx, makeTraces([]int{1, 2}, 2, nil, nil)))
	require.Zero(t, sink.SpanCount())
	// A batch with an error samples the trace at once, earlier spans included.
	require.NoError(t, p.ConsumeTraces(ctx, makeTraces([]int{1}, 1, map[int]bool{1: true}, nil)))
	require.Equal(t, map[pcommon.TraceID]int{traceID(1): 3}, keptIDs(sink))
	time.Sleep(500 * time.Millisecond)
	require.Equal(t, 3, sink.SpanCount(), "trace 2 is not sampled at its tick")
	require.NoError(t, p.Shutdown(ctx))
}

func TestShutdownWithoutStart(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	p, err := newSampler(processortest.NewNopSettings(metadata.Type), cfg, new(consumertest.TracesSink))
	require.NoError(t, err)
	require.NoError(t, p.Shutdown(context.Background()))
}

// Kept spans carry the OTEP 235 sampling threshold: th:0 for a trace kept by
// a policy that keeps everything it matches, the probability's threshold for
// one kept by chance; other tracestate entries stay.
func TestKeptSpansCarryTheSamplingThreshold(t *testing.T) {
	p, sink, _ := newTestSampler(t, map[string]any{"decision_wait": "200ms", "policies": []any{
		map[string]any{"name": "errors", "type": "status_code", "status_code": map[string]any{"status_codes": []any{"ERROR"}}},
		map[string]any{"name": "all-by-chance", "type": "probabilistic", "probabilistic": map[string]any{"sampling_percentage": 100}},
		map[string]any{"name": "tenth", "type": "and", "and": map[string]any{"and_sub_policy": []any{
			map[string]any{"name": "p", "type": "probabilistic", "probabilistic": map[string]any{"sampling_percentage": 10}},
			map[string]any{"name": "k", "type": "string_attribute", "string_attribute": map[string]any{"key": "tenth", "values": []any{"yes"}}},
		}}},
	}})
	ctx := context.Background()
	td := makeTraces([]int{1, 2}, 2, map[int]bool{1: true}, nil)
	spans := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans()
	spans.At(0).TraceState().FromRaw("vendor=x")
	require.NoError(t, p.ConsumeTraces(ctx, td))
	require.Eventually(t, func() bool { return sink.SpanCount() == 4 }, 5*time.Second, 10*time.Millisecond)
	states := map[pcommon.TraceID][]string{}
	for _, td := range sink.AllTraces() {
		for _, rs := range td.ResourceSpans().All() {
			for _, ss := range rs.ScopeSpans().All() {
				for _, sp := range ss.Spans().All() {
					states[sp.TraceID()] = append(states[sp.TraceID()], sp.TraceState().AsRaw())
				}
			}
		}
	}
	// Trace 1 failed (errors, th:0, and all-by-chance, th:0): th:0.
	require.ElementsMatch(t, []string{"ot=th:0,vendor=x", "ot=th:0"}, states[traceID(1)])
	// Trace 2 only by the 100% probabilistic policy: also th:0 (probability 1).
	require.ElementsMatch(t, []string{"ot=th:0", "ot=th:0"}, states[traceID(2)])
	require.NoError(t, p.Shutdown(ctx))

	p, sink, _ = newTestSampler(t, map[string]any{"decision_wait": "200ms", "policies": []any{
		map[string]any{"name": "tenth", "type": "probabilistic", "probabilistic": map[string]any{"sampling_percentage": 10}},
	}})
	var kept pcommon.TraceID
	for i := 0; i < 200; i++ {
		require.NoError(t, p.ConsumeTraces(ctx, makeTraces([]int{i}, 1, nil, nil)))
	}
	require.Eventually(t, func() bool { return sink.SpanCount() > 0 }, 5*time.Second, 10*time.Millisecond)
	sp := sink.AllTraces()[0].ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
	kept = sp.TraceID()
	require.False(t, kept.IsEmpty())
	require.Equal(t, "ot=th:e6666666666666", sp.TraceState().AsRaw(), "a tenth: 2^56 - round(0.1 x 2^56) = 0xe6666666666666, adjusted count 10")
	require.NoError(t, p.Shutdown(ctx))
}

// flagHost is a host with one extension publishing red flags, as the
// vigil_status extension does.
type flagHost struct {
	component.Host
	exts map[component.ID]component.Component
}

func (h flagHost) GetExtensions() map[component.ID]component.Component { return h.exts }

type fakeFlags struct {
	component.StartFunc
	component.ShutdownFunc
	flags *redflag.FlagSet

	mu       sync.Mutex
	counters map[string]map[string]int64
}

func (f *fakeFlags) FlaggedSet() *redflag.FlagSet { return f.flags }

func (f *fakeFlags) PublishCounters(source string, c map[string]int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.counters[source] = maps.Clone(c)
}

func (f *fakeFlags) published(source, name string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counters[source][name]
}

// withPeer builds one trace from service svc with a client span calling peer.
func withPeer(id int, svc, peer string) ptrace.Traces {
	td := makeTraces([]int{id}, 1, nil, map[string]any{"service.peer.name": peer})
	td.ResourceSpans().At(0).Resource().Attributes().PutStr("service.name", svc)
	td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).SetKind(ptrace.SpanKindClient)
	return td
}

// The red_flag policy keeps the traces that cross a call or a service the
// connector flagged, read from the status extension named in its config.
func TestRedFlagPolicyKeepsFlaggedCalls(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	require.NoError(t, confmap.NewFromStringMap(map[string]any{
		"decision_wait": "300ms",
		"policies": []any{map[string]any{
			"name": "red-flags", "type": "red_flag", "red_flag": map[string]any{"status": "vigil_status"},
		}},
	}).Unmarshal(cfg))
	require.NoError(t, cfg.Validate())
	sink := new(consumertest.TracesSink)
	p, err := newSampler(processortest.NewNopSettings(metadata.Type), cfg, sink)
	require.NoError(t, err)
	flags := &fakeFlags{
		flags:    redflag.NewFlagSet([]redflag.Edge{{Caller: "checkout", Callee: "payments"}}, []string{"inventory-db"}, nil),
		counters: map[string]map[string]int64{},
	}
	host := flagHost{Host: componenttest.NewNopHost(), exts: map[component.ID]component.Component{
		component.MustNewID("vigil_status"): flags,
	}}
	ctx := context.Background()
	require.NoError(t, p.Start(ctx, host))
	// The flags are read on the decision ticker; wait for the first read.
	require.Eventually(t, func() bool { return p.flags.Load() != nil }, 5*time.Second, 10*time.Millisecond)

	require.NoError(t, p.ConsumeTraces(ctx, withPeer(1, "checkout", "payments")))      // flagged call
	require.NoError(t, p.ConsumeTraces(ctx, withPeer(2, "checkout", "catalog")))       // healthy call
	require.NoError(t, p.ConsumeTraces(ctx, withPeer(3, "frontend", "payments")))      // same callee, other caller
	require.NoError(t, p.ConsumeTraces(ctx, withPeer(4, "inventory-db", "disk")))      // flagged service itself
	require.NoError(t, p.ConsumeTraces(ctx, withPeer(5, "inventory", "inventory-db"))) // call into a flagged service
	require.Eventually(t, func() bool { return sink.SpanCount() == 3 }, 5*time.Second, 10*time.Millisecond)
	time.Sleep(400 * time.Millisecond)
	assert.Equal(t, map[pcommon.TraceID]int{traceID(1): 1, traceID(4): 1, traceID(5): 1}, keptIDs(sink))

	// Its counters reach the status page, under the processor's name.
	require.Eventually(t, func() bool {
		return flags.published("tail_sampling", "traces_sampled") == 3 && flags.published("tail_sampling", "traces_not_sampled") == 2
	}, 5*time.Second, 10*time.Millisecond)
	assert.Equal(t, int64(5), flags.published("tail_sampling", "traces_received"))
	assert.Positive(t, flags.published("tail_sampling", "memory_budget_bytes"))
	require.NoError(t, p.Shutdown(ctx))
}

// A red_flag policy naming an extension that is not there fails at start,
// with the name.
func TestRedFlagPolicyNeedsTheStatusExtension(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	require.NoError(t, confmap.NewFromStringMap(map[string]any{
		"policies": []any{map[string]any{
			"name": "red-flags", "type": "red_flag", "red_flag": map[string]any{"status": "vigil_status/main"},
		}},
	}).Unmarshal(cfg))
	require.NoError(t, cfg.Validate())
	p, err := newSampler(processortest.NewNopSettings(metadata.Type), cfg, new(consumertest.TracesSink))
	require.NoError(t, err)
	err = p.Start(context.Background(), componenttest.NewNopHost())
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"vigil_status/main" is not configured`)
	require.NoError(t, p.Shutdown(context.Background()))
}

// A tick that samples many megabytes of buffered spans forwards them in
// requests of a bounded size, not as one request as large as the buffer.
func TestForwardsInBoundedRequests(t *testing.T) {
	p, sink, _ := newTestSampler(t, map[string]any{"decision_wait": "200ms", "memory_limit_mib": 64,
		"policies": []any{map[string]any{"name": "all", "type": "always_sample"}}})
	ctx := context.Background()
	ids := make([]int, 12000)
	for i := range ids {
		ids[i] = i
	}
	// One request, so every trace is due at the same tick: about 20 MiB.
	td := makeTraces(ids, 10, nil, nil)
	sent := td.SpanCount()
	require.NoError(t, p.ConsumeTraces(ctx, td))
	require.Eventually(t, func() bool { return sink.SpanCount() == sent }, 10*time.Second, 10*time.Millisecond)
	var m ptrace.ProtoMarshaler
	require.Greater(t, len(sink.AllTraces()), 1, "one request for everything")
	for _, td := range sink.AllTraces() {
		require.LessOrEqual(t, m.TracesSize(td), 2*forwardChunk, "a forwarded request far over the chunk size")
	}
	require.NoError(t, p.Shutdown(ctx))
}
