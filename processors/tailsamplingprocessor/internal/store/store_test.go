package store

import (
	cryptorand "crypto/rand"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigilhq/vigil/processors/tailsamplingprocessor/internal/buffer"
)

func tid(i int) [16]byte { return [16]byte{byte(i), byte(i >> 8), 1} }

func TestWheelDueInOrderAndReschedule(t *testing.T) {
	a := buffer.NewArena(1<<20, 64<<10)
	defer a.Close()
	s := New(a, 10, 16)
	now := int64(100)
	i1 := s.Create(tid(1), now, now+5)
	i2 := s.Create(tid(2), now, now+3)
	i3 := s.Create(tid(3), now, now+50) // beyond the horizon: clamped to it
	require.True(t, s.Append(i1, []byte("hdr"), []byte("seg-a")))
	require.True(t, s.Append(i1, []byte("hdr"), []byte("seg-b")))
	require.Equal(t, 3, s.Len())

	require.Empty(t, s.Due(now+2, nil))
	require.Equal(t, []uint32{i2}, s.Due(now+3, nil))
	s.Release(i2)
	// A root arrives: trace 1 is due earlier.
	s.Reschedule(i1, now+3, now+4)
	require.Equal(t, []uint32{i1}, s.Due(now+4, nil))
	var segs []string
	require.NoError(t, s.Segments(i1, func(h, b []byte) error { segs = append(segs, string(h)+"/"+string(b)); return nil }))
	require.Equal(t, []string{"hdr/seg-a", "hdr/seg-b"}, segs)
	require.Positive(t, s.HeaderBytes(), "one interned header")
	s.Release(i1)
	require.Zero(t, s.HeaderBytes(), "released with its last segment")
	require.Empty(t, s.Due(now+5, nil), "the stale wheel entry of the rescheduled trace is skipped")
	require.Equal(t, []uint32{i3}, s.Due(now+10, nil))
	require.Zero(t, a.LiveBytes()+int64(len(s.Due(now+100, nil))))
}

func TestOldestAndSlotReuse(t *testing.T) {
	a := buffer.NewArena(1<<20, 64<<10)
	defer a.Close()
	s := New(a, 10, 16)
	for i := 0; i < 5; i++ {
		s.Create(tid(i), int64(i), int64(i)+5)
	}
	for want := 0; want < 5; want++ {
		i, ok := s.Oldest(4)
		require.True(t, ok)
		require.Equal(t, tid(want), s.ID(i))
		s.Release(i)
	}
	_, ok := s.Oldest(4)
	require.False(t, ok)
	// Freed slots are reused; lookups see only live traces.
	i := s.Create(tid(9), 6, 11)
	require.Less(t, int(i), 5)
	_, ok = s.Lookup(tid(0))
	require.False(t, ok)
	j, ok := s.Lookup(tid(9))
	require.True(t, ok)
	require.Equal(t, i, j)
}

func TestAppendFailsWhenArenaFull(t *testing.T) {
	a := buffer.NewArena(128<<10, 64<<10)
	defer a.Close()
	s := New(a, 10, 16)
	i := s.Create(tid(1), 0, 5)
	seg := make([]byte, 30<<10)
	n := 0
	// Random, so incompressible: frozen chunks keep their size.
	for _, _ = cryptorand.Read(seg); s.Append(i, []byte("h"), seg); _, _ = cryptorand.Read(seg) {
		n++
	}
	require.Equal(t, 4, n, "the arena holds two 64 KiB chunks of data (the current one and a frozen one), four 30 KiB segments")
	require.Equal(t, uint64(4*len(seg)), s.Summary(i).BufferedBytes)
	s.Release(i)
	require.True(t, s.Append(s.Create(tid(2), 0, 5), []byte("h"), seg), "releasing frees the arena")
}

// A batch whose clock is stale by more than the wheel's horizon (it waited
// for the lock while decisions went on, as under overload) must still get a
// decision: scheduled before the wheel's position, it would never come due.
func TestStaleClockStillComesDue(t *testing.T) {
	a := buffer.NewArena(1<<20, 64<<10)
	defer a.Close()
	s := New(a, 10, 16)
	s.Create(tid(1), 0, 5)
	require.Len(t, s.Due(100, nil), 1, "the wheel has moved to tick 100")
	i := s.Create(tid(2), 3, 3+5) // a batch stamped at tick 3
	var due []uint32
	for tick := int64(101); tick <= 130 && len(due) == 0; tick++ {
		due = s.Due(tick, due)
	}
	require.Equal(t, []uint32{i}, due, "decided within the wheel's horizon")
	_, ok := s.Oldest(130)
	require.False(t, ok)
}

// While the decision loop is stalled (blocked forwarding to a full exporter
// queue) the clock runs ahead of the wheel, and traces arriving then are
// scheduled for a later turn of it. Deciding the oldest early, as a full
// byte budget does, must neither lose them from the wheel (they would wait
// until shutdown) nor skip them.
func TestOldestWhileTheWheelLags(t *testing.T) {
	s := stalledAtTick1(t)
	// The clock reaches 40.
	b := s.Create(tid(2), 40, 45)
	c := s.Create(tid(3), 40, 46)
	o, ok := s.Oldest(40)
	require.True(t, ok)
	require.Equal(t, b, o, "the trace due soonest")
	s.Release(b)
	var due []uint32
	for tick := int64(2); tick <= 60; tick++ {
		due = s.Due(tick, due)
	}
	require.Equal(t, []uint32{c}, due, "the other trace still comes due")
}

// A root span moves a trace's decision earlier by exactly a turn of the
// wheel (possible while the wheel lags): the trace is due once, not twice.
func TestRescheduleByATurnIsDueOnce(t *testing.T) {
	s := stalledAtTick1(t)
	i := s.Create(tid(2), 40, 50)
	s.Reschedule(i, 40, 38)
	var due []uint32
	for tick := int64(2); tick <= 60; tick++ {
		due = s.Due(tick, due)
	}
	require.Equal(t, []uint32{i}, due)
}

// stalledAtTick1 returns a store whose wheel of 12 slots has processed tick 1
// and holds nothing: its decision loop stalls there while the clock runs on.
func stalledAtTick1(t *testing.T) *Store {
	a := buffer.NewArena(1<<20, 64<<10)
	t.Cleanup(a.Close)
	s := New(a, 10, 16)
	first := s.Create(tid(1), 0, 1)
	require.Equal(t, []uint32{first}, s.Due(1, nil))
	s.Release(first)
	return s
}
