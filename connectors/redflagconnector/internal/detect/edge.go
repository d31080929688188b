package detect

import (
	"math"
	"time"

	"github.com/vigilhq/vigil/internal/redflag"
)

// edge is the state of calls from one caller to one callee: about 7 KB, all
// of it fixed-size.
type edge struct {
	caller, callee string
	// kind is what the callee name is (an unresolved address, a host, a
	// service, ...), for annotations and the status page.
	kind redflag.Kind
	// mesh: some of its calls were read from a service mesh's metrics;
	// spanBucket: the last bucket spans described it (see spansWin).
	mesh       bool
	spanBucket int64
	win        ring
	total      Counts
	lastBucket int64
	since      time.Time // first seen: the start of its cumulative counters
	errTrace   [16]byte
	timeoutMs  float64 // learned from timed-out calls
	timeoutN   uint32
	// wraps is the callee of calls nested in this edge's client spans, last
	// seen at wrapsBucket.
	wraps       string
	wrapsBucket int64

	// Baselines, learned a minute behind the present while the edge is
	// judged normal (see learner).
	learn            learner
	baseErr, baseTmo rateBase
	baseLat          baseHist
	baseNear         ewma
	baseFanout       ewma
	baseCalls        ewma // calls per bucket
	baseParent       ewma // mean duration of the caller's requests that call this callee

	ev      edgeEval
	flagged bool
	// stormSince is when the current retry storm condition began; trigger
	// recovery is tracked for the metastable flag.
	stormSince, triggerGoneSince time.Time
}

// edgeEval is what the last evaluation concluded about an edge.
type edgeEval struct {
	w5, w1       Counts
	err5, err1   float64
	thr          float64
	baseErr      float64
	p50, p99     float64
	near5, near1 float64 // share of calls beyond Budget x timeout
	timeoutMs    float64 // the timeout this evaluation believed (0: none)
	tmo5, tmo1   float64 // share of calls that timed out

	spike, spikeKeep       bool
	fast                   bool // failing in the last minute alone (for the incident graph)
	pressure, pressureKeep bool
	lat                    slowResult // the latency test that decided slow
	slow, slowKeep         bool       // latency far above normal (DependencyLatencySpike)
	storm, stormKeep       bool
	amplification          float64
	propagation            float64 // -1 when not measured
	// parentRise is how much longer, on average, the caller's own requests
	// that called this callee took in the last minute than normally (ms; 0
	// when not measured).
	parentRise float64
	anomalous  bool
	known      bool // its failure rate has history enough (see hasHistory)
}

func (ed *edge) timeout(cfg Config) float64 {
	if d, ok := cfg.TimeoutPressure.Timeouts[ed.callee]; ok && d > 0 {
		return float64(d.Milliseconds())
	}
	if ed.timeoutN >= 3 {
		return ed.timeoutMs
	}
	return 0
}

// judged is the number of calls whose outcome says something about the
// callee: all but the ones their caller abandoned.
func (c *Counts) judged() uint32 { return c.Calls - min(c.Cancelled, c.Calls) }

