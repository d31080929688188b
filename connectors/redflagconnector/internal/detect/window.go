package detect

import (
	"math"
	"time"
)

// Class is the kind of a failed call.
type Class uint8

// Failure classes of a call, from the span's status, HTTP or gRPC code and error.type.
const (
	ClassTimeout     Class = iota // DEADLINE_EXCEEDED, 504, 408, error.type *timeout*
	ClassOverload                 // RESOURCE_EXHAUSTED, UNAVAILABLE, 429, 503
	ClassCircuitOpen              // error.type *circuit*/*breaker*
	ClassConnect                  // error.type connection refused/reset/DNS
	ClassOther                    // any other error
	NumClasses
)

var classNames = [NumClasses]string{"timeout", "overload", "circuit_open", "connect", "other"}

// String returns the class name used in metric labels.
func (c Class) String() string {
	if c < NumClasses {
		return classNames[c]
	}
	return "unknown"
}

// BucketWidth is the width of one time bucket of the windows.
const BucketWidth = 10 * time.Second

// NumBuckets covers the longest short window, five minutes.
const NumBuckets = 30

// NumBins is the number of latency histogram bins. Bin i holds durations up
// to BinUpperMs(i): half-octave steps from 0.5 ms to 16.4 s, the last bin
// unbounded. Even bins end at powers of two milliseconds (1 ms ... 16384 ms),
// which are the exported histogram's bucket bounds.
const NumBins = 32

// BinUpperMs returns the upper bound of bin i in milliseconds (+Inf for the last).
func BinUpperMs(i int) float64 {
	if i >= NumBins-1 {
		return math.Inf(1)
	}
	return math.Exp2(float64(i-2) / 2)
}

// BinOf returns the histogram bin of a duration in milliseconds.
func BinOf(ms float64) int {
	if !(ms > 0.5) { // also catches NaN
		return 0
	}
	// ceil(2*log2(ms)) + 2 without a logarithm: ms = frac * 2^exp with frac
	// in [0.5, 1), so 2*log2(ms) is 2*exp - 2 plus 0 (frac exactly 0.5), 1
	// (up to sqrt(2)/2) or 2 (above). Spans are observed one by one, and the
	// logarithm was a tenth of the connector's cost.
	frac, exp := math.Frexp(ms)
	b := 2 * exp
	switch {
	case frac == 0.5:
	case frac <= math.Sqrt2/2:
		b++
	default:
		b += 2
	}
	if b >= NumBins {
		return NumBins - 1
	}
	return b
}

// Counts is what a set of calls (or inbound requests) amounts to. It is the
// unit of both batch deltas and window buckets.
type Counts struct {
	Calls     uint32
	Errors    uint32
	Client4xx uint32 // client errors, counted apart from Errors
	// Cancelled calls were abandoned by their caller (gRPC CANCELLED, a
	// "context canceled" error, an errgroup or hedge cancelling siblings):
	// neither failures of the callee nor durations it took.
	Cancelled uint32
	Retries   uint32 // calls that were retries
	Class     [NumClasses]uint32
	Hist      Hist

	// From parent/child joins inside one process (a sample of calls):
	JoinedParents    uint32 // inbound requests of the caller that called this callee
	JoinedCalls      uint32 // calls those requests made to the callee
	JoinedErr        uint32 // of those requests, ones whose calls to the callee failed
	JoinedPropagated uint32 // ... and whose own server span failed too
	// JoinedParentMs sums the durations of the JoinedParents requests: how
	// long the caller's requests that called this callee took.
	JoinedParentMs float32

	// For services (inbound server spans):
	OwnErrors uint32 // failed requests with no failed child call in the join sample
	Joined    uint32 // requests in the join sample

	// DurMsSum is the sum of durations, for the exported histogram's sum.
	DurMsSum float64

	// TimeoutMsSum and TimeoutN describe the durations of timed-out calls, from
	// which the edge's timeout is learned.
	TimeoutMsSum float32
	TimeoutN     uint32
}

// Add adds o to c.
func (c *Counts) Add(o *Counts) {
	c.Calls += o.Calls
	c.Errors += o.Errors
	c.Client4xx += o.Client4xx
	c.Cancelled += o.Cancelled
	c.Retries += o.Retries
	for i := range c.Class {
		c.Class[i] += o.Class[i]
	}
	c.Hist.Add(&o.Hist)
	c.JoinedParents += o.JoinedParents
	c.JoinedCalls += o.JoinedCalls
	c.JoinedErr += o.JoinedErr
	c.JoinedPropagated += o.JoinedPropagated
	c.JoinedParentMs += o.JoinedParentMs
	c.OwnErrors += o.OwnErrors
	c.Joined += o.Joined
	c.DurMsSum += o.DurMsSum
	c.TimeoutMsSum += o.TimeoutMsSum
	c.TimeoutN += o.TimeoutN
}

// Outcome is how one call ended.
type Outcome struct {
	Failed    bool
	Class     Class
	Client4xx bool // the caller's fault: counted apart, not a failure
	// Cancelled: the caller abandoned the call; not a failure, and its
	// duration says nothing about the callee.
	Cancelled bool
	Retry     bool
	// OwnTimeout: the caller gave up at its own timeout (a client-side
	// deadline), so the call's duration is the timeout. A 504 or 408 is a
	// timeout somewhere else and teaches nothing about the caller's.
	OwnTimeout bool
}

