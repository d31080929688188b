package buffer

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// sampleTrace builds one trace with every kind of value, events, links and
// two resources.
func sampleTrace(tid pcommon.TraceID) ptrace.Traces {
	td := ptrace.NewTraces()
	for r := 0; r < 2; r++ {
		rs := td.ResourceSpans().AppendEmpty()
		rs.SetSchemaUrl("https://opentelemetry.io/schemas/1.26.0")
		rs.Resource().Attributes().PutStr("service.name", fmt.Sprintf("svc-%d", r))
		rs.Resource().Attributes().PutInt("pid", 4242)
		rs.Resource().SetDroppedAttributesCount(1)
		ss := rs.ScopeSpans().AppendEmpty()
		ss.Scope().SetName("io.opentelemetry.http")
		ss.Scope().SetVersion("1.2.3")
		ss.Scope().Attributes().PutBool("x", true)
		ss.SetSchemaUrl("scope-schema")
		for i := 0; i < 3; i++ {
			sp := ss.Spans().AppendEmpty()
			sp.SetTraceID(tid)
			sp.SetSpanID(pcommon.SpanID{byte(r), byte(i), 3, 4, 5, 6, 7, 8})
			if i > 0 {
				sp.SetParentSpanID(pcommon.SpanID{byte(r), 0, 3, 4, 5, 6, 7, 8})
			}
			sp.TraceState().FromRaw("ot=th:8;rv:abcdef01234567,vendor=x")
			sp.SetFlags(1)
			sp.SetName(fmt.Sprintf("GET /items/%d", i))
			sp.SetKind(ptrace.SpanKindServer)
			sp.SetStartTimestamp(1700000000000000000)
			sp.SetEndTimestamp(1700000000250000000)
			a := sp.Attributes()
			a.PutStr("http.request.method", "GET")
			a.PutInt("http.response.status_code", -200)
			a.PutDouble("ratio", 0.125)
			a.PutBool("ok", false)
			a.PutEmptyBytes("raw").FromRaw([]byte{0, 1, 2})
			sl := a.PutEmptySlice("list")
			sl.AppendEmpty().SetStr("a")
			sl.AppendEmpty().SetInt(2)
			m := a.PutEmptyMap("nested")
			m.PutStr("k", "v")
			m.PutEmptyMap("deeper").PutDouble("d", 1e300)
			a.PutEmpty("empty")
			sp.SetDroppedAttributesCount(2)
			ev := sp.Events().AppendEmpty()
			ev.SetName("exception")
			ev.SetTimestamp(1700000000100000000)
			ev.Attributes().PutStr("exception.message", "boom")
			ev.SetDroppedAttributesCount(1)
			sp.SetDroppedEventsCount(3)
			l := sp.Links().AppendEmpty()
			l.SetTraceID(pcommon.TraceID{9, 9})
			l.SetSpanID(pcommon.SpanID{8, 8})
			l.TraceState().FromRaw("a=b")
			l.SetFlags(1)
			l.Attributes().PutStr("link", "yes")
			sp.SetDroppedLinksCount(4)
			sp.Status().SetCode(ptrace.StatusCodeError)
			sp.Status().SetMessage("failed")
		}
	}
	return td
}

// encodeTrace encodes every (resource, scope) group of td as one segment.
func encodeTrace(td ptrace.Traces) [][]byte {
	var segs [][]byte
	for _, rs := range td.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			b := AppendResource(nil, rs.Resource(), rs.SchemaUrl())
			b = AppendScope(b, ss.Scope(), ss.SchemaUrl())
			b = appendCount(b, ss.Spans().Len())
			for _, sp := range ss.Spans().All() {
				b = AppendSpan(b, sp)
			}
			segs = append(segs, b)
		}
	}
	return segs
}

func appendCount(b []byte, n int) []byte {
	for n >= 0x80 {
		b = append(b, byte(n)|0x80)
		n >>= 7
	}
	return append(b, byte(n))
}

func marshal(t testing.TB, td ptrace.Traces) []byte {
	b, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	require.NoError(t, err)
	return b
}

func TestCodecRoundTrip(t *testing.T) {
	tid := pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	in := sampleTrace(tid)
	out := ptrace.NewTraces()
	dec := NewDecoder(out)
	for _, seg := range encodeTrace(in) {
		require.NoError(t, dec.Segment(seg, tid))
	}
	require.Equal(t, in.SpanCount(), out.SpanCount())
	require.Equal(t, marshal(t, in), marshal(t, out), "byte-identical OTLP after a round trip")
}