func (ed *edge) evaluate(cfg Config, bk int64, minInfo float64) {
	ev := &ed.ev
	ev.w5 = ed.win.sum(bk, NumBuckets)
	ev.w1 = ed.win.sum(bk, 6)
	w5, w1 := &ev.w5, &ev.w1
	n5, n1 := w5.judged(), w1.judged()
	ev.err5, ev.err1 = ratio(w5.Errors, n5), ratio(w1.Errors, n1)
	ev.p50, ev.p99 = w5.Quantile(0.5), w5.Quantile(0.99)

	// DependencyErrorSpike: a rate far above the edge's own, and more than
	// chance at its count (a few calls a minute can alert when most fail).
	es := cfg.ErrorSpike
	ev.baseErr = ed.baseErr.p(0.01)
	ev.thr = math.Max(es.MinRatio, es.BaselineFactor*ev.baseErr+es.BaselineOffset)
	p0 := math.Max(ev.baseErr, 0.001)
	// A spike is a change: an edge is judged once it has a history of its
	// own (an edge that has always failed half its calls is not spiking).
	ev.known = hasHistory(ed.baseErr.n, &ed.learn, &ed.win, bk, ev.known)
	known := ev.known
	// With under ten calls in the last minute it cannot tell a rate, but
	// calls that all succeeded say the failure is over: a quiet edge must not
	// hold its alert for the five minutes its window remembers.
	quietAgrees := n1 < 10 && (n1 == 0 || w1.Errors > 0)
	lastMinuteAgrees := ev.err1 >= ev.thr || quietAgrees
	ev.spike = known && n5 >= es.MinCalls && w5.Errors >= minFailures && ev.err5 >= ev.thr && lastMinuteAgrees &&
		significant(float64(w5.Errors), float64(n5), p0, minInfo)
	// A strong last minute may start it before five minutes of healthy
	// history have been diluted away: the last minute alone must pass every
	// test, and the five-minute ratio must be on its way (half the threshold).
	if !ev.spike && known && n1 >= es.MinCalls && w1.Errors >= minFailures && ev.err1 >= ev.thr && ev.err5 >= ev.thr/2 &&
		significant(float64(w1.Errors), float64(n1), p0, minInfo) {
		ev.spike = true
	}
	// A caller that all but stopped calling (a circuit breaker opened,
	// clients gave up) leaves both windows full of the healthy calls it made
	// before: its last 30 s are judged alone when they carried under a
	// quarter of the edge's normal calls. The drop itself is the persistence
	// that the five-minute ratio stands for on the other routes.
	w30 := ed.win.sum(bk, 3)
	n30 := w30.judged()
	err30 := ratio(w30.Errors, n30)
	dropped := known && ed.baseCalls.ready(NumBuckets) && float64(w30.Calls) < droppedShare*3*ed.baseCalls.v &&
		n30 >= es.MinCalls && w30.Errors >= minFailures && err30 >= ev.thr &&
		significant(float64(w30.Errors), float64(n30), p0, minInfo)
	ev.spike = ev.spike || dropped
	ev.spikeKeep = n5 > 0 && (ev.err1 >= ev.thr/2 || (quietAgrees && ev.err5 >= ev.thr/2))

	// DependencyTimeoutPressure.
	tp := cfg.TimeoutPressure
	ev.tmo5 = ratio(w5.Class[ClassTimeout], n5)
	ev.tmo1 = ratio(w1.Class[ClassTimeout], n1)
	ev.near5, ev.near1 = 0, 0
	bimodal, bimodal1 := false, false
	t := ed.timeout(cfg)
	// A learned timeout is believed only while calls respect it: if more
	// than 2% of calls ran well past it, it was not the caller's timeout.
	if _, known := cfg.TimeoutPressure.Timeouts[ed.callee]; t > 0 && !known && w5.ShareAtLeast(1.25*t) > 0.02 {
		t = 0
	}
	ev.timeoutMs = t
	if t > 0 {
		ev.near5, ev.near1 = w5.ShareAtLeast(tp.Budget*t), w1.ShareAtLeast(tp.Budget*t)
		notUsual := ed.baseLat.n < priorWeight || ed.baseLat.quantile(0.99) < tp.Budget*t
		bimodal = notUsual && ev.p99 >= tp.Budget*t && ev.p50 <= 0.25*t
		bimodal1 = w1.Quantile(0.99) >= tp.Budget*t && w1.Quantile(0.5) <= 0.25*t
	}
	pTmo := math.Max(ed.baseTmo.p(0.001), 0.001)
	nearHigh := ev.near5 >= tp.NearShare && ev.near5 >= 3*ed.baseNear.v && (ev.near1 >= tp.NearShare || n1 < 10)
	tmoQuiet := n1 < 10 && (n1 == 0 || w1.Class[ClassTimeout] > 0)
	tmoHigh := known && ev.tmo5 >= tp.TimeoutRatio && w5.Class[ClassTimeout] >= minFailures && (ev.tmo1 >= tp.TimeoutRatio || tmoQuiet) &&
		significant(float64(w5.Class[ClassTimeout]), float64(n5), pTmo, minInfo)
	ev.pressure = n5 >= tp.MinCalls && (nearHigh || tmoHigh || (bimodal && (bimodal1 || n1 < 10)))
	ev.pressureKeep = n5 > 0 && (ev.near1 >= tp.NearShare/2 || ev.tmo1 >= tp.TimeoutRatio/2 || bimodal1)

	// The last minute alone, when it has enough calls: incidents are found
	// from it (a cascade must not wait for five minutes of history to dilute
	// away), while the symptom alerts keep the five-minute rule.
	ev.fast = dropped || known && n1 >= es.MinCalls && ((w1.Errors >= minFailures && ev.err1 >= ev.thr &&
		significant(float64(w1.Errors), float64(n1), p0, minInfo)) ||
		(ev.tmo1 >= tp.TimeoutRatio && w1.Class[ClassTimeout] >= minFailures && significant(float64(w1.Class[ClassTimeout]), float64(n1), pTmo, minInfo)))

	// Latency far above the edge's own normal, in the last 30 s or minute.
	ev.lat, ev.slow, ev.slowKeep = judgeRecent(&ed.win, bk, &ed.baseLat, ed.baseCalls, cfg.LatencySpike, minInfo)

	// Propagation inside the caller's process.
	ev.propagation = -1
	if w5.JoinedErr >= 5 {
		ev.propagation = ratio(w5.JoinedPropagated, w5.JoinedErr)
	}
	ev.parentRise = 0
	if w1.JoinedParents >= 3 && ed.baseParent.ready(6) {
		ev.parentRise = float64(w1.JoinedParentMs)/float64(w1.JoinedParents) - ed.baseParent.v
	}

	// RetryStorm (the unhealthy-callee part is decided with the graph).
	rs := cfg.RetryStorm
	ev.amplification = amplification(w5, ed.baseFanout)
	amp1 := amplification(w1, ed.baseFanout)
	retry5, retry1 := ratio(w5.Retries, w5.Calls), ratio(w1.Retries, w1.Calls)
	// Judged on five minutes, or on the last minute alone when it has enough
	// calls (a storm builds in seconds, and five minutes of history dilute it).
	ev.storm = (w5.Calls >= rs.MinCalls && retry5 >= rs.MinRetryRatio && ev.amplification >= rs.MinAmplification &&
		(retry1 >= rs.MinRetryRatio || w1.Calls < 10)) ||
		(w1.Calls >= rs.MinCalls && retry1 >= rs.MinRetryRatio && amp1 >= rs.MinAmplification && retry5 >= rs.MinRetryRatio/2)
	ev.amplification = max(ev.amplification, amp1)
	ev.stormKeep = w5.Calls > 0 && retry1 >= rs.MinRetryRatio/2 && amp1 >= 1+(rs.MinAmplification-1)/2

	ev.anomalous = ev.spike || ev.pressure || ev.slow || ev.fast
}

