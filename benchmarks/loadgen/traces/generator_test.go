package traces

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigilhq/vigil/testkit/otlpsink"
)

// TestGeneratorTraffic sends a few hundred requests to a real OTLP sink and
// checks what a sampler and a detector would see: unique trace IDs, whole
// traces of the configured size, both semantic convention generations, error
// and slow traces, and late spans that reuse an earlier trace's ID.
func TestGeneratorTraffic(t *testing.T) {
	for _, gz := range []bool{false, true} {
		sink, err := otlpsink.Start("127.0.0.1:0", true)
		require.NoError(t, err)
		defer sink.Stop()
		cfg := DefaultConfig()
		cfg.Endpoint = sink.Addr
		cfg.Gzip = gz
		cfg.ErrorRatio, cfg.SlowRatio, cfg.LateRatio = 0.05, 0.05, 0.05
		cfg.LateDelay = 50 * time.Millisecond
		cfg.Rate = 100_000
		g, err := New(cfg)
		require.NoError(t, err)
		require.InDelta(t, 250, g.BytesPerSpan(), 80, "bytes per span")

		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- g.Run(ctx) }()
		require.True(t, otlpsink.WaitFor(30*time.Second, func() bool { return sink.Requests.Load() >= 60 }))
		cancel()
		require.NoError(t, <-done)

		st := g.Stats()
		require.Zero(t, st.Errors)
		// What the generator counts as accepted arrived; requests in flight at
		// the cancel may have arrived without being counted.
		got := sink.Spans.Load()
		require.GreaterOrEqual(t, got, st.Spans)
		require.LessOrEqual(t, got, st.Spans+int64(cfg.Concurrency)*int64(cfg.SpansPerRequest+cfg.SpansPerTrace))

		perTrace := map[pcommon.TraceID]int{}
		lateSpans, errTraces, slowTraces, oldNames, newNames := 0, 0, 0, 0, 0
		type bounds struct{ start, end pcommon.Timestamp }
		span := map[pcommon.TraceID]*bounds{}
		errs := map[pcommon.TraceID]bool{}
		for _, td := range sink.Traces() {
			for i := 0; i < td.ResourceSpans().Len(); i++ {
				ss := td.ResourceSpans().At(i).ScopeSpans().At(0).Spans()
				for j := 0; j < ss.Len(); j++ {
					sp := ss.At(j)
					if sp.Kind() == ptrace.SpanKindProducer {
						lateSpans++
						continue
					}
					id := sp.TraceID()
					perTrace[id]++
					b := span[id]
					if b == nil {
						b = &bounds{sp.StartTimestamp(), sp.EndTimestamp()}
						span[id] = b
					}
					b.start, b.end = min(b.start, sp.StartTimestamp()), max(b.end, sp.EndTimestamp())
					if sp.Status().Code() == ptrace.StatusCodeError {
						errs[id] = true
					}
					if _, ok := sp.Attributes().Get("net.peer.name"); ok {
						oldNames++
					}
					if _, ok := sp.Attributes().Get("server.address"); ok {
						newNames++
					}
				}
			}
		}
		for id, n := range perTrace {
			require.Equal(t, cfg.SpansPerTrace, n, "trace %s", id)
			if time.Duration(span[id].end-span[id].start) > cfg.SlowThreshold {
				slowTraces++
			}
		}
		errTraces = len(errs)
		require.Equal(t, got, int64(len(perTrace)*cfg.SpansPerTrace+lateSpans), "every trace ID is unique")
		require.Positive(t, errTraces)
		require.Positive(t, slowTraces)
		require.Positive(t, lateSpans)
		require.Positive(t, oldNames)
		require.Positive(t, newNames)
		// The late spans that found an old enough trace reuse its ID.
		reused := 0
		for _, td := range sink.Traces() {
			for i := 0; i < td.ResourceSpans().Len(); i++ {
				ss := td.ResourceSpans().At(i).ScopeSpans().At(0).Spans()
				for j := 0; j < ss.Len(); j++ {
					if sp := ss.At(j); sp.Kind() == ptrace.SpanKindProducer && perTrace[sp.TraceID()] > 0 {
						reused++
					}
				}
			}
		}
		require.Positive(t, reused, "late spans join earlier traces")
	}
}

func TestGeneratorRejectsBadConfig(t *testing.T) {
	_, err := New(Config{})
	require.ErrorContains(t, err, "no endpoint")
	_, err = New(Config{Endpoint: "127.0.0.1:1", ErrorRatio: 2})
	require.ErrorContains(t, err, "ratios")
}

// BenchmarkPrepare measures the generator's per-request work before the send:
// copying a template and patching its trace IDs.
func BenchmarkPrepare(b *testing.B) {
	g, err := New(Config{Endpoint: "127.0.0.1:1"})
	require.NoError(b, err)
	t := &g.templates[0]
	buf := make([]byte, 0, len(t.raw))
	ids := make([][16]byte, t.nSlots)
	b.ReportAllocs()
	b.SetBytes(int64(len(t.raw)))
	for b.Loop() {
		buf = append(buf[:0], t.raw...)
		for s := range ids {
			g.nextID(&ids[s])
		}
		for k, off := range t.offsets {
			copy(buf[off:off+16], ids[t.slots[k]][:])
		}
	}
}