func TestDecoderMergesSameOrigin(t *testing.T) {
	tid := pcommon.TraceID{1}
	in := sampleTrace(tid)
	segs := encodeTrace(in)
	out := ptrace.NewTraces()
	dec := NewDecoder(out)
	// The same resource's segment twice in a row lands in one ScopeSpans.
	require.NoError(t, dec.Segment(segs[0], tid))
	require.NoError(t, dec.Segment(segs[0], tid))
	require.Equal(t, 1, out.ResourceSpans().Len())
	require.Equal(t, 6, out.SpanCount())
}

func TestDecoderRejectsCorruption(t *testing.T) {
	tid := pcommon.TraceID{1}
	seg := encodeTrace(sampleTrace(tid))[0]
	for cut := 0; cut < len(seg); cut += 7 {
		out := ptrace.NewTraces()
		err := NewDecoder(out).Segment(seg[:cut], tid)
		require.ErrorIs(t, err, ErrCorrupt, "cut at %d", cut)
		require.Zero(t, out.SpanCount(), "nothing of a corrupt segment is kept")
	}
	out := ptrace.NewTraces()
	require.ErrorIs(t, NewDecoder(out).Segment(append(bytes.Clone(seg), 0), tid), ErrCorrupt)
}

func FuzzDecodeSegment(f *testing.F) {
	tid := pcommon.TraceID{1}
	for _, s := range encodeTrace(sampleTrace(tid)) {
		f.Add(s)
	}
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, seg []byte) {
		out := ptrace.NewTraces()
		if err := NewDecoder(out).Segment(seg, tid); err != nil {
			require.Zero(t, out.SpanCount())
			return
		}
		// What decodes survives another round trip unchanged (the bytes may
		// differ: a literal key can come back as a dictionary reference).
		again := ptrace.NewTraces()
		dec := NewDecoder(again)
		for _, s := range encodeTrace(out) {
			require.NoError(t, dec.Segment(s, tid))
		}
		require.Equal(t, marshal(t, out), marshal(t, again))
	})
}

func TestArena(t *testing.T) {
	a := NewArena(64<<10, 16<<10) // four 16 KiB chunks
	defer a.Close()
	payload := bytes.Repeat([]byte("x"), 1000)
	var first, prev Ref
	var refs []Ref
	for i := 0; ; i++ {
		r, ok := a.Append(payload, prev)
		if !ok {
			break
		}
		if first == 0 {
			first = r
		}
		refs = append(refs, r)
		prev = r
	}
	require.Equal(t, 4*16, len(refs), "16 segments of 1012 bytes per 16 KiB chunk, four chunks")
	require.Equal(t, a.Budget(), a.MappedBytes())
	_, ok := a.Append(payload, 0)
	require.False(t, ok, "the budget is never exceeded")

	// The chain links every segment in order.
	n := 0
	for r := first; r != 0; n++ {
		data, next, err := a.Segment(r)
		require.NoError(t, err)
		require.Equal(t, payload, data)
		r = next
	}
	require.Equal(t, len(refs), n)

	// Freeing the first chunk's segments makes room again.
	for _, r := range refs[:16] {
		a.Free(r)
	}
	_, ok = a.Append(payload, 0)
	require.True(t, ok)

	_, _, err := a.Segment(Ref(99 << 32))
	require.ErrorIs(t, err, ErrCorrupt)
	_, ok = a.Append(make([]byte, a.MaxSegment()+1), 0)
	require.False(t, ok, "oversized segments are refused, not split")
}

func TestArenaReturnsMemory(t *testing.T) {
	a := NewArena(1<<20, 64<<10)
	defer a.Close()
	var refs []Ref
	for {
		r, ok := a.Append(make([]byte, 4000), 0)
		if !ok {
			break
		}
		refs = append(refs, r)
	}
	require.Equal(t, int64(1<<20), a.MappedBytes())
	for _, r := range refs {
		a.Free(r)
	}
	require.Zero(t, a.LiveBytes())
	require.LessOrEqual(t, a.MappedBytes(), int64(3*64<<10), "all but the current chunk and two spares are unmapped")
}
