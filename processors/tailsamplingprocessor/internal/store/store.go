// Package store is the tail sampler's table of traces waiting for a decision:
// a pointer-free index by trace ID, a compact per-trace summary that policies
// decide from, span data in an off-heap arena, and a time wheel that says
// which traces are due. Not safe for concurrent use; the processor locks.
package store

import (
	"cmp"
	"fmt"
	"slices"
	"syscall"
	"unsafe"

	"github.com/vigilhq/vigil/processors/tailsamplingprocessor/internal/buffer"
)

// unsafeBytes views an interned header string as bytes without copying; the
// bytes are never written.
func unsafeBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// Status bits of Summary.Status: which span status codes the trace has.
const (
	StatusUnset uint8 = 1 << iota
	StatusOK
	StatusError
)

// Summary is what the policies know of a trace, kept up to date as spans
// arrive so no policy re-walks the spans. It holds no pointers.
type Summary struct {
	SpanCount uint32
	// Bytes is the size of the trace's spans as the upstream processor counts
	// it (the OTLP protobuf size of the spans); BufferedBytes what the arena holds.
	Bytes uint64
	// TracesBytes is the size of a TracesData message holding the trace's
	// batches (what bytes_limiting spends).
	TracesBytes   uint64
	BufferedBytes uint64
	MinStart      uint64 // earliest span start, Unix ns (0: none yet)
	MaxEnd        uint64 // latest span end, Unix ns
	// Matched has bit i set when some span (or resource) satisfies predicate
	// i; Errored when evaluating an OTTL predicate failed first.
	Matched, Errored uint64
	Status           uint8
	Root             bool
	FirstSeen        int64 // Unix ns of the first span's arrival
}

// Merge adds another part of the same trace.
func (s *Summary) Merge(o *Summary) {
	s.SpanCount += o.SpanCount
	s.Bytes += o.Bytes
	s.TracesBytes += o.TracesBytes
	s.BufferedBytes += o.BufferedBytes
	if o.MinStart != 0 && (s.MinStart == 0 || o.MinStart < s.MinStart) {
		s.MinStart = o.MinStart
	}
	if o.MaxEnd > s.MaxEnd {
		s.MaxEnd = o.MaxEnd
	}
	s.Matched |= o.Matched
	s.Errored |= o.Errored
	s.Status |= o.Status
	s.Root = s.Root || o.Root
	if s.FirstSeen == 0 {
		s.FirstSeen = o.FirstSeen
	}
}

type entry struct {
	id          [16]byte
	sum         Summary
	first, last buffer.Ref
	decideTick  int64
	gen         uint32
	live        bool
}

type wref struct{ idx, gen uint32 }

// header is an interned resource+scope encoding shared by the segments of
// every trace from the same origin: stored once, not once per trace.
type header struct {
	b    string
	refs int32
}

// Store holds the traces waiting for a decision.
type Store struct {
	arena   *buffer.Arena
	index   map[[16]byte]uint32
	pages   [][]entry // entries, in pages mapped outside the Go heap
	n       uint32    // entries handed out (free or live)
	mapped  []bool    // page k was mapped (else allocated on the heap)
	free    []uint32
	wheel   [][]wref
	done    int64 // last tick whose slot was processed
	started bool

	hdrIndex map[string]uint32
	hdrs     []header
	hdrFree  []uint32
	hdrBytes int64
}

// New returns a store over arena with a wheel long enough for decisions up to
// horizon ticks ahead.
func New(arena *buffer.Arena, horizon int, expected int) *Store {
	return &Store{
		arena:    arena,
		index:    make(map[[16]byte]uint32, expected),
		wheel:    make([][]wref, horizon+2),
		hdrIndex: map[string]uint32{},
	}
}

// pageEntries is how many entries a page holds (about 1 MiB of them).
const pageEntries = 1 << 13

// at returns entry i.
func (s *Store) at(i uint32) *entry { return &s.pages[i/pageEntries][i%pageEntries] }

// grow hands out a new entry index, mapping a page when the last is full.
// Entries hold no pointers, so they can live outside the Go heap: the
// garbage collector neither scans them nor counts them toward its heap
// goal, which would double what they cost in memory.
func (s *Store) grow() uint32 {
	if s.n%pageEntries == 0 {
		size := pageEntries * int(unsafe.Sizeof(entry{}))
		var page []entry
		mem := buffer.MapAnon(size)
		if mem != nil {
			page = unsafe.Slice((*entry)(unsafe.Pointer(unsafe.SliceData(mem))), pageEntries)
		} else {
			page = make([]entry, pageEntries)
		}
		s.pages = append(s.pages, page)
		s.mapped = append(s.mapped, mem != nil)
	}
	s.n++
	return s.n - 1
}

