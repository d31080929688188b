package buffer

import (
	"encoding/binary"
	"fmt"
	"os"
	"syscall"

	"github.com/klauspost/compress/s2"
)

// Ref addresses a segment in an Arena: chunk index << 32 | slot. Zero is no
// segment.
type Ref uint64

// slotSize is one segment's entry in its chunk's slot table: payload offset
// and length (uint32 each), the next segment of its trace (uint64) and the
// caller's aux value (uint32). The table stays uncompressed, so links can be
// followed and segments freed without decompressing anything.
const slotSize = 20

// freedBit marks a freed segment in its slot's length, so a second Free of
// the same ref changes nothing.
const freedBit = 1 << 31

// cacheSlots is how many frozen chunks are kept decompressed at once.
// Traces are decided in about the order they arrived, so the segments of
// consecutive sampled traces sit in the same few chunks.
const cacheSlots = 3

// storeRatio: a chunk whose S2 encoding saves less than a tenth is frozen
// uncompressed.
const storeRatio = 0.9

type chunk struct {
	// mem is mapped outside the Go heap. While the chunk is written it is
	// chunkSize bytes, payloads from the front and slots from the back (slot
	// i at chunkSize-(i+1)*slotSize). Frozen, it is the slot table (the same
	// bytes, slot i at (n-1-i)*slotSize) and then the payload, S2-encoded
	// unless stored.
	mem    []byte
	frozen bool
	stored bool
	n      int   // slots
	plen   int   // payload bytes (uncompressed)
	blen   int   // frozen payload bytes as mapped
	live   int32 // live segments
}

type cached struct {
	ci   uint32 // chunk held (0: none)
	buf  []byte // chunkSize, mapped
	used uint64 // for least-recently-used replacement
}

// Arena stores segments in chunks mapped outside the Go heap (anonymous
// mmap), so buffered spans cost the garbage collector nothing. One chunk is
// written at a time; when it is full it is frozen: its payload is compressed
// with S2 into a mapping of just the size needed, and its buffer is reused
// for the next chunk. Segments of frozen chunks are read through a small
// cache of decompressed chunks; following links and freeing never
// decompress. Traces arrive and are decided in roughly the same order, so
// chunks empty in order and are unmapped. The arena never maps more than its
// budget (decompression cache included): Append reports when a segment does
// not fit, and the caller frees space by deciding the oldest traces. Not
// safe for concurrent use.
type Arena struct {
	chunkSize  int
	maxBytes   int64
	dataLimit  int64 // maxBytes less the decompression cache
	chunks     []chunk
	freeIdx    []uint32
	spare      [][]byte // mapped chunk buffers not in use
	cur        uint32
	off        int // payload write offset in cur
	dataMapped int64
	cacheBytes int64
	liveBytes  int64
	frozenRaw  int64 // uncompressed payload bytes of frozen chunks
	frozenMap  int64 // what those chunks map
	cache      [cacheSlots]cached
	clock      uint64
	scratch    []byte // S2 output, MaxEncodedLen(chunkSize)
	enc        struct {
		ci, n int // chunk and slot count encoded (ci 0: none)
		off   int
		body  []byte
	}
	encodes int // chunks S2-encoded, for tests
}

var pageSize = os.Getpagesize()

// NewArena returns an arena of at most maxBytes, in chunks of chunkSize. The
// budget is raised to hold at least two chunks and the decompression cache.
func NewArena(maxBytes int64, chunkSize int) *Arena {
	chunkSize = (chunkSize + pageSize - 1) / pageSize * pageSize
	if least := int64(cacheSlots+2) * int64(chunkSize); maxBytes < least {
		maxBytes = least
	}
	a := &Arena{
		chunkSize: chunkSize,
		maxBytes:  maxBytes,
		dataLimit: maxBytes - int64(cacheSlots)*int64(chunkSize),
		chunks:    make([]chunk, 1, 64),
	}
	// The decompression cache is mapped now (pages cost memory only once
	// written), so reading a sampled trace cannot fail for want of it later.
	a.mapCache()
	return a
}

func (a *Arena) mapCache() {
	for i := range a.cache {
		if a.cache[i].buf == nil {
			if a.cache[i].buf = MapAnon(a.chunkSize); a.cache[i].buf != nil {
				a.cacheBytes += int64(a.chunkSize)
			}
		}
	}
}

// MaxSegment is the largest segment payload that fits in a chunk.
func (a *Arena) MaxSegment() int { return a.chunkSize - slotSize }

// MappedBytes is the memory the arena holds from the OS.
func (a *Arena) MappedBytes() int64 { return a.dataMapped + a.cacheBytes }

// LiveBytes is the uncompressed payload and slots of live segments.
func (a *Arena) LiveBytes() int64 { return a.liveBytes }

// Budget is the most the arena will map.
func (a *Arena) Budget() int64 { return a.maxBytes }

// Compression returns the uncompressed payload bytes of the frozen chunks
// still mapped and the bytes those chunks map (slot tables included).
func (a *Arena) Compression() (raw, mapped int64) { return a.frozenRaw, a.frozenMap }

