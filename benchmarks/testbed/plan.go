package testbed

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/vigilhq/vigil/benchmarks/testbed/topo"
)

// Plan names.
const (
	PlanFull  = "full"
	PlanShort = "short"
)

// Default timings of the plans.
const (
	fullWarmup   = 4 * time.Minute
	fullFaultFor = 3 * time.Minute
	fullGap      = 3 * time.Minute
	shortWarmup  = 2 * time.Minute
	shortFault   = 75 * time.Second
	shortGap     = 60 * time.Second
	maxJitter    = 20 * time.Second
	shortDefault = "ledger"
)

// item is one fault or control of a topology's plan, at offset At from the
// start of the run, lasting For.
type item struct {
	At, For time.Duration
	Fault   *topo.FaultSpec
	Control *topo.ControlSpec
	// Size is the drawn magnitude, in the unit of the fault's Means (a
	// share, milliseconds, a CPU share, seconds) or the control's factor.
	Size float64
}

// topoPlan is one topology's part of a plan.
type topoPlan struct {
	Topology *topo.Topology
	// Rate is the root rate of the main flows, the topology's nominal rate
	// within ±20%.
	Rate  float64
	Items []item
	// End is when its last gap ends.
	End time.Duration
}

// plan is everything a seed decides before a run starts.
type plan struct {
	Seed                  int64
	Name                  string
	Warmup, FaultFor, Gap time.Duration
	Topologies            []topoPlan
}

// buildPlan draws the plan of o (already defaulted): the same Options give
// the same plan.
func buildPlan(o Options) (plan, error) {
	p := plan{Seed: o.Seed, Name: o.Plan, Warmup: o.Warmup, FaultFor: o.FaultFor, Gap: o.Gap}
	names := o.Topologies
	if len(names) == 0 {
		names = topo.Names()
		if o.Plan == PlanShort {
			names = []string{shortDefault}
		}
	}
	if o.Plan == PlanShort {
		names = names[:1]
	}
	for _, name := range names {
		t, ok := topo.Get(name)
		if !ok {
			return p, fmt.Errorf("invalid topology %q: want one of %s", name, strings.Join(topo.Names(), ", "))
		}
		p.Topologies = append(p.Topologies, planTopology(o, t))
	}
	return p, nil
}

func planTopology(o Options, t *topo.Topology) topoPlan {
	h := fnv.New64a()
	_, _ = h.Write([]byte(t.Name))
	rng := rand.New(rand.NewPCG(uint64(o.Seed), h.Sum64()))
	tp := topoPlan{Topology: t, Rate: round(t.Rate*uniform(rng, 0.8, 1.2), 0.1)}
	slots := t.Short[:]
	jitter := time.Duration(0)
	if o.Plan != PlanShort {
		slots = make([]topo.Slot, len(t.Plan))
		for i, j := range rng.Perm(len(t.Plan)) {
			slots[i] = t.Plan[j]
		}
		jitter = min(maxJitter, o.Gap/4, o.Warmup/4)
	}
	step := o.FaultFor + o.Gap
	for k, s := range slots {
		at := o.Warmup + time.Duration(k)*step
		if jitter > 0 {
			// The first item starts after the warmup, never in it.
			lo := -1.0
			if k == 0 {
				lo = 0
			}
			at += time.Duration(uniform(rng, lo, 1) * float64(jitter)).Round(time.Second)
		}
		it := item{At: at, For: o.FaultFor}
		if s.Control != nil {
			c := *s.Control
			it.Control = &c
			it.Size = round(uniform(rng, c.Min, c.Max), 0.1)
		} else {
			f := s.Faults[rng.IntN(len(s.Faults))]
			it.Fault = &f
			it.Size = drawSize(rng, f)
		}
		tp.Items = append(tp.Items, it)
	}
	tp.End = o.Warmup + time.Duration(len(slots))*step
	return tp
}

