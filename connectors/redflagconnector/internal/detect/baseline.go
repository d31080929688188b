package detect

import (
	"math"
	"time"
)

// ewma is an exponentially weighted mean with a half-life, that averages
// plainly until it has seen enough samples (so the first minutes are not
// dominated by the first sample).
type ewma struct {
	v float64
	n float64
}

func (m *ewma) update(x float64, dt, halfLife time.Duration) {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return
	}
	alpha := 1 - math.Exp2(-float64(dt)/float64(halfLife))
	m.n++
	alpha = math.Max(alpha, 1/m.n)
	m.v += alpha * (x - m.v)
}

// ready reports whether the mean has seen at least n samples.
func (m *ewma) ready(n float64) bool { return m.n >= n }
