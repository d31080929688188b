package detect

import "time"

// sloBucket is the width of the long-window buckets: 5 minutes, 864 of them
// for three days (7 KB per SLO).
const (
	sloBucket  = 5 * time.Minute
	sloBuckets = 3 * 24 * 12
)

type sloState struct {
	cfg SLOConfig
	// since is when data first arrived: a window is judged only once at least
	// half of it is covered, so a fresh agent does not call a one-minute blip a
	// three-day budget burn.
	since  time.Time
	epoch  []int64
	calls  []uint32
	errors []uint32
	ev     []sloHit
}

type sloHit struct {
	window, severity string
	burnLong         float64
	burnShort        float64
}

func newSLOState(c SLOConfig) sloState {
	return sloState{cfg: c, epoch: make([]int64, sloBuckets), calls: make([]uint32, sloBuckets), errors: make([]uint32, sloBuckets)}
}

func (s *sloState) add(now time.Time, calls, errors uint32) {
	if s.since.IsZero() {
		s.since = now
	}
	b := now.Unix() / int64(sloBucket/time.Second)
	i := b % sloBuckets
	if s.epoch[i] != b {
		s.epoch[i], s.calls[i], s.errors[i] = b, 0, 0
	}
	s.calls[i] += calls
	s.errors[i] += errors
}

func (s *sloState) burn(now time.Time, window time.Duration) (float64, uint32) {
	b := now.Unix() / int64(sloBucket/time.Second)
	n := int64(window / sloBucket)
	var c, e uint64
	for k := b - n + 1; k <= b; k++ {
		i := k % sloBuckets
		if k >= 0 && s.epoch[i] == k {
			c += uint64(s.calls[i])
			e += uint64(s.errors[i])
		}
	}
	if c == 0 || now.Sub(s.since) < window/2 {
		return 0, 0
	}
	budget := 1 - s.cfg.Objective
	return float64(e) / float64(c) / budget, uint32(min(c, 1<<32-1))
}

// evaluate applies the SRE Workbook's multiwindow, multi-burn-rate rules:
// page when 1 h and 5 m burn at >= 14.4x, or 6 h and 30 m at >= 6x; open a
// ticket when 3 d and 6 h burn at >= 1x. short5m is the 5-minute burn from
// the ten-second ring (finer than the 5-minute buckets).
func (s *sloState) evaluate(now time.Time, short5m float64, short5mCalls uint32) {
	s.ev = s.ev[:0]
	b1h, _ := s.burn(now, time.Hour)
	b6h, _ := s.burn(now, 6*time.Hour)
	b30m, _ := s.burn(now, 30*time.Minute)
	b3d, _ := s.burn(now, 72*time.Hour)
	if short5mCalls >= 10 && b1h >= 14.4 && short5m >= 14.4 {
		s.ev = append(s.ev, sloHit{"1h", "critical", b1h, short5m})
	}
	if b6h >= 6 && b30m >= 6 {
		s.ev = append(s.ev, sloHit{"6h", "critical", b6h, b30m})
	}
	if b3d >= 1 && b6h >= 1 {
		s.ev = append(s.ev, sloHit{"3d", "warning", b3d, b6h})
	}
}