// drawSize draws a fault's magnitude within its range, rounded to a step
// that reads well.
func drawSize(rng *rand.Rand, f topo.FaultSpec) float64 {
	v := uniform(rng, f.Min, f.Max)
	switch f.Means {
	case topo.HandlerLatency, topo.LinkLatency, topo.PGSleep:
		return round(v, 10)
	case topo.PoolLeak:
		return round(v, 1)
	}
	return round(v, 0.01)
}

func uniform(rng *rand.Rand, lo, hi float64) float64 { return lo + (hi-lo)*rng.Float64() }

// round rounds v to a multiple of step, exactly representable where it can
// be (1.13, not 1.1300000000000001).
func round(v, step float64) float64 {
	if step < 1 {
		inv := math.Round(1 / step)
		return math.Round(v*inv) / inv
	}
	return math.Round(v/step) * step
}

// Duration is the plan's length from the start of traffic to its end.
func (p plan) Duration() time.Duration {
	var d time.Duration
	for _, t := range p.Topologies {
		d = max(d, t.End)
	}
	return d
}

// String lists the plan, one line per item.
func (p plan) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "plan %s, seed %d, %s long (warmup %s, faults %s, gaps %s)\n", p.Name, p.Seed, p.Duration(), p.Warmup, p.FaultFor, p.Gap)
	for _, t := range p.Topologies {
		fmt.Fprintf(&b, "  %s: %.1f root req/s\n", t.Topology.Name, t.Rate)
		for _, it := range t.Items {
			fmt.Fprintf(&b, "    +%s for %s: %s\n", it.At, it.For, it.describe(t.Topology))
		}
	}
	return b.String()
}

// describe says what an item does, in words.
func (it item) describe(t *topo.Topology) string {
	if it.Control != nil {
		return it.Control.Kind + " " + it.Control.Target + ": " + controlDetail(t, *it.Control, it.Size)
	}
	return it.Fault.Kind + " at " + it.Fault.Target + ": " + faultDetail(t, *it.Fault, it.Size)
}

func faultDetail(t *topo.Topology, f topo.FaultSpec, size float64) string {
	switch f.Means {
	case topo.ErrorReturns:
		what := "requests"
		if f.Method != "" {
			what = f.Method + " requests"
		}
		return fmt.Sprintf("fails %.0f%% of %s with INTERNAL/500 and an error log", 100*size, what)
	case topo.HandlerLatency:
		return fmt.Sprintf("+%.0f ms on every request (handler latency)", size)
	case topo.CPUQuota:
		return fmt.Sprintf("CPU quota %.2fx the CPU it uses (cgroup cpu.cfs_quota_us)", size)
	case topo.LinkLatency:
		return fmt.Sprintf("+%.0f ms latency toxic on every link into it", size)
	case topo.ProxyDown:
		return "every replica's proxy disabled: connection refused"
	case topo.ResetPeer:
		return "connections reset by peer (toxiproxy reset_peer)"
	case topo.PoolLeak:
		if s, ok := t.Service(f.Target); ok && s.DB != nil {
			return fmt.Sprintf("leaks database connections: its pool of %d per replica is gone after ~%.0f s", s.DB.MaxOpen, size)
		}
		return fmt.Sprintf("leaks database connections: pool gone after ~%.0f s", size)
	case topo.PGSleep:
		return fmt.Sprintf("statements of %s sleep %.0f ms in the database (pg_sleep in their SQL functions)", strings.Join(f.Via, ", "), size)
	}
	return f.Means.String()
}

func controlDetail(t *topo.Topology, c topo.ControlSpec, size float64) string {
	switch c.Kind {
	case topo.ControlSurge:
		return fmt.Sprintf("%.1fx root traffic", size)
	case topo.ControlFlood4xx:
		return fmt.Sprintf("invalid requests at %.1fx the root rate (answered 400/404/INVALID_ARGUMENT)", size)
	case topo.ControlDeploy:
		if s, ok := t.Service(c.Target); ok {
			return fmt.Sprintf("rolling restart of %d replicas to %s, each on a new IP", s.Replicas, nextVersion(s.Version))
		}
	}
	return c.Kind
}
