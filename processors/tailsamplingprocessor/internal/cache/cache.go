// Package cache holds the decision caches: fixed-capacity sets of trace IDs
// that forget the oldest first, so spans arriving after their trace's
// decision follow it.
package cache

// BytesPerEntry is the memory one cached trace ID costs (ring slot plus index
// entry), used to size a cache from a byte budget.
const BytesPerEntry = 56

// BytesPerTag is what a tag adds to an entry, in a set that holds tags.
const BytesPerTag = 4

// IDSet is a set of trace IDs with FIFO eviction. Its index is a map without
// pointers, which the garbage collector does not scan. Not safe for concurrent use.
type IDSet struct {
	ring    [][16]byte
	tags    []uint32 // per ring slot, allocated by the first non-zero AddTagged
	idx     map[[16]byte]uint32
	head    int // next slot to write
	n       int
	evicted uint64
}

// NewIDSet returns a set holding at most capacity IDs (at least one).
func NewIDSet(capacity int) *IDSet {
	capacity = max(capacity, 1)
	return &IDSet{ring: make([][16]byte, capacity), idx: make(map[[16]byte]uint32, min(capacity, 1<<16))}
}

// Add inserts id, evicting the oldest entry when full. Adding an ID already
// present does nothing.
func (s *IDSet) Add(id [16]byte) { s.AddTagged(id, 0) }

// AddTagged inserts id with a tag (what decided it), as Add.
func (s *IDSet) AddTagged(id [16]byte, tag uint32) {
	if _, ok := s.idx[id]; ok {
		return
	}
	if tag != 0 && s.tags == nil {
		s.tags = make([]uint32, len(s.ring))
	}
	if s.tags != nil {
		s.tags[s.head] = tag
	}
	if s.n == len(s.ring) {
		old := s.ring[s.head]
		if pos, ok := s.idx[old]; ok && int(pos) == s.head {
			delete(s.idx, old)
		}
		s.evicted++
	} else {
		s.n++
	}
	s.ring[s.head] = id
	s.idx[id] = uint32(s.head)
	s.head = (s.head + 1) % len(s.ring)
}

// Tag returns id's tag (0: none, or not in the set).
func (s *IDSet) Tag(id [16]byte) uint32 {
	pos, ok := s.idx[id]
	if !ok || s.tags == nil {
		return 0
	}
	return s.tags[pos]
}

// Contains reports whether id is in the set.
func (s *IDSet) Contains(id [16]byte) bool {
	_, ok := s.idx[id]
	return ok
}

// Len is the number of IDs held.
func (s *IDSet) Len() int { return len(s.idx) }

// Cap is the capacity.
func (s *IDSet) Cap() int { return len(s.ring) }

// Evicted counts IDs forgotten to make room.
func (s *IDSet) Evicted() uint64 { return s.evicted }

// All returns the IDs from oldest to newest (for the restart snapshot).
func (s *IDSet) All() [][16]byte {
	out := make([][16]byte, 0, s.n)
	start := 0
	if s.n == len(s.ring) {
		start = s.head
	}
	for i := 0; i < s.n; i++ {
		id := s.ring[(start+i)%len(s.ring)]
		if _, ok := s.idx[id]; ok {
			out = append(out, id)
		}
	}
	return out
}
