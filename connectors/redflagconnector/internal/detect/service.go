package detect

import (
	"math"
	"time"
)

// service is the state of one service: its inbound requests (server spans),
// the time they spent in the service itself, error logs, saturation signals
// and SLOs.
type service struct {
	name       string
	in         ring
	total      Counts
	lastBucket int64
	spanBucket int64 // last bucket spans described it (see spansWin)
	since      time.Time
	errTrace   [16]byte
	// self holds, per bucket, the exclusive time of joined requests: the
	// part of a request's duration its own outbound calls do not cover
	// (CPU, locks, waiting for a pool, code that got slow).
	self      histRing
	learn     learner
	baseErr   rateBase
	baseLat   baseHist
	baseCalls ewma // inbound requests per bucket
	baseSelf  baseHist
	logs      logState
	sat       satState
	slos      []sloState
	ev        serviceEval
	origin    bool
	// starved: the origin of a caller-side incident (its own side of its
	// calls got slow) at the last evaluation.
	starved bool
}

type serviceEval struct {
	w5, w1     Counts
	err5, err1 float64
	failing    bool // inbound requests fail far above baseline
	known      bool // its failure rate has history enough (see hasHistory)
	// slow: inbound latency far above its normal; selfSlow: the time
	// requests spend in the service itself is.
	slow, selfSlow bool
	// selfGrew: the time requests spend in the service itself reaches the
	// tail's bar in far more of them than normally, slow or not (see
	// grew), in the last minute or the last 30 s. Not alerted on: it tells
	// which side of a slow call its extra time was spent on. A stall of
	// the whole process (a pause) may set it for a while: it delays the
	// calls in flight too, on the caller's side.
	selfGrew     bool
	lat, selfLat slowResult
	ownShare     float64 // share of sampled failed requests with no failed child call; -1 unknown
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
	n5, n1 := ev.w5.judged(), ev.w1.judged()
	ev.err5, ev.err1 = ratio(ev.w5.Errors, n5), ratio(ev.w1.Errors, n1)
	es := cfg.ErrorSpike
	base := s.baseErr.p(0.01)
	thr := math.Max(es.MinRatio, es.BaselineFactor*base+es.BaselineOffset)
	p0 := math.Max(base, 0.001)
	ev.known = hasHistory(s.baseErr.n, &s.learn, &s.in, bk, ev.known)
	known := ev.known
	quietAgrees := n1 < 10 && (n1 == 0 || ev.w1.Errors > 0)
	ev.failing = known && ((n5 >= es.MinCalls && ev.w5.Errors >= minFailures && ev.err5 >= thr && (ev.err1 >= thr/2 || quietAgrees) &&
		significant(float64(ev.w5.Errors), float64(n5), p0, minInfo)) ||
		(n1 >= es.MinCalls && ev.w1.Errors >= minFailures && ev.err1 >= thr && significant(float64(ev.w1.Errors), float64(n1), p0, minInfo)))
	ev.lat, ev.slow, _ = judgeRecent(&s.in, bk, &s.baseLat, s.baseCalls, cfg.LatencySpike, minInfo)
	// Once slow, the time in its own code stays slow while half the share
	// (or half the median shift) holds: an origin must not flicker between
	// evaluations.
	was := ev.selfSlow
	var self30 slowResult
	ev.selfLat, self30 = judgeSelf(&s.self, bk, &s.baseSelf, cfg.LatencySpike, minInfo,
		surging(&s.in, bk, 6, s.baseCalls), surging(&s.in, bk, 3, s.baseCalls))
	ev.selfSlow = ev.selfLat.slow
	if was && !ev.selfSlow && ev.selfLat.n > 0 && ev.selfLat.barMs > 0 {
		ev.selfSlow = ev.selfLat.share >= cfg.LatencySpike.MinShare/2 ||
			ev.selfLat.recentP50-ev.selfLat.baseP50 >= float64(cfg.LatencySpike.MinDelta.Milliseconds())/2
	}
	// Not under a surge: queueing under load grows a service's own time
	// with nothing starving it.
	wasGrown := ev.selfGrew
	ev.selfGrew = ev.selfSlow || !surging(&s.in, bk, 6, s.baseCalls) &&
		(grew(ev.selfLat, cfg.LatencySpike, minInfo, wasGrown) || grew(self30, cfg.LatencySpike, minInfo, wasGrown))
	ev.ownShare = -1
	if ev.w5.JoinedErr >= 5 {
		ev.ownShare = ratio(ev.w5.OwnErrors, ev.w5.JoinedErr)
	}
}

// judgeSelf runs the latency test on the exclusive time of the last minute
// (or 30 s, when that is slow) of joined requests; it returns the last 30 s
// judged alone too.
func judgeSelf(r *histRing, bk int64, base *baseHist, cfg LatencyConfig, minInfo float64, surge1, surge30 bool) (res, r30 slowResult) {
	h1, h30 := r.sum(bk, 6), r.sum(bk, 3)
	res = judgeSlow(&h1, base, cfg, minInfo, surge1)
	r30 = judgeSlow(&h30, base, cfg, minInfo, surge30)
	if !res.slow && r30.slow {
		res = r30
	}
	return res, r30
}

// grew reports whether a latency's tail grew beyond chance, if maybe not
// enough to be slow: at least a quarter of MinShare of the recent durations
// reach the tail's bar, four times as often as normal ones do,
// significantly (once grown, half that share keeps it). A CPU quota shows
// this way in a service's own code: the process is stopped once its quota
// is spent, and the requests in flight are delayed wherever they are,
// mostly in the calls they wait on. It does not stop the baselines from
// learning: a mild starvation that lasts becomes the service's normal.
func grew(r slowResult, cfg LatencyConfig, minInfo float64, was bool) bool {
	need := cfg.MinShare / 4
	if was {
		need /= 2
	}
	return r.barMs > 0 && r.k >= 3 && r.share >= need && r.share >= 4*r.tailBase &&
		significant(r.k, r.n, r.tailBase, minInfo)
}

// knownHealthy reports whether the service's own server spans show it
// answering normally now: enough recent requests, a baseline to judge them
// by, neither failing nor slow. Callers that see it slow are then slow on
// their side of the call, or on the network between.
func (s *service) knownHealthy() bool {
	ev := &s.ev
	return ev.lat.n >= 3 && ev.lat.barMs > 0 && !ev.slow && !ev.failing
}

func (s *service) learnBaselines(bk int64, halfLife time.Duration) {
	anomalous := s.ev.failing || s.ev.slow || s.ev.selfSlow || s.origin
	from, to, ok := s.learn.due(bk, anomalous, learnTo(&s.in, bk))
	if !ok {
		return
	}
	decay := decayPerBucket(halfLife)
	for b := from; b <= to; b++ {
		if h := s.self.at(b); h != nil {
			s.baseSelf.add(h, decay)
		} else {
			s.baseSelf.add(&Hist{}, decay)
		}
		c := s.in.at(b)
		if c == nil {
			s.baseLat.add(&Hist{}, decay)
			s.baseErr.add(0, 0, decay)
			s.baseCalls.update(0, BucketWidth, halfLife)
			continue
		}
		s.baseCalls.update(float64(c.Calls), BucketWidth, halfLife)
		s.baseLat.add(&c.Hist, decay)
		s.baseErr.add(c.Errors, c.judged(), decay)
	}
}