// MapAnon maps n bytes of anonymous private memory outside the Go heap, or
// returns nil if the system refuses.
func MapAnon(n int) []byte {
	mem, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return nil
	}
	return mem
}

// Append writes data as a new segment carrying aux and links it after prev
// (if non-zero). It returns false, writing nothing, when the segment needs a
// new chunk and the budget is spent, or when data is larger than MaxSegment.
func (a *Arena) Append(aux uint32, data []byte, prev Ref) (Ref, bool) {
	if len(data)+slotSize > a.chunkSize {
		return 0, false
	}
	if a.cur == 0 || !a.fits(len(data)) {
		if !a.nextChunk() {
			return 0, false
		}
	}
	c := &a.chunks[a.cur]
	copy(c.mem[a.off:], data)
	s := c.mem[a.chunkSize-(c.n+1)*slotSize:]
	binary.LittleEndian.PutUint32(s, uint32(a.off))
	binary.LittleEndian.PutUint32(s[4:], uint32(len(data)))
	binary.LittleEndian.PutUint64(s[8:], 0)
	binary.LittleEndian.PutUint32(s[16:], aux)
	ref := Ref(uint64(a.cur)<<32 | uint64(c.n))
	c.n++
	a.off += len(data)
	c.live++
	a.liveBytes += int64(len(data) + slotSize)
	if prev != 0 {
		if s := a.slot(prev); s != nil {
			binary.LittleEndian.PutUint64(s[8:], uint64(ref))
		}
	}
	return ref, true
}

func (a *Arena) fits(n int) bool {
	return a.off+n+(a.chunks[a.cur].n+1)*slotSize <= a.chunkSize
}

// nextChunk makes a fresh chunk current. The full one is frozen (or, with
// nothing live in it, simply reused).
func (a *Arena) nextChunk() bool {
	if a.cur != 0 {
		c := &a.chunks[a.cur]
		if c.live == 0 {
			c.n, a.off = 0, 0
			return true
		}
		if !a.freeze() {
			return false
		}
	}
	var mem []byte
	if n := len(a.spare); n > 0 {
		mem = a.spare[n-1]
		a.spare = a.spare[:n-1]
	} else {
		if a.dataMapped+int64(a.chunkSize) > a.dataLimit {
			return false
		}
		if mem = MapAnon(a.chunkSize); mem == nil {
			return false
		}
		a.dataMapped += int64(a.chunkSize)
	}
	var ci uint32
	if n := len(a.freeIdx); n > 0 {
		ci = a.freeIdx[n-1]
		a.freeIdx = a.freeIdx[:n-1]
	} else {
		a.chunks = append(a.chunks, chunk{})
		ci = uint32(len(a.chunks) - 1)
	}
	a.chunks[ci] = chunk{mem: mem}
	a.cur, a.off = ci, 0
	return true
}

// freeze compresses the current chunk into a mapping of its own and puts
// its buffer aside for reuse. It returns false, changing nothing, when the
// budget has no room for the frozen copy.
func (a *Arena) freeze() bool {
	c := &a.chunks[a.cur]
	payload := c.mem[:a.off]
	tbl := c.n * slotSize
	if a.dataMapped+int64(pageSize) > a.dataLimit {
		return false // not even one page: do not compress for nothing
	}
	// While the budget is full the caller frees the oldest traces one at a
	// time and retries: the chunk's encoding is kept between attempts
	// (freeing segments does not change a chunk's bytes).
	if a.enc.ci != int(a.cur) || a.enc.off != a.off || a.enc.n != c.n {
		if a.scratch == nil {
			a.scratch = make([]byte, s2.MaxEncodedLen(a.chunkSize))
		}
		a.enc.body = s2.Encode(a.scratch, payload)
		a.enc.ci, a.enc.off, a.enc.n = int(a.cur), a.off, c.n
		a.encodes++
	}
	body := a.enc.body
	stored := float64(len(body)) >= storeRatio*float64(len(payload))
	if stored {
		body = payload
	}
	size := (tbl + len(body) + pageSize - 1) / pageSize * pageSize
	if a.dataMapped+int64(size) > a.dataLimit {
		return false
	}
	mem := MapAnon(size)
	if mem == nil {
		return false
	}
	a.dataMapped += int64(size)
	copy(mem, c.mem[a.chunkSize-tbl:])
	copy(mem[tbl:], body)
	a.spare = append(a.spare, c.mem)
	c.mem, c.frozen, c.stored, c.plen, c.blen = mem, true, stored, a.off, len(body)
	a.frozenRaw += int64(c.plen)
	a.frozenMap += int64(size)
	a.enc.ci = 0
	a.cur, a.off = 0, 0
	return true
}

// slot returns the slot table entry of r, or nil when r addresses no
// segment.
func (a *Arena) slot(r Ref) []byte {
	ci, si := uint32(r>>32), int(uint32(r))
	if ci == 0 || int(ci) >= len(a.chunks) {
		return nil
	}
	c := &a.chunks[ci]
	if c.mem == nil || si >= c.n {
		return nil
	}
	if c.frozen {
		o := (c.n - 1 - si) * slotSize
		return c.mem[o : o+slotSize]
	}
	o := a.chunkSize - (si+1)*slotSize
	return c.mem[o : o+slotSize]
}

