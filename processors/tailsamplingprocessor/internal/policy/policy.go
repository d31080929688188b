// Package policy is the tail sampler's policies: each decides from a trace's
// summary (store.Summary), never by re-walking spans. Span-level conditions
// (attribute matches, trace state, flags, latency windows, OTTL) are compiled
// into predicates that run once per span at ingest and set bits in the
// summary; policies read the bits. Policy types are built from a registry,
// one file per type, with the contrib tail_sampling configuration format and
// semantics.
package policy

import (
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigilhq/vigil/processors/tailsamplingprocessor/internal/store"
)

// Decision is what a policy says of a trace.
type Decision uint8

// Decisions. Errored abstains: it never influences the final decision.
const (
	NotSampled Decision = iota
	Sampled
	Dropped
	Errored
	Pending // span-ingest only: no decision yet
)

var decisionNames = [...]string{"not_sampled", "sampled", "dropped", "error", "pending"}

// String returns the decision's metric attribute value.
func (d Decision) String() string {
	if int(d) < len(decisionNames) {
		return decisionNames[d]
	}
	return "unknown"
}

// Trace is what a policy sees: the trace ID, its summary, and the time of the
// evaluation.
type Trace struct {
	ID  [16]byte
	Sum *store.Summary
	Now time.Time
	// Composite is set by a composite policy that samples the trace: the
	// name of its sub-policy that did (the last such composite's, as
	// upstream records it).
	Composite string
}

// Evaluator decides on one trace. Stateful evaluators (rate limits,
// composite budgets) are called from one goroutine at a time.
type Evaluator interface {
	Evaluate(t *Trace) Decision
}

// stateful is implemented by evaluators whose decision depends on more than
// the trace (span-ingest refuses them, as upstream does).
type stateful interface{ Stateful() bool }

// IsStateful reports whether e depends on state beyond the trace.
func IsStateful(e Evaluator) bool {
	s, ok := e.(stateful)
	return ok && s.Stateful()
}

// maxBits is the number of span-level predicates one processor can compile.
const maxBits = 64

// Compiler collects the span-level predicates of every policy of a processor.
type Compiler struct {
	n        int
	resource []resourcePred
	span     []spanPred
	latency  []latencyPred
	ottl     []ottlPred
	// NeedsSize is set when a policy reads the trace's byte size.
	NeedsSize bool
}

type resourcePred struct {
	bit   uint8
	match func(pcommon.Map) bool
}

type spanPred struct {
	bit   uint8
	match func(sp ptrace.Span, res pcommon.Map) bool
}

func (c *Compiler) bit() (uint8, error) {
	if c.n >= maxBits {
		return 0, errTooManyPredicates
	}
	c.n++
	return uint8(c.n - 1), nil
}

// ResourceBits returns the bits of predicates satisfied by a resource's
// attributes; every trace with spans in that resource gets them.
func (c *Compiler) ResourceBits(res pcommon.Map) uint64 {
	var b uint64
	for i := range c.resource {
		if c.resource[i].match(res) {
			b |= 1 << c.resource[i].bit
		}
	}
	return b
}

// HasSpanPredicates reports whether SpanBits does any work.
func (c *Compiler) HasSpanPredicates() bool { return len(c.span) > 0 || len(c.ottl) > 0 }

// SpanBits returns the bits of the predicates a span satisfies (matched), and
// of OTTL predicates whose evaluation failed (errBits, error_mode propagate).
func (c *Compiler) SpanBits(sp ptrace.Span, ss ptrace.ScopeSpans, rs ptrace.ResourceSpans) (matched, errBits uint64) {
	res := rs.Resource().Attributes()
	for i := range c.span {
		if c.span[i].match(sp, res) {
			matched |= 1 << c.span[i].bit
		}
	}
	for i := range c.ottl {
		m, e := c.ottl[i].eval(sp, ss, rs)
		if m {
			matched |= 1 << c.ottl[i].bit
		}
		if e {
			errBits |= 1 << c.ottl[i].errBit
		}
	}
	return matched, errBits
}

// FirstEvent keeps, for each OTTL predicate, only the first of "matched" and
// "errored" in span order: upstream stops at whichever comes first. before is
// the trace's state before a group of spans was merged in.
func (c *Compiler) FirstEvent(before, after *store.Summary) {
	for i := range c.ottl {
		m, e := uint64(1)<<c.ottl[i].bit, uint64(1)<<c.ottl[i].errBit
		switch {
		case before.Matched&m != 0:
			after.Errored &^= e
		case before.Errored&e != 0:
			after.Matched &^= m
		case after.Matched&m != 0 && after.Errored&e != 0:
			// Both in the new group: its spans were scanned in order and the
			// group-level merge already kept the first (see MergeSpan).
		}
	}
}

// MergeSpan folds one span's bits into a group's, in span order, keeping the
// first OTTL event.
func (c *Compiler) MergeSpan(sum *store.Summary, matched, errBits uint64) {
	for i := range c.ottl {
		m, e := uint64(1)<<c.ottl[i].bit, uint64(1)<<c.ottl[i].errBit
		if sum.Matched&m != 0 || sum.Errored&e != 0 {
			matched &^= m
			errBits &^= e
		}
	}
	sum.Matched |= matched
	sum.Errored |= errBits
}

// HasOTTL reports whether OTTL predicates need first-event merging.
func (c *Compiler) HasOTTL() bool { return len(c.ottl) > 0 }

// HasResourcePredicates reports whether ResourceBits does any work.
func (c *Compiler) HasResourcePredicates() bool { return len(c.resource) > 0 }

// HasLatency reports whether latency predicates need each span's times in order.
func (c *Compiler) HasLatency() bool { return len(c.latency) > 0 }

// ObserveTimes applies one span's start and end, in the trace's span order,
// to the running earliest start and latest end in sum, and sets the bits of
// the latency windows the trace's duration so far falls in. Upstream decides
// latency on every prefix of the span sequence, so this runs per span.
func (c *Compiler) ObserveTimes(sum *store.Summary, start, end uint64) {
	if sum.MinStart == 0 || start < sum.MinStart {
		sum.MinStart = start
	}
	if sum.MaxEnd == 0 || end > sum.MaxEnd {
		sum.MaxEnd = end
	}
	if len(c.latency) == 0 {
		return
	}
	d := time.Unix(0, int64(sum.MaxEnd)).Sub(time.Unix(0, int64(sum.MinStart))).Milliseconds()
	for i := range c.latency {
		if c.latency[i].in(d) {
			sum.Matched |= 1 << c.latency[i].bit
		}
	}
}

// bitPolicy samples when some span (or resource) satisfied its predicate, or
// with invert, when none did.
type bitPolicy struct {
	bit    uint8
	invert bool
}

func (p *bitPolicy) Evaluate(t *Trace) Decision {
	if (t.Sum.Matched&(1<<p.bit) != 0) != p.invert {
		return Sampled
	}
	return NotSampled
}
