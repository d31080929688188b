package detect

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// For counts from the start of a run of failing buckets, never from a burst
// inside one or two, nor across a bucket whose calls all succeeded.
func TestFailingSince(t *testing.T) {
	const bk = 1000
	start := func(b int64) time.Time { return time.Unix(b*int64(BucketWidth/time.Second), 0) }
	for name, tc := range map[string]struct {
		buckets map[int64][2]uint32 // bucket offset from bk -> calls, errors
		want    time.Time
	}{
		"run of four":                {map[int64][2]uint32{-4: {100, 40}, -3: {100, 40}, -2: {100, 40}, -1: {100, 40}}, start(bk - 4)},
		"burst in two buckets":       {map[int64][2]uint32{-2: {100, 40}, -1: {100, 40}}, time.Time{}},
		"broken by a good bucket":    {map[int64][2]uint32{-5: {100, 40}, -4: {100, 40}, -3: {100, 0}, -2: {100, 40}, -1: {100, 40}}, time.Time{}},
		"quiet edge, gaps skipped":   {map[int64][2]uint32{-5: {1, 1}, -3: {1, 1}, -1: {1, 1}}, start(bk - 5)},
		"background below thr":       {map[int64][2]uint32{-4: {100, 1}, -3: {100, 2}, -2: {100, 1}, -1: {100, 2}}, time.Time{}},
		"filling bucket passed over": {map[int64][2]uint32{-3: {100, 40}, -2: {100, 40}, -1: {100, 40}, 0: {3, 0}}, start(bk - 3)},
	} {
		t.Run(name, func(t *testing.T) {
			ed := &edge{}
			for off, v := range tc.buckets {
				ed.win.add(bk+off, &Counts{Calls: v[0], Errors: v[1]})
			}
			assert.Equal(t, tc.want, ed.failingSince(bk, 0.05))
		})
	}
}
