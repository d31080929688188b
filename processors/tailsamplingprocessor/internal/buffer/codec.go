// Package buffer holds spans waiting for a sampling decision outside the Go
// heap: a compact binary encoding of spans (this file) written into an arena of
// mmap'ed chunks (arena.go), so buffered traces cost the garbage collector
// nothing and memory is bounded in bytes.
//
// The encoding is Vigil's own and never leaves the process (except in the
// restart snapshot, which carries a version byte): varints, length-prefixed
// strings, and typed values. A segment holds spans of one trace from one
// resource and scope:
//
//	segment  = resource scope uvarint(nspans) span*
//	resource = bytes(schema_url) uvarint(dropped) attrs
//	scope    = bytes(schema_url) bytes(name) bytes(version) uvarint(dropped) attrs
//	span     = id8 parent8(or 0x00) bytes(tracestate) uvarint(flags) bytes(name)
//	           uvarint(kind) fixed64(start) fixed64(end) attrs uvarint(dropped)
//	           events uvarint(dropped) links uvarint(dropped) uvarint(status) bytes(message)
//	attrs    = uvarint(n) (key value)*
//	key      = uvarint(index<<1|1) for a dictionary key (dict.go), or
//	           uvarint(len<<1) and the bytes
//	value    = type byte, then string/bytes: bytes; dictionary string: uvarint(index);
//	           bool: byte; int: zigzag varint; double: fixed64; array: uvarint(n)
//	           value*; map: attrs
package buffer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

const (
	tEmpty byte = iota
	tStr
	tBool
	tInt
	tDouble
	tBytes
	tArray
	tMap
	tStrDict // a string from dictValues: uvarint index
)

// maxDepth bounds nested arrays and maps, on encode and decode.
const maxDepth = 32

func appendBytes(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendValue(dst []byte, v pcommon.Value, depth int) []byte {
	if depth > maxDepth {
		return append(dst, tEmpty)
	}
	switch v.Type() {
	case pcommon.ValueTypeStr:
		if i, ok := dictValueIndex[v.Str()]; ok {
			dst = append(dst, tStrDict)
			return binary.AppendUvarint(dst, i)
		}
		dst = append(dst, tStr)
		return appendBytes(dst, v.Str())
	case pcommon.ValueTypeBool:
		b := byte(0)
		if v.Bool() {
			b = 1
		}
		return append(dst, tBool, b)
	case pcommon.ValueTypeInt:
		dst = append(dst, tInt)
		return binary.AppendVarint(dst, v.Int())
	case pcommon.ValueTypeDouble:
		dst = append(dst, tDouble)
		return binary.LittleEndian.AppendUint64(dst, math.Float64bits(v.Double()))
	case pcommon.ValueTypeBytes:
		dst = append(dst, tBytes)
		b := v.Bytes().AsRaw()
		dst = binary.AppendUvarint(dst, uint64(len(b)))
		return append(dst, b...)
	case pcommon.ValueTypeSlice:
		s := v.Slice()
		dst = append(dst, tArray)
		dst = binary.AppendUvarint(dst, uint64(s.Len()))
		for i := 0; i < s.Len(); i++ {
			dst = appendValue(dst, s.At(i), depth+1)
		}
		return dst
	case pcommon.ValueTypeMap:
		dst = append(dst, tMap)
		return appendAttrs(dst, v.Map(), depth+1)
	}
	return append(dst, tEmpty)
}

// appendKey writes an attribute key: uvarint(index<<1|1) for a key in
// dictKeys, else uvarint(len<<1) and the bytes.
func appendKey(dst []byte, k string) []byte {
	if i, ok := dictKeyIndex[k]; ok {
		return binary.AppendUvarint(dst, i<<1|1)
	}
	dst = binary.AppendUvarint(dst, uint64(len(k))<<1)
	return append(dst, k...)
}

func appendAttrs(dst []byte, m pcommon.Map, depth int) []byte {
	dst = binary.AppendUvarint(dst, uint64(m.Len()))
	for k, v := range m.All() {
		dst = appendKey(dst, k)
		dst = appendValue(dst, v, depth)
	}
	return dst
}

// AppendResource appends the encoding of a resource and its schema URL.
func AppendResource(dst []byte, res pcommon.Resource, schemaURL string) []byte {
	dst = appendBytes(dst, schemaURL)
	dst = binary.AppendUvarint(dst, uint64(res.DroppedAttributesCount()))
	return appendAttrs(dst, res.Attributes(), 0)
}

// AppendScope appends the encoding of an instrumentation scope and its schema URL.
func AppendScope(dst []byte, sc pcommon.InstrumentationScope, schemaURL string) []byte {
	dst = appendBytes(dst, schemaURL)
	dst = appendBytes(dst, sc.Name())
	dst = appendBytes(dst, sc.Version())
	dst = binary.AppendUvarint(dst, uint64(sc.DroppedAttributesCount()))
	return appendAttrs(dst, sc.Attributes(), 0)
}

// AppendSpan appends the encoding of one span (its trace ID is the segment's).
func AppendSpan(dst []byte, sp ptrace.Span) []byte {
	id := sp.SpanID()
	dst = append(dst, id[:]...)
	if p := sp.ParentSpanID(); p.IsEmpty() {
		dst = append(dst, 0)
	} else {
		dst = append(dst, 1)
		dst = append(dst, p[:]...)
	}
	dst = appendBytes(dst, sp.TraceState().AsRaw())
	dst = binary.AppendUvarint(dst, uint64(sp.Flags()))
	dst = appendBytes(dst, sp.Name())
	dst = binary.AppendUvarint(dst, uint64(sp.Kind()))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(sp.StartTimestamp()))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(sp.EndTimestamp()))
	dst = appendAttrs(dst, sp.Attributes(), 0)
	dst = binary.AppendUvarint(dst, uint64(sp.DroppedAttributesCount()))
	evs := sp.Events()
	dst = binary.AppendUvarint(dst, uint64(evs.Len()))
	for i := 0; i < evs.Len(); i++ {
		ev := evs.At(i)
		dst = binary.LittleEndian.AppendUint64(dst, uint64(ev.Timestamp()))
		dst = appendBytes(dst, ev.Name())
		dst = appendAttrs(dst, ev.Attributes(), 0)
		dst = binary.AppendUvarint(dst, uint64(ev.DroppedAttributesCount()))
	}
	dst = binary.AppendUvarint(dst, uint64(sp.DroppedEventsCount()))
	links := sp.Links()
	dst = binary.AppendUvarint(dst, uint64(links.Len()))
	for i := 0; i < links.Len(); i++ {
		l := links.At(i)
		tid, sid := l.TraceID(), l.SpanID()
		dst = append(dst, tid[:]...)
		dst = append(dst, sid[:]...)
		dst = appendBytes(dst, l.TraceState().AsRaw())
		dst = binary.AppendUvarint(dst, uint64(l.Flags()))
		dst = appendAttrs(dst, l.Attributes(), 0)
		dst = binary.AppendUvarint(dst, uint64(l.DroppedAttributesCount()))
	}
	dst = binary.AppendUvarint(dst, uint64(sp.DroppedLinksCount()))
	dst = binary.AppendUvarint(dst, uint64(sp.Status().Code()))
	return appendBytes(dst, sp.Status().Message())
}