// minFailures is the fewest failures any rate alert starts on: two could be
// chance at any rate.
const minFailures = 3

// failingSince is when the edge's current run of failures began (see
// runSince): buckets whose calls failed at least at thr.
func (ed *edge) failingSince(bk int64, thr float64) time.Time {
	return ed.win.runSince(bk, func(c *Counts) (bool, bool) {
		n := c.judged()
		return n > 0, c.Errors > 0 && ratio(c.Errors, n) >= thr
	})
}

// slowSince is when the edge's current run of slow calls began (see
// runSince): buckets with at least the share of calls beyond the bar that
// made the latest latency test slow.
func (ed *edge) slowSince(bk int64, minShare float64) time.Time {
	l := &ed.ev.lat
	if !l.slow || l.barMs <= 0 {
		return time.Time{}
	}
	share := minShare
	if l.barMs == l.baseP90 { // the shift test decided
		share = shiftShare
	}
	return ed.win.runSince(bk, func(c *Counts) (bool, bool) {
		n := c.Hist.Total()
		return n > 0, c.ShareAtLeast(l.barMs) >= share
	})
}

// droppedShare is the share of an edge's normal calls below which its caller
// has all but stopped calling.
const droppedShare = 0.25

// minHistory is how many calls' worth of history a failure rate needs before
// it is judged against it: a few minutes of a quiet edge, seconds of a busy
// one.
const minHistory = 20

// hasHistory reports whether a failure rate has history enough to be judged
// against: minHistory calls learned, or half that learned and the rest
// waiting to be (see learnTo; a quiet series waits minutes for calls to
// vouch for its buckets). The learned half shows a series that has always
// failed as it is, so its failures are no spike. A series that had it when
// it went anomalous keeps it (was) until it is normal again: its waiting
// buckets are dropped then, and the verdict must not change mid-incident.
func hasHistory(learned float32, l *learner, r *ring, bk int64, was bool) bool {
	if learned >= minHistory {
		return true
	}
	if l.quietSince < 0 {
		return was
	}
	if learned < minHistory/2 || l.next == 0 {
		return false
	}
	n := float64(learned)
	for b := max(l.next, l.quietSince); b <= bk-lagLearn; b++ {
		if c := r.at(b); c != nil {
			n += float64(c.judged())
		}
	}
	return n >= minHistory
}

// judgeRecent runs the latency test on the last 30 s and on the last minute
// of r (a short window catches an onset sooner, the longer one a low-traffic
// series), and the hysteresis: an active latency alert keeps while half its
// share remains in the last minute.
func judgeRecent(r *ring, bk int64, base *baseHist, calls ewma, cfg LatencyConfig, minInfo float64) (slowResult, bool, bool) {
	w30, w1 := r.sum(bk, 3), r.sum(bk, 6)
	res := judgeSlow(&w1.Hist, base, cfg, minInfo, surging(r, bk, 6, calls))
	if !res.slow {
		if r30 := judgeSlow(&w30.Hist, base, cfg, minInfo, surging(r, bk, 3, calls)); r30.slow {
			res = r30
		}
	}
	keep := res.n > 0 && res.barMs > 0 && (res.share >= cfg.MinShare/2 || res.recentP50-res.baseP50 >= float64(cfg.MinDelta.Milliseconds()))
	return res, res.slow, keep
}

