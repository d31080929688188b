package detect

import (
	"math"
	"time"
)

// Hist is a latency histogram in the bins of BinOf.
type Hist [NumBins]uint32

// Add adds o to h.
func (h *Hist) Add(o *Hist) {
	for i := range h {
		h[i] += o[i]
	}
}

// Total returns the number of durations in h.
func (h *Hist) Total() uint32 {
	var n uint32
	for _, c := range h {
		n += c
	}
	return n
}

// baseHist is a series' normal latency: a histogram of the durations it has
// seen, each bucket's weight halving every half-life, learned one bucket at
// a time, a minute behind the present (see learner). The total weight is
// about rate x half-life / ln 2 once it has seen that long.
type baseHist struct {
	h [NumBins]float32
	n float32
}

func (b *baseHist) add(h *Hist, decay float32) {
	b.n = 0
	for i := range b.h {
		b.h[i] = b.h[i]*decay + float32(h[i])
		b.n += b.h[i]
	}
}

// quantile estimates the q-quantile in milliseconds, as Counts.Quantile.
func (b *baseHist) quantile(q float64) float64 {
	if b.n <= 0 {
		return 0
	}
	rank := q * float64(b.n)
	var cum float64
	for i, c := range b.h {
		n := float64(c)
		if n <= 0 {
			continue
		}
		if cum+n >= rank {
			lo, hi := BinUpperMs(i-1), BinUpperMs(i)
			if i == 0 {
				lo = hi / 2
			}
			if math.IsInf(hi, 1) {
				return lo
			}
			return lo * math.Pow(hi/lo, (rank-cum)/n)
		}
		cum += n
	}
	return BinUpperMs(NumBins - 2)
}

// shareAtLeast returns the share of the weight at or above ms.
func (b *baseHist) shareAtLeast(ms float64) float64 {
	if b.n <= 0 {
		return 0
	}
	return histShareAtLeast(b.h[:], ms) / float64(b.n)
}

// histShareAtLeast counts the weight of bins above ms, and the bin covering
// ms in proportion.
func histShareAtLeast[T uint32 | float32](h []T, ms float64) float64 {
	var above float64
	for i, c := range h {
		if c == 0 {
			continue
		}
		n := float64(c)
		lo, hi := BinUpperMs(i-1), BinUpperMs(i)
		if i == 0 {
			lo = 0
		}
		switch {
		case lo >= ms:
			above += n
		case hi > ms:
			if math.IsInf(hi, 1) {
				above += n
			} else {
				above += n * (hi - ms) / (hi - lo)
			}
		}
	}
	return above
}

// learner feeds a baseline one bucket at a time, lagLearn buckets behind the
// present, and only buckets the detectors judged normal for a whole lag: a
// bucket is learned once the series has been quiet for lagLearn evaluations
// after it, so the onset of an incident never becomes its own baseline.
type learner struct {
	next       int64 // the next bucket to consider
	quietSince int64 // bucket from which the series has been judged normal (-1: not now)
}

// startAt makes the learner begin at bucket bk, a series' first data: the
// empty buckets before a series existed are not its normal.
func (l *learner) startAt(bk int64) {
	if l.next == 0 {
		l.next, l.quietSince = bk, bk
	}
}

// lagLearn is how far (in buckets) learning trails the present at least:
// the detectors' recent window.
const lagLearn = 6

// Learning waits for later calls: a bucket is learned only once learnCalls
// calls came after it (or maxLagLearn buckets passed), so a series with a
// few calls a minute has its onset judged by as many calls as a busy one
// before the onset can become its normal. Four calls a minute wait about
// two and a half minutes.
const (
	learnCalls  = 10
	maxLagLearn = NumBuckets - lagLearn
)

// learnTo is the newest bucket that may be learned at bk: at least lagLearn
// buckets back, and with learnCalls calls after it in r, or maxLagLearn back.
func learnTo(r *ring, bk int64) int64 {
	var later uint32
	for b := bk; b > bk-maxLagLearn; b-- {
		if c := r.at(b); c != nil {
			later += c.judged()
		}
		if bk-b+1 >= lagLearn && later >= learnCalls {
			return b - 1
		}
	}
	return bk - maxLagLearn
}

// due returns the buckets (from, to] that may be learned at bk, given
// whether the series is anomalous now; an anomalous stretch is skipped.
// Buckets after to (learnTo, or bk-lagLearn) wait.
func (l *learner) due(bk int64, anomalous bool, to int64) (from, _ int64, ok bool) {
	if l.next == 0 {
		l.next, l.quietSince = bk-NumBuckets+1, bk-NumBuckets+1
	}
	if anomalous {
		l.quietSince = -1
		l.next = bk + 1
		return 0, 0, false
	}
	if l.quietSince < 0 {
		l.quietSince = bk
	}
	to = min(to, bk-lagLearn)
	// Buckets the ring no longer holds (evaluations far apart) are skipped,
	// not learned as empty.
	from = max(l.next, l.quietSince, bk-NumBuckets+1)
	if to < from {
		return 0, 0, false
	}
	l.next = to + 1
	return from, to, true
}

