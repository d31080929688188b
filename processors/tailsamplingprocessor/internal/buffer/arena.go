package buffer

import (
	"encoding/binary"
	"fmt"
	"syscall"
)

// Ref addresses a segment in an Arena: chunk index << 32 | offset. Zero is
// no segment.
type Ref uint64

const segHeader = 12 // uint32 length, uint64 next Ref

// Arena stores segments in fixed-size chunks mapped outside the Go heap
// (anonymous mmap), each chunk counting its live segments. Traces arrive and
// are decided in roughly the same order, so chunks empty in order and are
// reused. The arena never grows past its budget: Append reports when a new
// chunk would exceed it, and the caller frees space by deciding the oldest
// traces. Not safe for concurrent use.
type Arena struct {
	chunkSize int
	maxChunks int
	chunks    [][]byte // index 0 unused, so no Ref is zero
	live      []int32  // live segments per chunk
	bytes     []int64  // live bytes per chunk
	free      []uint32 // mapped chunks with no live segments, ready for reuse
	cur       uint32   // chunk being written
	off       int      // write offset in cur
	mapped    int      // chunks mapped (in use or free)
	liveBytes int64
}

// NewArena returns an arena of at most maxBytes, in chunks of chunkSize.
func NewArena(maxBytes int64, chunkSize int) *Arena {
	n := int(maxBytes / int64(chunkSize))
	if n < 2 {
		n = 2
	}
	return &Arena{chunkSize: chunkSize, maxChunks: n, chunks: make([][]byte, 1, n+1), live: make([]int32, 1, n+1), bytes: make([]int64, 1, n+1)}
}

// MaxSegment is the largest segment payload that fits in a chunk.
func (a *Arena) MaxSegment() int { return a.chunkSize - segHeader }

// MappedBytes is the memory the arena holds from the OS.
func (a *Arena) MappedBytes() int64 { return int64(a.mapped) * int64(a.chunkSize) }

// LiveBytes is the payload and headers of live segments.
func (a *Arena) LiveBytes() int64 { return a.liveBytes }

// Budget is the most the arena will map.
func (a *Arena) Budget() int64 { return int64(a.maxChunks) * int64(a.chunkSize) }

// Append writes data as a new segment and links it after prev (if non-zero).
// It returns false, writing nothing, when the segment needs a new chunk and
// the budget is spent; or when data is larger than MaxSegment.
func (a *Arena) Append(data []byte, prev Ref) (Ref, bool) { return a.Append2(nil, data, prev) }

// Append2 is Append of the concatenation of a and b, without concatenating.
func (a *Arena) Append2(pre, data []byte, prev Ref) (Ref, bool) {
	need := segHeader + len(pre) + len(data)
	if need > a.chunkSize {
		return 0, false
	}
	if a.cur == 0 || a.off+need > a.chunkSize {
		if !a.nextChunk() {
			return 0, false
		}
	}
	c := a.chunks[a.cur]
	binary.LittleEndian.PutUint32(c[a.off:], uint32(len(pre)+len(data)))
	binary.LittleEndian.PutUint64(c[a.off+4:], 0)
	copy(c[a.off+segHeader:], pre)
	copy(c[a.off+segHeader+len(pre):], data)
	ref := Ref(uint64(a.cur)<<32 | uint64(a.off))
	a.off += need
	a.live[a.cur]++
	a.bytes[a.cur] += int64(need)
	a.liveBytes += int64(need)
	if prev != 0 {
		pc, po := a.locate(prev)
		binary.LittleEndian.PutUint64(a.chunks[pc][po+4:], uint64(ref))
	}
	return ref, true
}

func (a *Arena) locate(r Ref) (uint32, int) { return uint32(r >> 32), int(uint32(r)) }

// nextChunk makes a fresh chunk current: the old current one is retired (and
// freed at once if nothing in it is live).
func (a *Arena) nextChunk() bool {
	var next uint32
	switch {
	case len(a.free) > 0:
		next = a.free[len(a.free)-1]
		a.free = a.free[:len(a.free)-1]
	case a.mapped < a.maxChunks:
		mem, err := syscall.Mmap(-1, 0, a.chunkSize, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
		if err != nil {
			return false
		}
		a.mapped++
		next = a.slot(mem)
	default:
		return false
	}
	old := a.cur
	a.cur, a.off = next, 0
	if old != 0 && a.live[old] == 0 {
		a.release(old)
	}
	return true
}

// slot puts a newly mapped chunk in an unused index.
func (a *Arena) slot(mem []byte) uint32 {
	for i := 1; i < len(a.chunks); i++ {
		if a.chunks[i] == nil {
			a.chunks[i] = mem
			return uint32(i)
		}
	}
	a.chunks = append(a.chunks, mem)
	a.live = append(a.live, 0)
	a.bytes = append(a.bytes, 0)
	return uint32(len(a.chunks) - 1)
}

// Segment returns a segment's payload (valid until it is freed) and the next
// segment of its trace. A ref that does not address a live segment is an
// error, never a crash.
func (a *Arena) Segment(r Ref) ([]byte, Ref, error) {
	ci, off := a.locate(r)
	if ci == 0 || int(ci) >= len(a.chunks) || a.chunks[ci] == nil || off+segHeader > a.chunkSize {
		return nil, 0, fmt.Errorf("%w: segment ref %#x", ErrCorrupt, uint64(r))
	}
	c := a.chunks[ci]
	n := int(binary.LittleEndian.Uint32(c[off:]))
	if off+segHeader+n > a.chunkSize {
		return nil, 0, fmt.Errorf("%w: segment length %d at %#x", ErrCorrupt, n, uint64(r))
	}
	next := Ref(binary.LittleEndian.Uint64(c[off+4:]))
	return c[off+segHeader : off+segHeader+n : off+segHeader+n], next, nil
}

// Free releases one segment; a retired chunk with nothing live is reused.
func (a *Arena) Free(r Ref) {
	ci, off := a.locate(r)
	if ci == 0 || int(ci) >= len(a.chunks) || a.chunks[ci] == nil {
		return
	}
	n := int64(segHeader + binary.LittleEndian.Uint32(a.chunks[ci][off:]))
	a.live[ci]--
	a.bytes[ci] -= n
	a.liveBytes -= n
	if a.live[ci] == 0 && ci != a.cur {
		a.release(ci)
	}
}

// release returns an empty chunk: kept for reuse while few are spare,
// otherwise unmapped so the process's RSS shrinks after a burst.
func (a *Arena) release(ci uint32) {
	if len(a.free) < 2 {
		a.free = append(a.free, ci)
		return
	}
	_ = syscall.Munmap(a.chunks[ci])
	a.chunks[ci] = nil
	a.mapped--
}

// Close unmaps every chunk.
func (a *Arena) Close() {
	for i := 1; i < len(a.chunks); i++ {
		if a.chunks[i] != nil {
			_ = syscall.Munmap(a.chunks[i])
			a.chunks[i] = nil
		}
	}
	a.free, a.cur, a.off, a.mapped, a.liveBytes = nil, 0, 0, 0, 0
}