// Close unmaps the entries; the store must not be used after.
func (s *Store) Close() {
	for k, page := range s.pages {
		if s.mapped[k] {
			_ = syscall.Munmap(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(page))), pageEntries*int(unsafe.Sizeof(entry{}))))
		}
	}
	s.pages, s.mapped, s.n = nil, nil, 0
	clear(s.index)
	s.free = s.free[:0]
	for k := range s.wheel {
		s.wheel[k] = nil
	}
	s.started = false
}

// Len is the number of traces waiting.
func (s *Store) Len() int { return len(s.index) }

// Arena returns the store's arena.
func (s *Store) Arena() *buffer.Arena { return s.arena }

// Lookup returns the index of a waiting trace.
func (s *Store) Lookup(id [16]byte) (uint32, bool) {
	i, ok := s.index[id]
	return i, ok
}

// Create adds a trace due at decideTick (clamped into the wheel's horizon).
func (s *Store) Create(id [16]byte, nowTick, decideTick int64) uint32 {
	if !s.started {
		s.done, s.started = nowTick-1, true
	}
	decideTick = s.clamp(nowTick, decideTick)
	var i uint32
	if n := len(s.free); n > 0 {
		i = s.free[n-1]
		s.free = s.free[:n-1]
	} else {
		i = s.grow()
	}
	e := s.at(i)
	gen := e.gen + 1
	*e = entry{id: id, decideTick: decideTick, gen: gen, live: true}
	s.index[id] = i
	s.schedule(i)
	return i
}

// clamp puts tick t within the wheel: after its position and at most a
// horizon ahead. A caller's clock may lag the wheel (a batch stamped before
// it waited for the lock while decisions went on); the horizon is counted
// from the later of the two, so a trace is never scheduled in a slot the
// wheel has passed, where it would never come due.
func (s *Store) clamp(nowTick, t int64) int64 {
	nowTick = max(nowTick, s.done)
	if t <= s.done {
		t = s.done + 1
	}
	if last := nowTick + int64(len(s.wheel)) - 2; t > last {
		t = last
	}
	return t
}

func (s *Store) schedule(i uint32) {
	e := s.at(i)
	slot := e.decideTick % int64(len(s.wheel))
	s.wheel[slot] = append(s.wheel[slot], wref{i, e.gen})
}

// Reschedule moves a trace's decision earlier (never later).
func (s *Store) Reschedule(i uint32, nowTick, tick int64) {
	e := s.at(i)
	tick = s.clamp(nowTick, tick)
	if tick >= e.decideTick {
		return
	}
	same := (e.decideTick-tick)%int64(len(s.wheel)) == 0
	e.decideTick = tick
	if !same {
		// Its reference in the old slot goes stale; one in the same slot
		// (a wheel's turn earlier) already serves, and a second would make
		// the trace due twice.
		s.schedule(i)
	}
}

// Summary returns the trace's summary for update.
func (s *Store) Summary(i uint32) *Summary { return &s.at(i).sum }

// ID returns the trace ID of entry i.
func (s *Store) ID(i uint32) [16]byte { return s.at(i).id }

// HeaderBytes is the memory the interned headers take.
func (s *Store) HeaderBytes() int64 { return s.hdrBytes }

// intern returns the id of a header, adding it if new (refs unchanged).
func (s *Store) intern(h []byte) uint32 {
	if id, ok := s.hdrIndex[string(h)]; ok {
		return id
	}
	var id uint32
	if n := len(s.hdrFree); n > 0 {
		id = s.hdrFree[n-1]
		s.hdrFree = s.hdrFree[:n-1]
	} else {
		s.hdrs = append(s.hdrs, header{})
		id = uint32(len(s.hdrs) - 1)
	}
	b := string(h)
	s.hdrs[id] = header{b: b}
	s.hdrIndex[b] = id
	s.hdrBytes += int64(len(b)) + 64
	return id
}

func (s *Store) unref(id uint32) {
	if int(id) >= len(s.hdrs) {
		return
	}
	h := &s.hdrs[id]
	if h.refs--; h.refs <= 0 {
		delete(s.hdrIndex, h.b)
		s.hdrBytes -= int64(len(h.b)) + 64
		*h = header{}
		s.hdrFree = append(s.hdrFree, id)
	}
}

// Append stores a segment of trace i: its header (resource and scope,
// interned) and body (span count and spans). It returns false, storing
// nothing, when the arena has no room for it.
func (s *Store) Append(i uint32, hdr, body []byte) bool {
	e := s.at(i)
	id := s.intern(hdr)
	ref, ok := s.arena.Append(id, body, e.last)
	if !ok {
		if s.hdrs[id].refs == 0 {
			s.hdrs[id].refs = 1
			s.unref(id)
		}
		return false
	}
	s.hdrs[id].refs++
	if e.first == 0 {
		e.first = ref
	}
	e.last = ref
	e.sum.BufferedBytes += uint64(len(body))
	return true
}

