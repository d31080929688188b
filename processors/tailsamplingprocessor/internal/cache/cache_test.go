package cache

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func id(i int) [16]byte { return [16]byte{byte(i), byte(i >> 8), 7} }

func TestIDSetEvictsOldest(t *testing.T) {
	s := NewIDSet(3)
	for i := 0; i < 3; i++ {
		s.Add(id(i))
	}
	s.Add(id(1)) // already present: no effect on order
	require.Equal(t, 3, s.Len())
	s.Add(id(3))
	require.False(t, s.Contains(id(0)), "oldest evicted")
	require.True(t, s.Contains(id(1)))
	require.True(t, s.Contains(id(3)))
	require.Equal(t, uint64(1), s.Evicted())
	require.Equal(t, [][16]byte{id(1), id(2), id(3)}, s.All())
	for i := 4; i < 100; i++ {
		s.Add(id(i))
	}
	require.Equal(t, 3, s.Len())
	require.Equal(t, [][16]byte{id(97), id(98), id(99)}, s.All())
}

func TestIDSetZeroCapacity(t *testing.T) {
	s := NewIDSet(0)
	s.Add(id(1))
	require.True(t, s.Contains(id(1)))
	require.Equal(t, 1, s.Cap())
}

func TestIDSetTags(t *testing.T) {
	s := NewIDSet(2)
	s.Add(id(1))
	s.AddTagged(id(2), 7)
	require.Equal(t, uint32(0), s.Tag(id(1)), "added before any tag")
	require.Equal(t, uint32(7), s.Tag(id(2)))
	s.AddTagged(id(3), 9) // evicts id(1), takes its slot
	require.Equal(t, uint32(9), s.Tag(id(3)))
	require.Equal(t, uint32(0), s.Tag(id(1)), "evicted")
	s.Add(id(4)) // evicts id(2): its slot's tag must not leak to id(4)
	require.Equal(t, uint32(0), s.Tag(id(4)))
	require.Equal(t, uint32(9), s.Tag(id(3)))
}
