package simulate

import (
	"math"
	"math/rand/v2"
	"strings"
)

// --- randomness --------------------------------------------------------------

func (s *Sim) lognormal(median, sigma float64) float64 {
	return median * math.Exp(sigma*s.rng.NormFloat64())
}

// netLatency is one in-cluster hop: 0.2 ms plus an exponential tail.
func (s *Sim) netLatency() int64 {
	return 200_000 + int64(s.rng.ExpFloat64()*150_000)
}

func (s *Sim) traceID() (id [16]byte) {
	a, b := s.rng.Uint64(), s.rng.Uint64()|1
	for i := range 8 {
		id[i] = byte(a >> (56 - 8*i))
		id[8+i] = byte(b >> (56 - 8*i))
	}
	return id
}

func (s *Sim) spanID() (id [8]byte) {
	a := s.rng.Uint64() | 1
	for i := range 8 {
		id[i] = byte(a >> (56 - 8*i))
	}
	return id
}

func uuid(r *rand.Rand) string {
	const hex = "0123456789abcdef"
	var b [36]byte
	a, c := r.Uint64(), r.Uint64()
	j := 0
	for i := range 36 {
		switch i {
		case 8, 13, 18, 23:
			b[i] = '-'
			continue
		}
		var v uint64
		if j < 16 {
			v = a >> (4 * j)
		} else {
			v = c >> (4 * (j - 16))
		}
		b[i] = hex[v&15]
		j++
	}
	return string(b[:])
}

func randName(r *rand.Rand, n int) string {
	const alnum = "bcdfghjklmnpqrstvwxz2456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = alnum[r.IntN(len(alnum))]
	}
	return string(b)
}

func camel(s string) string {
	var b strings.Builder
	up := true
	for _, ch := range s {
		if ch == '-' || ch == '_' {
			up = true
			continue
		}
		if up && ch >= 'a' && ch <= 'z' {
			ch -= 'a' - 'A'
		}
		up = false
		b.WriteRune(ch)
	}
	return b.String()
}
