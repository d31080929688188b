package otlpsink

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func sampleTraces() ptrace.Traces {
	td := ptrace.NewTraces()
	for r := 0; r < 3; r++ {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", "s")
		for s := 0; s < 2; s++ {
			ss := rs.ScopeSpans().AppendEmpty()
			for i := 0; i < r+s+1; i++ {
				sp := ss.Spans().AppendEmpty()
				sp.SetName("x")
				sp.Attributes().PutStr("k", "v")
				sp.Events().AppendEmpty().SetName("e")
			}
		}
	}
	return td
}

func sampleMetrics() pmetric.Metrics {
	md := pmetric.NewMetrics()
	sm := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty()
	g := sm.Metrics().AppendEmpty()
	g.SetName("g")
	g.SetEmptyGauge().DataPoints().AppendEmpty().SetIntValue(1)
	s := sm.Metrics().AppendEmpty()
	s.SetName("s")
	s.SetEmptySum()
	s.Sum().DataPoints().AppendEmpty().SetDoubleValue(1)
	s.Sum().DataPoints().AppendEmpty().SetDoubleValue(2)
	h := sm.Metrics().AppendEmpty()
	h.SetName("h")
	dp := h.SetEmptyHistogram().DataPoints().AppendEmpty()
	dp.BucketCounts().FromRaw([]uint64{1, 2})
	dp.ExplicitBounds().FromRaw([]float64{1})
	sm.Metrics().AppendEmpty().SetEmptySummary().DataPoints().AppendEmpty()
	sm.Metrics().AppendEmpty().SetEmptyExponentialHistogram().DataPoints().AppendEmpty()
	return md
}

func sampleLogs() plog.Logs {
	ld := plog.NewLogs()
	sl := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty()
	for i := 0; i < 4; i++ {
		sl.LogRecords().AppendEmpty().Body().SetStr("hello")
	}
	return ld
}

// TestCountingSinkCountsLikeTheFullSink sends the same requests, through the
// real OTLP clients, to a counting sink and a decoding one: the counts agree
// with pdata's, and a failure set on the counting sink reaches the client.
func TestCountingSinkCountsLikeTheFullSink(t *testing.T) {
	for _, start := range []func(string) (*Sink, error){
		StartCounting,
		func(a string) (*Sink, error) { return Start(a, false) },
	} {
		s, err := start("127.0.0.1:0")
		require.NoError(t, err)
		conn, err := grpc.NewClient(s.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		require.NoError(t, err)
		ctx := context.Background()
		td, md, ld := sampleTraces(), sampleMetrics(), sampleLogs()
		_, err = ptraceotlp.NewGRPCClient(conn).Export(ctx, ptraceotlp.NewExportRequestFromTraces(td))
		require.NoError(t, err)
		_, err = pmetricotlp.NewGRPCClient(conn).Export(ctx, pmetricotlp.NewExportRequestFromMetrics(md))
		require.NoError(t, err)
		_, err = plogotlp.NewGRPCClient(conn).Export(ctx, plogotlp.NewExportRequestFromLogs(ld))
		require.NoError(t, err)
		require.EqualValues(t, td.SpanCount(), s.Spans.Load())
		require.EqualValues(t, md.DataPointCount(), s.DataPoints.Load())
		require.EqualValues(t, ld.LogRecordCount(), s.LogRecords.Load())
		require.EqualValues(t, 3, s.Requests.Load())

		s.SetFailure(Unavailable)
		_, err = ptraceotlp.NewGRPCClient(conn).Export(ctx, ptraceotlp.NewExportRequestFromTraces(td))
		require.Error(t, err)
		require.EqualValues(t, td.SpanCount(), s.Spans.Load())
		conn.Close()
		s.Stop()
	}
}

// FuzzCountItems: arbitrary bytes give a count or an error, never a panic.
func FuzzCountItems(f *testing.F) {
	var tm ptrace.ProtoMarshaler
	b, _ := tm.MarshalTraces(sampleTraces())
	f.Add(b, 0)
	var mm pmetric.ProtoMarshaler
	b, _ = mm.MarshalMetrics(sampleMetrics())
	f.Add(b, 1)
	var lm plog.ProtoMarshaler
	b, _ = lm.MarshalLogs(sampleLogs())
	f.Add(b, 2)
	f.Add([]byte{0x0a, 0xff}, 0)
	f.Fuzz(func(t *testing.T, b []byte, kind int) {
		n, err := CountItems(b, kind == 0, kind == 1)
		if err == nil && n < 0 {
			t.Fatal("negative count")
		}
	})
}

// BenchmarkCountItems measures the counting sink's per-request work on a
// 1000-span request.
func BenchmarkCountItems(b *testing.B) {
	td := ptrace.NewTraces()
	ss := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans()
	for i := 0; i < 1000; i++ {
		sp := ss.AppendEmpty()
		sp.SetName("GET /api/orders/{id}")
		sp.Attributes().PutStr("http.request.method", "GET")
		sp.Attributes().PutInt("http.response.status_code", 200)
	}
	var m ptrace.ProtoMarshaler
	raw, err := m.MarshalTraces(td)
	require.NoError(b, err)
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if n, err := CountItems(raw, true, false); err != nil || n != 1000 {
			b.Fatal(n, err)
		}
	}
}
