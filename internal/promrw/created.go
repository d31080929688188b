package promrw

import (
	"math"

	"github.com/prometheus/prometheus/prompb"
)

type createdKey struct {
	fam string
	h   uint64
}

// noteCreated records a _created sample (seconds since the epoch, as a float)
// as the start time of the points of its family with the same labels.
func (b *batch) noteCreated(s *series, base string, samples []sample) {
	for _, sm := range samples {
		if math.IsNaN(sm.v) || sm.v <= 0 || sm.v > float64(maxTimestampMs)/1e3 {
			continue
		}
		b.created[createdKey{base, b.hashLabels(base, s.labels)}] = int64(sm.v * 1e3)
	}
}

func (b *batch) startFor(fam string, ls []prompb.Label) int64 {
	if len(b.created) == 0 {
		return 0
	}
	return b.created[createdKey{fam, b.hashLabels(fam, ls)}]
}