// decayPerBucket is the weight a baseline keeps per bucket of age.
func decayPerBucket(halfLife time.Duration) float32 {
	return float32(math.Exp2(-float64(BucketWidth) / float64(halfLife)))
}

// slowResult is one latency test of a recent window against a baseline.
type slowResult struct {
	slow       bool
	share      float64 // share of recent calls at or beyond the bar
	barMs      float64 // the bar the share was measured at
	baseP50    float64
	baseP90    float64
	recentP50  float64
	recentP90  float64
	n, k       float64 // recent calls, and how many reached the bar
	baseWeight float64
	// tailBase is how often normal calls reach the tail's bar (the
	// baseline's share, smoothed towards the prior while it is young).
	tailBase float64
}

// judgeSlow tests whether recent calls got slow against their baseline, in
// two ways, both distribution-free: a tail that grew (at least minShare of
// the calls reach max(factor x the normal p90, normal p90 + min delta), a
// bar about one normal call in a hundred reaches) or a shift of the whole
// distribution (at least half the calls beyond the normal p90, which one in
// ten reaches, and the median up by at least min delta). Either share must
// count three calls or more and be significant against how often normal
// calls reach its bar (a Chernoff bound): a few calls a minute can alert
// when all of them are slow, a busy edge needs more than noise. The
// baseline's shares are smoothed towards a prior while it holds few calls,
// so a young baseline asks for more evidence.
//
// Under a surge (surge: the series gets at least half again its normal
// calls) only a grown tail counts: queueing under load shifts the whole
// distribution a little, and a surge within capacity must not page.
func judgeSlow(recent *Hist, base *baseHist, cfg LatencyConfig, minInfo float64, surge bool) slowResult {
	r := slowResult{baseWeight: float64(base.n)}
	var c Counts
	c.Hist = *recent
	r.n = float64(recent.Total())
	if r.n == 0 || float64(base.n) < cfg.MinBaseline {
		return r
	}
	r.baseP50, r.baseP90 = base.quantile(0.5), base.quantile(0.9)
	r.recentP50, r.recentP90 = c.Quantile(0.5), c.Quantile(0.9)
	minDelta := float64(cfg.MinDelta.Milliseconds())
	p0 := func(bar, prior float64) float64 {
		return (base.shareAtLeast(bar)*float64(base.n) + prior*priorWeight) / (float64(base.n) + priorWeight)
	}
	// The tail.
	r.barMs = max(cfg.Factor*r.baseP90, r.baseP90+minDelta)
	r.share = c.ShareAtLeast(r.barMs)
	r.k = r.share * r.n
	r.tailBase = p0(r.barMs, 0.02)
	r.slow = r.k >= 3 && r.share >= cfg.MinShare && significant(r.k, r.n, r.tailBase, minInfo)
	if r.slow || surge {
		return r
	}
	// The shift.
	shift := c.ShareAtLeast(r.baseP90)
	if k := shift * r.n; k >= 3 && shift >= shiftShare && r.recentP50-r.baseP50 >= minDelta &&
		significant(k, r.n, p0(r.baseP90, 0.1), minInfo) {
		r.slow, r.barMs, r.share, r.k, r.tailBase = true, r.baseP90, shift, k, p0(r.baseP90, 0.1)
	}
	return r
}

// shiftShare is the share of calls beyond the normal p90 that makes a shift:
// half of them, against one in ten normally.
const shiftShare = 0.5

// priorWeight is how many calls' worth of prior belief a baseline share
// starts from (2% slow, see judgeSlow).
const priorWeight = 50

// rateBase is a series' normal failure rate: failures and calls, each
// bucket's weight halving every half-life, learned like baseHist. Its
// estimate mixes in a prior rate weighing as much as ten calls, so a short
// history with no failure does not claim a rate of zero.
type rateBase struct{ k, n float32 }

func (r *rateBase) add(k, n uint32, decay float32) {
	r.k = r.k*decay + float32(k)
	r.n = r.n*decay + float32(n)
}

// p returns the estimated rate with the prior mixed in.
func (r *rateBase) p(prior float64) float64 {
	const w = 10
	return (float64(r.k) + prior*w) / (float64(r.n) + w)
}

// surgeFactor is how many times its normal calls a series must get for its
// latency to be judged as under a surge.
const surgeFactor = 1.5

// surging reports whether a series gets at least surgeFactor times its
// learned calls per bucket (base) over the n complete buckets before bk (the
// present bucket has only begun).
func surging(r *ring, bk int64, n int, base ewma) bool {
	return base.ready(6) && float64(r.sum(bk-1, n).Calls)/float64(n) >= surgeFactor*max(base.v, 1)
}