// Meta returns a segment's next segment and aux value without reading its
// payload.
func (a *Arena) Meta(r Ref) (next Ref, aux uint32, err error) {
	s := a.slot(r)
	if s == nil {
		return 0, 0, fmt.Errorf("%w: segment ref %#x", ErrCorrupt, uint64(r))
	}
	return Ref(binary.LittleEndian.Uint64(s[8:])), binary.LittleEndian.Uint32(s[16:]), nil
}

// Segment returns a segment's payload, its next segment and aux value. The
// payload is valid until the next call to Segment, Append or Free. A ref
// that does not address a live segment is an error, never a crash.
func (a *Arena) Segment(r Ref) ([]byte, Ref, uint32, error) {
	s := a.slot(r)
	if s == nil {
		return nil, 0, 0, fmt.Errorf("%w: segment ref %#x", ErrCorrupt, uint64(r))
	}
	off, n := int(binary.LittleEndian.Uint32(s)), binary.LittleEndian.Uint32(s[4:])
	if n&freedBit != 0 {
		return nil, 0, 0, fmt.Errorf("%w: segment ref %#x was freed", ErrCorrupt, uint64(r))
	}
	next, aux := Ref(binary.LittleEndian.Uint64(s[8:])), binary.LittleEndian.Uint32(s[16:])
	ci := uint32(r >> 32)
	c := &a.chunks[ci]
	var payload []byte
	switch {
	case !c.frozen:
		payload = c.mem[:a.off]
		if ci != a.cur {
			payload = nil
		}
	case c.stored:
		payload = c.mem[c.n*slotSize : c.n*slotSize+c.blen]
	default:
		var err error
		if payload, err = a.decompressed(ci); err != nil {
			return nil, 0, 0, err
		}
	}
	end := off + int(n)
	if end > len(payload) {
		return nil, 0, 0, fmt.Errorf("%w: segment %d+%d at %#x", ErrCorrupt, off, n, uint64(r))
	}
	return payload[off:end:end], next, aux, nil
}

// decompressed returns the payload of frozen chunk ci from the cache,
// decompressing it into the least recently used entry if needed.
func (a *Arena) decompressed(ci uint32) ([]byte, error) {
	a.clock++
	lru := 0
	for i := range a.cache {
		e := &a.cache[i]
		if e.ci == ci {
			e.used = a.clock
			return e.buf[:a.chunks[ci].plen], nil
		}
		if e.used < a.cache[lru].used {
			lru = i
		}
	}
	e := &a.cache[lru]
	if e.buf == nil {
		if a.mapCache(); e.buf == nil {
			return nil, fmt.Errorf("cannot map a decompression buffer of %d bytes", a.chunkSize)
		}
	}
	c := &a.chunks[ci]
	e.ci = 0
	out, err := s2.Decode(e.buf, c.mem[c.n*slotSize:c.n*slotSize+c.blen])
	if err != nil || len(out) != c.plen || (len(out) > 0 && &out[0] != &e.buf[0]) {
		return nil, fmt.Errorf("%w: chunk %d does not decompress", ErrCorrupt, ci)
	}
	e.ci, e.used = ci, a.clock
	return out, nil
}

// Free releases one segment; a chunk with nothing live is unmapped (the
// current chunk is reused instead).
func (a *Arena) Free(r Ref) {
	s := a.slot(r)
	if s == nil {
		return
	}
	ci := uint32(r >> 32)
	c := &a.chunks[ci]
	n := binary.LittleEndian.Uint32(s[4:])
	if c.live <= 0 || n&freedBit != 0 {
		return // freed already
	}
	binary.LittleEndian.PutUint32(s[4:], n|freedBit)
	c.live--
	a.liveBytes -= int64(n) + slotSize
	if c.live == 0 && ci != a.cur {
		a.release(ci)
	}
}

// release unmaps a frozen chunk with nothing live and forgets its index.
func (a *Arena) release(ci uint32) {
	c := &a.chunks[ci]
	for i := range a.cache {
		if a.cache[i].ci == ci {
			a.cache[i].ci, a.cache[i].used = 0, 0
		}
	}
	if c.frozen {
		a.frozenRaw -= int64(c.plen)
		a.frozenMap -= int64(len(c.mem))
	}
	a.dataMapped -= int64(len(c.mem))
	_ = syscall.Munmap(c.mem)
	*c = chunk{}
	a.freeIdx = append(a.freeIdx, ci)
}

// Close unmaps everything.
func (a *Arena) Close() {
	for i := 1; i < len(a.chunks); i++ {
		if a.chunks[i].mem != nil {
			_ = syscall.Munmap(a.chunks[i].mem)
		}
	}
	for _, m := range a.spare {
		_ = syscall.Munmap(m)
	}
	for i := range a.cache {
		if a.cache[i].buf != nil {
			_ = syscall.Munmap(a.cache[i].buf)
		}
	}
	*a = Arena{chunkSize: a.chunkSize, maxBytes: a.maxBytes, dataLimit: a.dataLimit, chunks: make([]chunk, 1)}
}
