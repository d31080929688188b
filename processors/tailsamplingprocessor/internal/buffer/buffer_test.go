package buffer

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
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

// spanLike returns a payload that compresses like encoded spans do: field
// names and values repeated across segments, IDs and timestamps not.
func spanLike(rng *rand.Rand, i int) []byte {
	routes := []string{"GET /api/cart", "POST /api/checkout", "GET /api/products/{id}", "SELECT orders"}
	var b []byte
	for k := 0; k < 4; k++ {
		b = binary.LittleEndian.AppendUint64(b, rng.Uint64())
		b = binary.LittleEndian.AppendUint64(b, uint64(1_700_000_000_000_000_000+i*1000+rng.IntN(1000)))
		b = append(b, routes[rng.IntN(len(routes))]...)
		b = append(b, "http.response.status_code\x02\xc8\x01server.address cart.shop.svc.cluster.local"...)
	}
	return b
}

func TestArenaRoundTripThroughFrozenChunks(t *testing.T) {
	a := NewArena(8<<20, 64<<10)
	defer a.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	// Three traces interleaved, so each trace's chain crosses chunks, many
	// of them frozen (compressed) by the time it is read.
	var want [3][][]byte
	var first, last [3]Ref
	for i := 0; i < 3000; i++ {
		tr := i % 3
		data := spanLike(rng, i)
		r, ok := a.Append(uint32(100+tr), data, last[tr])
		require.True(t, ok, "segment %d", i)
		if first[tr] == 0 {
			first[tr] = r
		}
		last[tr] = r
		want[tr] = append(want[tr], data)
		require.LessOrEqual(t, a.MappedBytes(), a.Budget())
	}
	raw, mapped := a.Compression()
	require.Positive(t, raw)
	require.Less(t, mapped*2, raw, "span-like payloads compress at least 2x (%d -> %d)", raw, mapped)

	// Read the traces one after another, then all interleaved: more chunks
	// than the decompression cache holds, so entries are replaced.
	for tr := 0; tr < 3; tr++ {
		var got [][]byte
		for r := first[tr]; r != 0; {
			data, next, aux, err := a.Segment(r)
			require.NoError(t, err)
			require.Equal(t, uint32(100+tr), aux)
			mnext, maux, err := a.Meta(r)
			require.NoError(t, err)
			require.Equal(t, next, mnext)
			require.Equal(t, aux, maux)
			got = append(got, bytes.Clone(data))
			r = next
		}
		require.Equal(t, want[tr], got, "trace %d", tr)
	}
	cur := first
	for n := 0; n < len(want[0]); n++ {
		for tr := 0; tr < 3; tr++ {
			data, next, _, err := a.Segment(cur[tr])
			require.NoError(t, err)
			require.Equal(t, want[tr][n], data)
			cur[tr] = next
		}
	}

	// Freeing everything unmaps every frozen chunk.
	for tr := 0; tr < 3; tr++ {
		for r := first[tr]; r != 0; {
			next, _, err := a.Meta(r)
			require.NoError(t, err)
			a.Free(r)
			r = next
		}
	}
	require.Zero(t, a.LiveBytes())
	raw, mapped = a.Compression()
	require.Zero(t, raw+mapped)
	require.LessOrEqual(t, a.MappedBytes(), int64((1+cacheSlots)*64<<10), "only the current chunk and the decompression cache stay mapped")
}

func TestArenaBudgetIsNeverExceeded(t *testing.T) {
	// Random payloads do not compress: frozen chunks are stored as they are.
	a := NewArena(0, 16<<10) // raised to the least: the current chunk, one frozen, the cache
	defer a.Close()
	rng := rand.New(rand.NewPCG(3, 4))
	payload := func() []byte {
		b := make([]byte, 1000)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	var refs []Ref
	var data [][]byte
	for {
		d := payload()
		r, ok := a.Append(7, d, 0)
		if !ok {
			break
		}
		refs, data = append(refs, r), append(data, d)
		require.LessOrEqual(t, a.MappedBytes(), a.Budget())
	}
	perChunk := a.chunkSize / (1000 + slotSize)
	require.Equal(t, 2*perChunk, len(refs), "one chunk being written and one frozen")
	for i, r := range refs {
		got, _, aux, err := a.Segment(r)
		require.NoError(t, err)
		require.Equal(t, data[i], got)
		require.Equal(t, uint32(7), aux)
	}
	// Freeing the frozen chunk's segments makes room again; a second Free of
	// the same segment changes nothing.
	for _, r := range refs[:perChunk] {
		a.Free(r)
	}
	live := a.LiveBytes()
	a.Free(refs[perChunk])
	a.Free(refs[perChunk])
	require.Equal(t, live-1000-slotSize, a.LiveBytes(), "a double free counts once")
	_, _, _, err := a.Segment(refs[perChunk])
	require.ErrorIs(t, err, ErrCorrupt, "a freed segment is not readable")
	_, ok := a.Append(0, payload(), 0)
	require.True(t, ok)

	_, _, _, err = a.Segment(Ref(99 << 32))
	require.ErrorIs(t, err, ErrCorrupt)
	_, _, err = a.Meta(Ref(1<<32 | 9999))
	require.ErrorIs(t, err, ErrCorrupt)
	a.Free(Ref(99 << 32)) // no crash
	_, ok = a.Append(0, make([]byte, a.MaxSegment()+1), 0)
	require.False(t, ok, "oversized segments are refused, not split")
}

// While the budget is full, the sampler frees the oldest trace and retries,
// once per trace: the full chunk must not be compressed again each time.
func TestArenaFullRetriesDoNotRecompress(t *testing.T) {
	a := NewArena(0, 64<<10)
	defer a.Close()
	rng := rand.New(rand.NewPCG(5, 6))
	var refs []Ref
	for {
		r, ok := a.Append(0, spanLike(rng, len(refs)), 0)
		if !ok {
			break
		}
		refs = append(refs, r)
	}
	before := a.encodes
	for k := 0; k < 100; k++ {
		_, ok := a.Append(0, spanLike(rng, k), 0)
		require.False(t, ok)
	}
	require.LessOrEqual(t, a.encodes-before, 1, "retries reuse the chunk's encoding")
	// Free the oldest segments one at a time until a retry succeeds.
	for i := 0; ; i++ {
		a.Free(refs[i])
		if _, ok := a.Append(0, spanLike(rng, i), 0); ok {
			break
		}
	}
	require.LessOrEqual(t, a.encodes-before, 1)
	require.LessOrEqual(t, a.MappedBytes(), a.Budget())
}

func BenchmarkArenaFreeze(b *testing.B) {
	a := NewArena(1<<30, 4<<20)
	defer a.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	segs := make([][]byte, 1024)
	for i := range segs {
		segs[i] = spanLike(rng, i)
	}
	var refs []Ref
	b.SetBytes(int64(len(segs[0])))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		r, ok := a.Append(0, segs[i%len(segs)], 0)
		if !ok {
			b.Fatal("arena full")
		}
		refs = append(refs, r)
		if len(refs) == 8192 {
			for _, r := range refs {
				a.Free(r)
			}
			refs = refs[:0]
		}
	}
	raw, mapped := a.Compression()
	if mapped > 0 {
		b.ReportMetric(float64(raw)/float64(mapped), "ratio")
	}
}
