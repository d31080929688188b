package redflagconnector

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/connector/connectortest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigilhq/vigil/connectors/redflagconnector/internal/metadata"
	"github.com/vigilhq/vigil/testkit/cputime"
)

// cpuTime is the process's user+system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	d, err := cputime.Self()
	require.NoError(b, err)
	return d
}

// BenchmarkConsumeTraces feeds requests of 1,000 spans (250 four-span traces
// across two services, a tenth failing) through the connector with its
// default config, then waits until the detector loop has taken every batch.
// cpu-ns/span counts every goroutine: edge extraction on the caller and the
// detectors applying batches on their loop. The 10 s evaluations are not in
// it (a run lasts seconds); T3 minus T2 in benchmarks/ is the whole cost in
// the agent.
func BenchmarkConsumeTraces(b *testing.B) {
	for _, join := range []float64{0.25, 1} {
		b.Run(fmt.Sprintf("join=%g", join), func(b *testing.B) { benchConsume(b, join) })
	}
}

func benchConsume(b *testing.B, join float64) {
	ctx := context.Background()
	cfg := createDefaultConfig().(*Config)
	cfg.JoinSampleRatio = join
	c, err := NewFactory().CreateTracesToMetrics(ctx, connectortest.NewNopSettings(metadata.Type), cfg, new(consumertest.MetricsSink))
	require.NoError(b, err)
	require.NoError(b, c.Start(ctx, componenttest.NewNopHost()))
	core := c.(*tracesIn).c

	td := cascadeTraces(250, false)
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		sp := rss.At(i).ScopeSpans().At(0).Spans()
		for k := 0; k < sp.Len(); k += 10 {
			sp.At(k).Status().SetCode(ptrace.StatusCodeError)
		}
	}
	n := td.SpanCount()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime(b)
	for i := 0; i < b.N; i++ {
		if err := c.ConsumeTraces(ctx, td); err != nil {
			b.Fatal(err)
		}
	}
	for len(core.batches) > 0 {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	total := float64(b.N * n)
	b.ReportMetric(float64(cpuTime(b)-cpu0)/total, "cpu-ns/span")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/total, "ns/span")
	require.NoError(b, c.Shutdown(ctx))
}
