package service

import (
	"context"
	"crypto/sha256"
	"hash/fnv"
	"math/rand/v2"
	"sync"
	"time"
)

// burner does a request's CPU work: rounds of SHA-256, as many as took the
// configured time when the replica started. Under a CPU quota the same rounds
// take longer, which is the point.
type burner struct {
	roundsPerMicro float64
	cost           time.Duration
}

// newBurner calibrates on this machine and draws the per-request cost from
// [lo, hi] with the run's seed and the service name, so a seed fixes it.
func newBurner(seed int64, service string, lo, hi time.Duration) *burner {
	h := fnv.New64a()
	_, _ = h.Write([]byte(service))
	r := rand.New(rand.NewPCG(uint64(seed), h.Sum64()))
	cost := lo
	if hi > lo {
		cost += time.Duration(r.Int64N(int64(hi - lo)))
	}
	const rounds = 20_000
	start := time.Now()
	hashRounds(rounds)
	el := time.Since(start)
	if el <= 0 {
		el = time.Microsecond
	}
	return &burner{roundsPerMicro: rounds / float64(el.Microseconds()+1), cost: cost}
}

// burn does one request's work, within ±20%.
func (b *burner) burn() {
	us := float64(b.cost.Microseconds()) * (0.8 + 0.4*rand.Float64())
	hashRounds(int(us * b.roundsPerMicro))
}

var sink byte

func hashRounds(n int) {
	var h [32]byte
	for range n {
		h = sha256.Sum256(h[:])
	}
	sink ^= h[0]
}

// spinner burns a share of one CPU in a goroutine: the in-process stand-in
// for a CPU quota where cgroups cannot be written.
type spinner struct {
	mu   sync.Mutex
	stop context.CancelFunc
}

// set starts, changes or (duty 0) stops the spinning.
func (s *spinner) set(duty float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stop != nil {
		s.stop()
		s.stop = nil
	}
	if duty <= 0 {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	go func() {
		const period = 20 * time.Millisecond
		busy := time.Duration(duty * float64(period))
		for ctx.Err() == nil {
			end := time.Now().Add(busy)
			for time.Now().Before(end) {
				hashRounds(50)
			}
			time.Sleep(period - busy)
		}
	}()
}