// Observe records one call.
func (c *Counts) Observe(ms float64, o Outcome) {
	c.Calls++
	if o.Retry {
		c.Retries++
	}
	if o.Cancelled {
		c.Cancelled++
		return
	}
	c.Hist[BinOf(ms)]++
	c.DurMsSum += ms
	if o.Failed {
		c.Errors++
		c.Class[o.Class]++
		if o.OwnTimeout {
			c.TimeoutMsSum += float32(ms)
			c.TimeoutN++
		}
	} else if o.Client4xx {
		c.Client4xx++
	}
}

// Quantile estimates the q-quantile of the durations in milliseconds,
// interpolating geometrically inside a bin; 0 when empty.
func (c *Counts) Quantile(q float64) float64 {
	var total uint64
	for _, n := range c.Hist {
		total += uint64(n)
	}
	if total == 0 {
		return 0
	}
	rank := q * float64(total)
	var cum float64
	for i, n := range c.Hist {
		if n == 0 {
			continue
		}
		if cum+float64(n) >= rank {
			lo, hi := BinUpperMs(i-1), BinUpperMs(i)
			if i == 0 {
				lo = hi / 2
			}
			if math.IsInf(hi, 1) {
				return lo
			}
			frac := (rank - cum) / float64(n)
			return lo * math.Pow(hi/lo, frac)
		}
		cum += float64(n)
	}
	return BinUpperMs(NumBins - 2)
}

// ShareAtLeast returns the share of calls that took at least ms milliseconds,
// counting whole bins above ms and the covering bin in proportion.
func (c *Counts) ShareAtLeast(ms float64) float64 {
	var total, above float64
	for i, n := range c.Hist {
		if n == 0 {
			continue
		}
		total += float64(n)
		lo, hi := BinUpperMs(i-1), BinUpperMs(i)
		if i == 0 {
			lo = 0
		}
		switch {
		case lo >= ms:
			above += float64(n)
		case hi > ms:
			if math.IsInf(hi, 1) {
				above += float64(n)
			} else {
				above += float64(n) * (hi - ms) / (hi - lo)
			}
		}
	}
	if total == 0 {
		return 0
	}
	return above / total
}

// ring is a five-minute window of ten-second buckets. A slot holds the bucket
// whose number is in epoch; stale slots read as empty.
type ring struct {
	epoch [NumBuckets]int64
	c     [NumBuckets]Counts
}

func bucketOf(t time.Time) int64 { return t.Unix() / int64(BucketWidth/time.Second) }

func (r *ring) add(bucket int64, d *Counts) {
	i := bucket % NumBuckets
	if r.epoch[i] != bucket {
		r.epoch[i] = bucket
		r.c[i] = Counts{}
	}
	r.c[i].Add(d)
}

// sum adds up the n buckets ending with bucket (inclusive).
func (r *ring) sum(bucket int64, n int) Counts {
	var out Counts
	for b := bucket - int64(n) + 1; b <= bucket; b++ {
		i := b % NumBuckets
		if b >= 0 && r.epoch[i] == b {
			out.Add(&r.c[i])
		}
	}
	return out
}

// runSince is when the current run of bad buckets began: the start of the
// earliest of the last minute's buckets from which every bucket with calls
// was bad, when at least minFailures of them were (a run, not a burst inside
// one or two buckets, nor the scattered bad buckets of a series that is
// always a little bad). The bucket being filled is passed over while it does
// not show it yet. Zero when there is no such run. An alert's For counts
// from there: a quiet series' evidence arrives a call at a time and has held
// longer than For when its test first passes, and a busy one's has held
// since its first bad bucket.
func (r *ring) runSince(bk int64, judge func(c *Counts) (counted, bad bool)) time.Time {
	first, n := int64(-1), 0
	for b := bk; b > bk-6; b-- {
		c := r.at(b)
		if c == nil {
			continue
		}
		counted, bad := judge(c)
		if !counted {
			continue
		}
		if !bad {
			if b == bk {
				continue
			}
			break
		}
		first, n = b, n+1
	}
	if n < minFailures {
		return time.Time{}
	}
	return time.Unix(first*int64(BucketWidth/time.Second), 0)
}

// at returns the counts of one bucket, or nil when the ring does not hold it.
func (r *ring) at(b int64) *Counts {
	i := b % NumBuckets
	if b >= 0 && r.epoch[i] == b {
		return &r.c[i]
	}
	return nil
}

// histRing is a five-minute window of ten-second latency histograms.
type histRing struct {
	epoch [NumBuckets]int64
	h     [NumBuckets]Hist
}

func (r *histRing) add(bucket int64, h *Hist) {
	i := bucket % NumBuckets
	if r.epoch[i] != bucket {
		r.epoch[i] = bucket
		r.h[i] = Hist{}
	}
	r.h[i].Add(h)
}

func (r *histRing) sum(bucket int64, n int) Hist {
	var out Hist
	for b := bucket - int64(n) + 1; b <= bucket; b++ {
		if h := r.at(b); h != nil {
			out.Add(h)
		}
	}
	return out
}

func (r *histRing) at(b int64) *Hist {
	i := b % NumBuckets
	if b >= 0 && r.epoch[i] == b {
		return &r.h[i]
	}
	return nil
}
