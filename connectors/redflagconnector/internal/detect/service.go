package detect

import (
	"math"
	"time"
)

// service is the state of one service: its inbound requests (server spans),
// error logs, saturation signals and SLOs.
type service struct {
	name       string
	in         ring
	total      Counts
	lastBucket int64
	since      time.Time
	errTrace   [16]byte
	baseErr    ewma
	baseP99    ewma
	logs       logState
	sat        satState
	slos       []sloState
	ev         serviceEval
	origin     bool
}

type serviceEval struct {
	w5, w1     Counts
	err5, err1 float64
	failing    bool    // inbound requests fail far above baseline
	slow       bool    // inbound p99 far above baseline
	ownShare   float64 // share of sampled failed requests with no failed child call; -1 unknown
}

func newService(name string, cfg Config) *service {
	s := &service{name: name}
	for _, o := range cfg.SLOs {
		if o.Service == name {
			s.slos = append(s.slos, newSLOState(o))
		}
	}
	return s
}

func (s *service) evaluate(cfg Config, bk int64, minInfo float64) {
	ev := &s.ev
	ev.w5, ev.w1 = s.in.sum(bk, NumBuckets), s.in.sum(bk, 6)
	ev.err5, ev.err1 = ratio(ev.w5.Errors, ev.w5.Calls), ratio(ev.w1.Errors, ev.w1.Calls)
	es := cfg.ErrorSpike
	thr := math.Max(es.MinRatio, es.BaselineFactor*s.baseErr.v+es.BaselineOffset)
	p0 := math.Max(s.baseErr.v, 0.001)
	ev.failing = (ev.w5.Calls >= es.MinCalls && ev.err5 >= thr && (ev.err1 >= thr/2 || ev.w1.Calls < 10) &&
		significant(float64(ev.w5.Errors), float64(ev.w5.Calls), p0, minInfo)) ||
		(ev.w1.Calls >= es.MinCalls && ev.err1 >= thr && significant(float64(ev.w1.Errors), float64(ev.w1.Calls), p0, minInfo))
	p99 := ev.w5.Quantile(0.99)
	slowBar := max(cfg.Cascade.LatencyFactor*s.baseP99.v, float64(cfg.Cascade.MinLatency.Milliseconds()))
	ev.slow = s.baseP99.ready(12) && ev.w5.Calls >= es.MinCalls && p99 >= slowBar &&
		(ev.w1.Calls < 10 || ev.w1.Quantile(0.99) >= slowBar)
	ev.ownShare = -1
	if ev.w5.JoinedErr >= 5 {
		ev.ownShare = ratio(ev.w5.OwnErrors, ev.w5.JoinedErr)
	}
}

func (s *service) learn(dt, halfLife time.Duration) {
	if s.ev.failing || s.ev.slow || s.origin {
		return
	}
	if s.ev.w1.Calls >= 10 {
		s.baseErr.update(s.ev.err1, dt, halfLife)
	}
	if s.ev.w1.Calls >= 20 {
		s.baseP99.update(s.ev.w1.Quantile(0.99), dt, halfLife)
	}
}