// MaxBody is the largest segment body Append can store.
func (s *Store) MaxBody() int { return s.arena.MaxSegment() }

// Due appends the traces due at or before tick to dst, oldest tick first, and
// advances the wheel.
func (s *Store) Due(tick int64, dst []uint32) []uint32 {
	if !s.started {
		return dst
	}
	for t := s.done + 1; t <= tick; t++ {
		slot := t % int64(len(s.wheel))
		refs := s.wheel[slot]
		kept := refs[:0]
		for _, r := range refs {
			e := s.at(r.idx)
			if !e.live || e.gen != r.gen {
				continue
			}
			if e.decideTick == t {
				dst = append(dst, r.idx)
			} else if e.decideTick > t {
				kept = append(kept, r) // a later turn of the wheel
			}
		}
		clear(refs[len(kept):])
		s.wheel[slot] = kept
		s.done = t
	}
	return dst
}

// Oldest returns a waiting trace due soonest, for early decisions when memory
// is short; nowTick is the caller's clock. Dead references it passes are
// dropped from the wheel, so calling it repeatedly while deciding stays cheap.
// References for a later turn of the wheel (scheduled while the wheel lagged
// the clock) stay in their slot, moved behind the slot's due ones; and the
// wheel is moved on over passed ticks that hold nothing due, as Due would,
// so they are not scanned again.
func (s *Store) Oldest(nowTick int64) (uint32, bool) {
	if !s.started || len(s.index) == 0 {
		return 0, false
	}
	n := int64(len(s.wheel))
	later, haveLater := uint32(0), false
	advance := true // every slot so far held nothing due
	for t := s.done + 1; t <= s.done+n; t++ {
		slot := t % n
		refs := s.wheel[slot]
		end := len(refs) // refs[end:] are for a later turn
		for k := 0; k < end; {
			r := refs[k]
			e := s.at(r.idx)
			switch {
			case !e.live || e.gen != r.gen || e.decideTick < t:
				// Dead, or stale (the trace was rescheduled elsewhere).
				end--
				refs[k] = refs[end]
				refs[end] = refs[len(refs)-1]
				refs = refs[:len(refs)-1]
			case e.decideTick > t:
				end--
				refs[k], refs[end] = refs[end], refs[k]
			default:
				s.wheel[slot] = refs
				return r.idx, true
			}
		}
		s.wheel[slot] = refs
		if len(refs) > 0 && !haveLater {
			later, haveLater = refs[0].idx, true
		}
		if advance && t <= nowTick {
			s.done = t
			continue
		}
		advance = false
	}
	return later, haveLater
}

// Segments calls fn with each stored segment of trace i, in arrival order,
// as its header and body (valid until fn returns).
func (s *Store) Segments(i uint32, fn func(hdr, body []byte) error) error {
	for r := s.at(i).first; r != 0; {
		seg, next, id, err := s.arena.Segment(r)
		if err != nil {
			return err
		}
		if int(id) >= len(s.hdrs) || s.hdrs[id].refs <= 0 {
			return fmt.Errorf("%w: segment header reference", buffer.ErrCorrupt)
		}
		if err := fn(unsafeBytes(s.hdrs[id].b), seg); err != nil {
			return err
		}
		r = next
	}
	return nil
}

// Release forgets trace i and frees its segments, without reading them.
func (s *Store) Release(i uint32) {
	e := s.at(i)
	if !e.live {
		return
	}
	for r := e.first; r != 0; {
		next, id, err := s.arena.Meta(r)
		if err != nil {
			break
		}
		s.unref(id)
		s.arena.Free(r)
		r = next
	}
	delete(s.index, e.id)
	e.live = false
	e.gen++
	e.first, e.last = 0, 0
	s.free = append(s.free, i)
}

// Each calls fn for every waiting trace with its remaining ticks, grouped
// by the arena chunk of their first segment, so that reading their segments
// decompresses each chunk about once.
func (s *Store) Each(nowTick int64, fn func(i uint32, id [16]byte, sum *Summary, remaining int64)) {
	order := make([]uint32, 0, len(s.index))
	for _, i := range s.index {
		order = append(order, i)
	}
	slices.SortFunc(order, func(x, y uint32) int { return cmp.Compare(s.at(x).first, s.at(y).first) })
	for _, i := range order {
		e := s.at(i)
		fn(i, e.id, &e.sum, e.decideTick-nowTick)
	}
}
