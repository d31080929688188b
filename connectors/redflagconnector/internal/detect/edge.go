package detect

import (
	"math"
	"time"
)

// edge is the state of calls from one caller to one callee: about 6 KB, all
// of it fixed-size.
type edge struct {
	caller, callee string
	win            ring
	total          Counts
	lastBucket     int64
	since          time.Time // first seen: the start of its cumulative counters
	errTrace       [16]byte
	timeoutMs      float64 // learned from timed-out calls
	timeoutN       uint32

	baseErr, baseP99, baseFanout, baseNear, baseTmo ewma

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
	p50, p99     float64
	near5, near1 float64 // share of calls beyond Budget x timeout
	timeoutMs    float64 // the timeout this evaluation believed (0: none)
	tmo5, tmo1   float64 // share of calls that timed out

	spike, spikeKeep       bool
	fast                   bool // failing in the last minute alone (for the incident graph)
	pressure, pressureKeep bool
	latency                bool // p99 far above its baseline
	storm, stormKeep       bool
	amplification          float64
	propagation            float64 // -1 when not measured
	anomalous              bool
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

func (ed *edge) evaluate(cfg Config, bk int64, minInfo float64) {
	ev := &ed.ev
	ev.w5 = ed.win.sum(bk, NumBuckets)
	ev.w1 = ed.win.sum(bk, 6)
	w5, w1 := &ev.w5, &ev.w1
	ev.err5, ev.err1 = ratio(w5.Errors, w5.Calls), ratio(w1.Errors, w1.Calls)
	ev.p50, ev.p99 = w5.Quantile(0.5), w5.Quantile(0.99)

	// DependencyErrorSpike.
	es := cfg.ErrorSpike
	ev.thr = math.Max(es.MinRatio, es.BaselineFactor*ed.baseErr.v+es.BaselineOffset)
	p0 := math.Max(ed.baseErr.v, 0.001)
	lastMinuteAgrees := ev.err1 >= ev.thr || w1.Calls < 10
	ev.spike = w5.Calls >= es.MinCalls && ev.err5 >= ev.thr && lastMinuteAgrees &&
		significant(float64(w5.Errors), float64(w5.Calls), p0, minInfo)
	// A strong last minute may start it before five minutes of healthy
	// history have been diluted away: the last minute alone must pass every
	// test, and the five-minute ratio must be on its way (half the threshold).
	if !ev.spike && w1.Calls >= es.MinCalls && ev.err1 >= ev.thr && ev.err5 >= ev.thr/2 &&
		significant(float64(w1.Errors), float64(w1.Calls), p0, minInfo) {
		ev.spike = true
	}
	ev.spikeKeep = w5.Calls > 0 && (ev.err1 >= ev.thr/2 || (w1.Calls < 10 && ev.err5 >= ev.thr/2))

	// DependencyTimeoutPressure.
	tp := cfg.TimeoutPressure
	ev.tmo5 = ratio(w5.Class[ClassTimeout], w5.Calls)
	ev.tmo1 = ratio(w1.Class[ClassTimeout], w1.Calls)
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
		notUsual := !ed.baseP99.ready(6) || ed.baseP99.v < tp.Budget*t
		bimodal = notUsual && ev.p99 >= tp.Budget*t && ev.p50 <= 0.25*t
		bimodal1 = w1.Quantile(0.99) >= tp.Budget*t && w1.Quantile(0.5) <= 0.25*t
	}
	nearHigh := ev.near5 >= tp.NearShare && ev.near5 >= 3*ed.baseNear.v && (ev.near1 >= tp.NearShare || w1.Calls < 10)
	tmoHigh := ev.tmo5 >= tp.TimeoutRatio && (ev.tmo1 >= tp.TimeoutRatio || w1.Calls < 10) &&
		significant(float64(w5.Class[ClassTimeout]), float64(w5.Calls), math.Max(ed.baseTmo.v, 0.001), minInfo)
	ev.pressure = w5.Calls >= tp.MinCalls && (nearHigh || tmoHigh || (bimodal && (bimodal1 || w1.Calls < 10)))
	ev.pressureKeep = w5.Calls > 0 && (ev.near1 >= tp.NearShare/2 || ev.tmo1 >= tp.TimeoutRatio/2 || bimodal1)

	// The last minute alone, when it has enough calls: incidents are found
	// from it (a cascade must not wait for five minutes of history to dilute
	// away), while the symptom alerts keep the five-minute rule.
	ev.fast = w1.Calls >= es.MinCalls && ((ev.err1 >= ev.thr &&
		significant(float64(w1.Errors), float64(w1.Calls), p0, minInfo)) ||
		(ev.tmo1 >= tp.TimeoutRatio && significant(float64(w1.Class[ClassTimeout]), float64(w1.Calls), math.Max(ed.baseTmo.v, 0.001), minInfo)))

	// Latency far above its own baseline (for the cascade graph).
	slowBar := max(cfg.Cascade.LatencyFactor*ed.baseP99.v, float64(cfg.Cascade.MinLatency.Milliseconds()))
	ev.latency = ed.baseP99.ready(12) && w5.Calls >= es.MinCalls && ev.p99 >= slowBar &&
		(w1.Calls < 10 || w1.Quantile(0.99) >= slowBar)

	// Propagation inside the caller's process.
	ev.propagation = -1
	if w5.JoinedErr >= 5 {
		ev.propagation = ratio(w5.JoinedPropagated, w5.JoinedErr)
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

	ev.anomalous = ev.spike || ev.pressure || ev.latency || ev.fast
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

// learn updates the baselines from the last minute, unless the edge is
// anomalous or flagged (an incident must not become the new normal).
func (ed *edge) learn(dt, halfLife time.Duration) {
	ev := &ed.ev
	if ev.anomalous || ed.flagged || ev.storm {
		return
	}
	w1 := &ev.w1
	if w1.Calls >= 10 {
		ed.baseErr.update(ev.err1, dt, halfLife)
		ed.baseNear.update(ev.near1, dt, halfLife)
		ed.baseTmo.update(ev.tmo1, dt, halfLife)
	}
	if w1.Calls >= 20 {
		ed.baseP99.update(w1.Quantile(0.99), dt, halfLife)
	}
	if w1.JoinedParents >= 10 {
		ed.baseFanout.update(float64(w1.JoinedCalls)/float64(w1.JoinedParents), dt, halfLife)
	}
}