// amplification is the load multiplier on the callee: attempts per logical
// call, or calls per inbound request of the caller against its baseline,
// whichever is larger.
func amplification(w *Counts, baseFanout ewma) float64 {
	amp := 1.0
	if w.Calls > w.Retries {
		amp = float64(w.Calls) / float64(w.Calls-w.Retries)
	}
	if w.JoinedParents >= 10 && baseFanout.ready(6) && baseFanout.v > 0 {
		amp = math.Max(amp, float64(w.JoinedCalls)/float64(w.JoinedParents)/baseFanout.v)
	}
	return amp
}

// learnBaselines adds the buckets the learner releases to the baselines,
// unless the edge is anomalous or flagged (an incident must not become the
// new normal).
func (ed *edge) learnBaselines(bk int64, dt, halfLife time.Duration) {
	ev := &ed.ev
	from, to, ok := ed.learn.due(bk, ev.anomalous || ed.flagged || ev.storm, learnTo(&ed.win, bk))
	if ok {
		decay := decayPerBucket(halfLife)
		for b := from; b <= to; b++ {
			c := ed.win.at(b)
			if c == nil {
				ed.baseLat.add(&Hist{}, decay)
				ed.baseErr.add(0, 0, decay)
				ed.baseTmo.add(0, 0, decay)
				ed.baseCalls.update(0, BucketWidth, halfLife)
				continue
			}
			ed.baseCalls.update(float64(c.Calls), BucketWidth, halfLife)
			ed.baseLat.add(&c.Hist, decay)
			n := c.judged()
			ed.baseErr.add(c.Errors, n, decay)
			ed.baseTmo.add(c.Class[ClassTimeout], n, decay)
		}
	}
	if ev.anomalous || ed.flagged || ev.storm {
		return
	}
	w1 := &ev.w1
	if w1.Calls >= 10 {
		ed.baseNear.update(ev.near1, dt, halfLife)
	}
	if w1.JoinedParents >= 10 {
		ed.baseFanout.update(float64(w1.JoinedCalls)/float64(w1.JoinedParents), dt, halfLife)
	}
	if w1.JoinedParents >= 3 {
		ed.baseParent.update(float64(w1.JoinedParentMs)/float64(w1.JoinedParents), dt, halfLife)
	}
}

// merge folds o, the edge of another name for the same callee, into ed:
// windows bucket by bucket, totals, and baselines by weight.
func (ed *edge) merge(o *edge) {
	for i := range ed.win.epoch {
		switch {
		case o.win.epoch[i] == ed.win.epoch[i]:
			ed.win.c[i].Add(&o.win.c[i])
		case o.win.epoch[i] > ed.win.epoch[i]:
			ed.win.epoch[i], ed.win.c[i] = o.win.epoch[i], o.win.c[i]
		}
	}
	ed.total.Add(&o.total)
	if !o.since.IsZero() && o.since.Before(ed.since) {
		ed.since = o.since
	}
	if o.lastBucket > ed.lastBucket {
		ed.lastBucket = o.lastBucket
		if o.errTrace != ([16]byte{}) {
			ed.errTrace = o.errTrace
		}
	}
	if o.timeoutN > 0 {
		n := ed.timeoutN + o.timeoutN
		ed.timeoutMs = (ed.timeoutMs*float64(ed.timeoutN) + o.timeoutMs*float64(o.timeoutN)) / float64(n)
		ed.timeoutN = n
	}
	for i := range ed.baseLat.h {
		ed.baseLat.h[i] += o.baseLat.h[i]
	}
	ed.baseLat.n += o.baseLat.n
	ed.baseErr.k, ed.baseErr.n = ed.baseErr.k+o.baseErr.k, ed.baseErr.n+o.baseErr.n
	ed.baseTmo.k, ed.baseTmo.n = ed.baseTmo.k+o.baseTmo.k, ed.baseTmo.n+o.baseTmo.n
	if o.baseNear.n > ed.baseNear.n {
		ed.baseNear = o.baseNear
	}
	if o.baseFanout.n > ed.baseFanout.n {
		ed.baseFanout = o.baseFanout
	}
	ed.mesh = ed.mesh || o.mesh
	ed.spanBucket = max(ed.spanBucket, o.spanBucket)
	if o.baseParent.n > ed.baseParent.n {
		ed.baseParent = o.baseParent
	}
	ed.baseCalls.v += o.baseCalls.v
	ed.baseCalls.n = max(ed.baseCalls.n, o.baseCalls.n)
	ed.flagged = ed.flagged || o.flagged
}