// ErrCorrupt reports an encoding that does not decode.
var ErrCorrupt = errors.New("corrupt span encoding")

// reader decodes with bounds checks; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", ErrCorrupt, what)
	}
	r.b = nil
}

func (r *reader) uvarint(what string) uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail(what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint(what string) int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail(what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) fixed64(what string) uint64 {
	if len(r.b) < 8 {
		r.fail(what)
		return 0
	}
	v := binary.LittleEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *reader) raw(n int, what string) []byte {
	if n < 0 || len(r.b) < n {
		r.fail(what)
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes(what string) []byte {
	n := r.uvarint(what)
	if n > uint64(len(r.b)) {
		r.fail(what)
		return nil
	}
	return r.raw(int(n), what)
}

func (r *reader) str(what string) string { return string(r.bytes(what)) }

func (r *reader) byte1(what string) byte {
	if len(r.b) < 1 {
		r.fail(what)
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

// count reads an element count that cannot exceed what is left (each element
// takes at least one byte), so garbage cannot make the decoder allocate.
func (r *reader) count(what string) int {
	n := r.uvarint(what)
	if n > uint64(len(r.b)) {
		r.fail(what)
		return 0
	}
	return int(n)
}

func (r *reader) u32(what string) uint32 {
	v := r.uvarint(what)
	if v > math.MaxUint32 {
		r.fail(what)
		return 0
	}
	return uint32(v)
}

func (r *reader) value(v pcommon.Value, depth int) {
	if depth > maxDepth {
		r.fail("nesting too deep")
		return
	}
	switch t := r.byte1("value type"); t {
	case tEmpty:
	case tStr:
		v.SetStr(r.str("string value"))
	case tStrDict:
		i := r.uvarint("string value index")
		if i >= uint64(len(dictValues)) {
			r.fail("string value index")
			return
		}
		v.SetStr(dictValues[i])
	case tBool:
		v.SetBool(r.byte1("bool value") != 0)
	case tInt:
		v.SetInt(r.varint("int value"))
	case tDouble:
		v.SetDouble(math.Float64frombits(r.fixed64("double value")))
	case tBytes:
		v.SetEmptyBytes().FromRaw(r.bytes("bytes value"))
	case tArray:
		n := r.count("array length")
		s := v.SetEmptySlice()
		s.EnsureCapacity(n)
		for i := 0; i < n && r.err == nil; i++ {
			r.value(s.AppendEmpty(), depth+1)
		}
	case tMap:
		r.attrs(v.SetEmptyMap(), depth+1)
	default:
		r.fail(fmt.Sprintf("value type %d", t))
	}
}

func (r *reader) key() string {
	v := r.uvarint("attribute key")
	if v&1 == 1 {
		if v>>1 >= uint64(len(dictKeys)) {
			r.fail("attribute key index")
			return ""
		}
		return dictKeys[v>>1]
	}
	n := v >> 1
	if n > uint64(len(r.b)) {
		r.fail("attribute key")
		return ""
	}
	return string(r.raw(int(n), "attribute key"))
}

func (r *reader) attrs(m pcommon.Map, depth int) {
	n := r.count("attribute count")
	m.EnsureCapacity(n)
	for i := 0; i < n && r.err == nil; i++ {
		k := r.key()
		if r.err != nil {
			return
		}
		r.value(m.PutEmpty(k), depth)
	}
}

func (r *reader) resource(res pcommon.Resource) (schemaURL string) {
	schemaURL = r.str("resource schema url")
	res.SetDroppedAttributesCount(r.u32("resource dropped"))
	r.attrs(res.Attributes(), 0)
	return schemaURL
}

func (r *reader) scope(sc pcommon.InstrumentationScope) (schemaURL string) {
	schemaURL = r.str("scope schema url")
	sc.SetName(r.str("scope name"))
	sc.SetVersion(r.str("scope version"))
	sc.SetDroppedAttributesCount(r.u32("scope dropped"))
	r.attrs(sc.Attributes(), 0)
	return schemaURL
}

func (r *reader) span(sp ptrace.Span, traceID pcommon.TraceID) {
	sp.SetTraceID(traceID)
	id := r.raw(8, "span id")
	if r.err != nil {
		return
	}
	sp.SetSpanID(pcommon.SpanID(id))
	if r.byte1("parent flag") == 1 {
		p := r.raw(8, "parent span id")
		if r.err != nil {
			return
		}
		sp.SetParentSpanID(pcommon.SpanID(p))
	}
	sp.TraceState().FromRaw(r.str("tracestate"))
	sp.SetFlags(r.u32("flags"))
	sp.SetName(r.str("name"))
	sp.SetKind(ptrace.SpanKind(r.u32("kind")))
	sp.SetStartTimestamp(pcommon.Timestamp(r.fixed64("start")))
	sp.SetEndTimestamp(pcommon.Timestamp(r.fixed64("end")))
	r.attrs(sp.Attributes(), 0)
	sp.SetDroppedAttributesCount(r.u32("dropped attributes"))
	n := r.count("event count")
	evs := sp.Events()
	evs.EnsureCapacity(n)
	for i := 0; i < n && r.err == nil; i++ {
		ev := evs.AppendEmpty()
		ev.SetTimestamp(pcommon.Timestamp(r.fixed64("event time")))
		ev.SetName(r.str("event name"))
		r.attrs(ev.Attributes(), 0)
		ev.SetDroppedAttributesCount(r.u32("event dropped"))
	}
	sp.SetDroppedEventsCount(r.u32("dropped events"))
	n = r.count("link count")
	links := sp.Links()
	links.EnsureCapacity(n)
	for i := 0; i < n && r.err == nil; i++ {
		l := links.AppendEmpty()
		tid := r.raw(16, "link trace id")
		sid := r.raw(8, "link span id")
		if r.err != nil {
			return
		}
		l.SetTraceID(pcommon.TraceID(tid))
		l.SetSpanID(pcommon.SpanID(sid))
		l.TraceState().FromRaw(r.str("link tracestate"))
		l.SetFlags(r.u32("link flags"))
		r.attrs(l.Attributes(), 0)
		l.SetDroppedAttributesCount(r.u32("link dropped"))
	}
	sp.SetDroppedLinksCount(r.u32("dropped links"))
	sp.Status().SetCode(ptrace.StatusCode(r.u32("status code")))
	sp.Status().SetMessage(r.str("status message"))
}

// SegmentHeader returns the resource and scope part of a segment (to tell
// segments with the same origin apart) and the rest.
func SegmentHeader(seg []byte) (header, rest []byte, err error) {
	r := reader{b: seg}
	r.bytes("resource schema url")
	r.uvarint("resource dropped")
	r.skipAttrs(0)
	r.bytes("scope schema url")
	r.bytes("scope name")
	r.bytes("scope version")
	r.uvarint("scope dropped")
	r.skipAttrs(0)
	if r.err != nil {
		return nil, nil, r.err
	}
	n := len(seg) - len(r.b)
	return seg[:n], seg[n:], nil
}

func (r *reader) skipAttrs(depth int) {
	n := r.count("attribute count")
	for i := 0; i < n && r.err == nil; i++ {
		r.key()
		r.skipValue(depth)
	}
}

func (r *reader) skipValue(depth int) {
	if depth > maxDepth {
		r.fail("nesting too deep")
		return
	}
	switch t := r.byte1("value type"); t {
	case tEmpty:
	case tStr, tBytes:
		r.bytes("value")
	case tBool:
		r.byte1("bool")
	case tInt:
		r.varint("int")
	case tDouble:
		r.fixed64("double")
	case tStrDict:
		if r.uvarint("string value index") >= uint64(len(dictValues)) {
			r.fail("string value index")
		}
	case tArray:
		n := r.count("array length")
		for i := 0; i < n && r.err == nil; i++ {
			r.skipValue(depth + 1)
		}
	case tMap:
		r.skipAttrs(depth + 1)
	default:
		r.fail(fmt.Sprintf("value type %d", t))
	}
}

// Decoder rebuilds traces from segments, merging consecutive segments of the
// same resource and scope into one ScopeSpans. Not safe for concurrent use.
type Decoder struct {
	td         ptrace.Traces
	lastHeader []byte
	lastScope  ptrace.ScopeSpans
	lastSpans  ptrace.SpanSlice
	lastFrom   int
	lastCap    int // capacity reserved in lastSpans
}

// Last returns the spans the last successful Segment or Parts call added:
// spans.At(from) to the end.
func (d *Decoder) Last() (spans ptrace.SpanSlice, from int) { return d.lastSpans, d.lastFrom }

// LastScope returns the ScopeSpans the last successful Segment or Parts call
// added to (after a Break, one holding only segments decoded since).
func (d *Decoder) LastScope() ptrace.ScopeSpans { return d.lastScope }

// Break makes the next segment start a ResourceSpans of its own, even with
// the same resource and scope as the last one: segments that will carry
// different scope attributes are not merged.
func (d *Decoder) Break() { d.lastHeader = nil }

// NewDecoder returns a decoder appending into td.
func NewDecoder(td ptrace.Traces) *Decoder { return &Decoder{td: td} }

// Segment decodes one segment of trace traceID. On error nothing of the
// segment is kept.
func (d *Decoder) Segment(seg []byte, traceID pcommon.TraceID) error {
	header, rest, err := SegmentHeader(seg)
	if err != nil {
		return err
	}
	return d.Parts(header, rest, traceID)
}

// Parts decodes a segment given as its header (resource and scope) and its
// body (span count and spans), as the arena stores them. header must stay
// valid until the next call.
func (d *Decoder) Parts(header, body []byte, traceID pcommon.TraceID) error {
	var spans ptrace.SpanSlice
	var scope ptrace.ScopeSpans
	rss := d.td.ResourceSpans()
	newRS := d.lastHeader == nil || string(header) != string(d.lastHeader)
	if newRS {
		rs := rss.AppendEmpty()
		r := reader{b: header}
		rs.SetSchemaUrl(r.resource(rs.Resource()))
		ss := rs.ScopeSpans().AppendEmpty()
		ss.SetSchemaUrl(r.scope(ss.Scope()))
		if r.err == nil && len(r.b) != 0 {
			r.fail("trailing header bytes")
		}
		if r.err != nil {
			rss.RemoveIf(func(x ptrace.ResourceSpans) bool { return x == rs })
			return r.err
		}
		spans, scope = ss.Spans(), ss
		d.lastCap = 0
	} else {
		spans, scope = d.lastSpans, d.lastScope
	}
	r := reader{b: body}
	n := r.count("span count")
	before := spans.Len()
	// Grow geometrically: segments of one resource and scope are merged
	// into one slice, and growing it by each segment's count copied it
	// once per segment (quadratic in the spans of a forwarded request).
	if want := before + n; want > d.lastCap {
		d.lastCap = max(want, 2*d.lastCap)
		spans.EnsureCapacity(d.lastCap)
	}
	for i := 0; i < n && r.err == nil; i++ {
		r.span(spans.AppendEmpty(), traceID)
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("trailing bytes")
	}
	if r.err != nil {
		k := 0
		spans.RemoveIf(func(ptrace.Span) bool { k++; return k > before })
		if newRS {
			last := rss.At(rss.Len() - 1)
			rss.RemoveIf(func(x ptrace.ResourceSpans) bool { return x == last })
		}
		return r.err
	}
	d.lastHeader, d.lastScope, d.lastSpans, d.lastFrom = header, scope, spans, before
	return nil
}
