package simulate

import (
	"math"
	"time"
)

// --- traffic ---------------------------------------------------------------

// diurnalAmp is the daily swing of the root rate around its mean.
const diurnalAmp = 0.2

func (s *Sim) maxRate() float64 { return s.rate * s.rateMul * (1 + diurnalAmp) }

func (s *Sim) scheduleArrival() {
	s.arrivalGen++
	s.schedule(event{at: s.now + s.expDelay(s.maxRate()), kind: evArrival, n: s.arrivalGen})
}

func (s *Sim) expDelay(ratePerNs float64) int64 {
	return int64(s.rng.ExpFloat64()/ratePerNs) + 1
}

func (s *Sim) arrival() {
	s.schedule(event{at: s.now + s.expDelay(s.maxRate()), kind: evArrival, n: s.arrivalGen})
	// Thinning: accept with rate(t)/maxRate for a non-homogeneous Poisson process.
	hour := float64(s.now%int64(24*time.Hour)) / float64(time.Hour)
	cur := 1 + diurnalAmp*math.Sin(2*math.Pi*(hour-9)/24)
	if s.rng.Float64()*(1+diurnalAmp) > cur {
		return
	}
	svc := s.entry
	if len(svc.targets) == 0 {
		return
	}
	x := s.rng.Float64() * s.entryWeight()
	op := svc.ops[len(svc.ops)-1]
	for _, o := range svc.ops {
		if x < o.weight {
			op = o
			break
		}
		x -= o.weight
	}
	r := s.newRequest()
	r.trace = s.traceID()
	r.span = s.spanID()
	r.op = op
	r.id = s.entityID()
	if s.badShare > 0 && s.rng.Float64() < s.badShare {
		r.bad = 400
		if op.idInPath && s.rng.Float64() < 0.7 {
			r.bad = 404
		}
	} else if op.idInPath && s.rng.Float64() < 0.004 {
		r.bad = 404 // a few unknown products in normal traffic
	}
	s.stats.Roots++
	inst := svc.targets[s.rng.IntN(len(svc.targets))]
	if inst.refusing {
		inst = svc.ready[s.rng.IntN(len(svc.ready))]
	}
	r.inst = inst
	r.arrive = s.now
	s.admit(r)
}

func (s *Sim) entryWeight() float64 {
	var w float64
	for _, o := range s.entry.ops {
		w += o.weight
	}
	return w
}

func (s *Sim) entityID() int64 { return 1000 + s.rng.Int64N(90000) }
