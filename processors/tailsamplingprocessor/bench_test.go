package tailsamplingprocessor

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/processor/processortest"

	"github.com/vigilhq/vigil/processors/tailsamplingprocessor/internal/metadata"
	"github.com/vigilhq/vigil/testkit/cputime"
)

// cpuTime is the process's user+system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	d, err := cputime.Self()
	require.NoError(b, err)
	return d
}

// BenchmarkConsumeTraces feeds 10-span traces, 100 to a request, through the
// sampler with T2's policies (errors, > 500 ms, 10%) and decision_wait 1s,
// then waits for every trace to be decided. cpu-ns/span counts every
// goroutine of the process (ingest, the decision loop, forwarding), so it
// stays honest on machines with more than one core.
func BenchmarkConsumeTraces(b *testing.B) { benchConsume(b, false) }

// BenchmarkConsumeTracesRecordPolicy is BenchmarkConsumeTraces with
// record_policy on: kept spans name the policy that kept them.
func BenchmarkConsumeTracesRecordPolicy(b *testing.B) { benchConsume(b, true) }

func benchConsume(b *testing.B, record bool) {
	cfg := createDefaultConfig().(*Config)
	require.NoError(b, confmap.NewFromStringMap(map[string]any{
		"record_policy":    record,
		"decision_wait":    "1s",
		"memory_limit_mib": 256, // not the machine's cgroup: nothing decided early
		"policies": []any{
			map[string]any{"name": "errors", "type": "status_code", "status_code": map[string]any{"status_codes": []any{"ERROR"}}},
			map[string]any{"name": "slow", "type": "latency", "latency": map[string]any{"threshold_ms": 500}},
			map[string]any{"name": "tenth", "type": "probabilistic", "probabilistic": map[string]any{"sampling_percentage": 10}},
		},
	}).Unmarshal(cfg))
	require.NoError(b, cfg.Validate())
	p, err := newSampler(processortest.NewNopSettings(metadata.Type), cfg, consumertest.NewNop())
	require.NoError(b, err)
	ctx := context.Background()
	require.NoError(b, p.Start(ctx, componenttest.NewNopHost()))

	const traces, spans = 100, 10
	ids := make([]int, traces)
	for k := range ids {
		ids[k] = k
	}
	// One request, its trace IDs renewed before each call (the sampler keeps
	// nothing of the request it was given): the cost measured is the
	// sampler's, not building requests.
	td := makeTraces(ids, spans, map[int]bool{0: true}, nil)
	sp := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime(b)
	for i := 0; i < b.N; i++ {
		for k := 0; k < sp.Len(); k++ {
			sp.At(k).SetTraceID(traceID(i*traces + k/spans))
		}
		if err := p.ConsumeTraces(ctx, td); err != nil {
			b.Fatal(err)
		}
	}
	// Every trace decided: the CPU the loop owes is part of the cost, the
	// decision_wait it sleeps through is not part of the time.
	b.StopTimer()
	for {
		p.mu.Lock()
		n := p.store.Len()
		p.mu.Unlock()
		if n == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	n := float64(b.N * traces * spans)
	b.ReportMetric(float64(cpuTime(b)-cpu0)/n, "cpu-ns/span")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/span")
	require.NoError(b, p.Shutdown(ctx))
}
