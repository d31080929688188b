package detect

import (
	"cmp"
	"maps"
	"math"
	"slices"
	"sort"
)

// incident is a failure and everything it spreads to: the origin (whose
// failures or slowness are its own) and the callers affected through
// anomalous edges.
type incident struct {
	origin   string
	edges    []*edge        // anomalous edges into the origin
	affected map[string]int // upstream nodes -> distance from the origin
	spread   bool           // the failure reaches a caller's own requests
	failing  bool           // some edge into the origin fails (not only slow)
	// callerSide: the origin is a caller whose calls got slow on its own
	// side while its callees answered normally (CPU starvation, its own
	// network).
	callerSide bool
	trace      [16]byte
}

// graph is the directed graph of anomalous edges of one evaluation.
type graph struct {
	in, out map[string][]*edge
	origins map[*edge][]string // per anomalous edge: the origins its failure comes from
}

// bad reports whether an edge takes part in the incident graph: anomalous now,
// or still holding an active symptom alert (so an incident does not flap while
// its alerts are resolving).
func (ed *edge) bad() bool {
	return ed.ev.anomalous || (ed.flagged && (ed.ev.spikeKeep || ed.ev.pressureKeep || ed.ev.slowKeep))
}

// failing reports whether an edge's calls fail (errors or timeouts), as
// opposed to only being slow.
func (ed *edge) failing() bool {
	ev := &ed.ev
	return ev.spike || ev.pressure || ev.fast || (ed.flagged && (ev.spikeKeep || ev.pressureKeep))
}

func (e *Engine) buildGraph() *graph {
	g := &graph{in: map[string][]*edge{}, out: map[string][]*edge{}, origins: map[*edge][]string{}}
	for _, k := range slices.SortedFunc(maps.Keys(e.edges), func(a, b edgeKey) int {
		return cmp.Or(cmp.Compare(a.caller, b.caller), cmp.Compare(a.callee, b.callee))
	}) {
		ed := e.edges[k]
		if ed.bad() {
			g.out[ed.caller] = append(g.out[ed.caller], ed)
			g.in[ed.callee] = append(g.in[ed.callee], ed)
		}
	}
	memo := map[string][]string{}
	for _, list := range g.out {
		for _, ed := range list {
			g.origins[ed] = e.edgeOrigins(g, ed, memo, map[string]bool{})
		}
	}
	return g
}

// edgeOrigins names where an anomalous edge's trouble starts, judged with
// both sides of the call. When the callee's own server spans show the
// trouble too (they failed or got slow), it leads into the callee. When
// they answer as before (or the callee has none to tell, a database), the
// calls went wrong on the caller's side or on the network between: the
// caller is the origin when it is starved itself (the time its requests
// spend in its own code got slow, or its calls to several callees that are
// fine on their side all went wrong: CPU starvation, its own network); for
// calls that are only slow, with no more failures than normal, its own time
// need only have grown beyond chance (see selfGrew). A starved
// caller's calls may even time out, at its own deadlines, against a callee
// that answered them all in time. Otherwise a slow edge to a callee fine on
// its side names the callee (its links are slow), and the rest lead into
// the callee. Calls that fail against a callee nobody sees (refused, reset)
// are the callee's, whatever the caller's own time did (retry backoffs
// lengthen it).
func (e *Engine) edgeOrigins(g *graph, ed *edge, memo map[string][]string, onPath map[string]bool) []string {
	// Calls whose spans wrap calls to another callee in trouble (a publish
	// to a queue kept in a database that got slow) are that callee's; a
	// chain of wrappers is followed a few hops, never round a cycle.
	for hops := 0; hops < 4 && ed.wraps != "" && e.bucket-ed.wrapsBucket <= NumBuckets; hops++ {
		in, ok := e.edges[edgeKey{ed.caller, ed.wraps}]
		if !ok || in == ed || !in.bad() {
			break
		}
		ed = in
	}
	switch side := e.side(ed); {
	case side == sideBetween && e.callerStarved(g, ed.caller):
		return []string{ed.caller}
	case side == sideBetween && !ed.failing() && e.stillStarved(ed.caller):
		return []string{ed.caller}
	case side == sideBetween && !ed.failing() && ed.ev.err1 < ed.ev.thr/2 && e.selfGrew(ed.caller):
		return []string{ed.caller}
	case side == sideBetween && !ed.failing():
		return []string{ed.callee}
	case side == sideUnseen && !ed.failing() && e.callerStarved(g, ed.caller):
		return []string{ed.caller}
	}
	return e.originsOf(g, ed.callee, memo, onPath)
}

// callSide is where a slow call's extra time was spent, as far as the
// callee's own server spans tell.
type callSide uint8

const (
	// sideInside: the callee's own requests got slow too.
	sideInside callSide = iota
	// sideBetween: the callee's requests take as long as before: the time
	// went on the caller's side or the network.
	sideBetween
	// sideUnseen: the callee has no server spans to judge by (a database,
	// an external API, a service whose spans go to another agent).
	sideUnseen
)

// side judges an anomalous edge against its callee's server spans: the
// callee is in trouble too when its requests fail, or when their p90 rose
// by at least half as much as the calls' p90 did (a callee's server spans
// mix every caller and operation, so only a comparable rise says the time
// was spent inside it).
func (e *Engine) side(ed *edge) callSide {
	s, ok := e.services[ed.callee]
	if !ok || s.ev.lat.n < 3 || s.ev.lat.barMs == 0 {
		return sideUnseen
	}
	if s.ev.failing {
		return sideInside
	}
	rise := ed.ev.lat.recentP90 - ed.ev.lat.baseP90
	own := s.ev.lat.recentP90 - s.ev.lat.baseP90
	if rise <= 0 || own >= rise/2 {
		return sideInside
	}
	return sideBetween
}

// callerStarved reports whether a service's own side of its calls is what
// got slow.
func (e *Engine) callerStarved(g *graph, caller string) bool {
	s, ok := e.services[caller]
	if ok && s.ev.selfSlow {
		return true
	}
	between := map[string]bool{}
	for _, out := range g.out[caller] {
		if e.side(out) == sideBetween {
			between[out.callee] = true
		}
	}
	return len(between) >= 2
}

// stillStarved reports whether a caller was the origin of a caller-side
// incident at the last evaluation and its own requests are still slowed
// (half the latency test's share holds). As a starved caller recovers, its
// calls to some callees return to normal before others (the last queued
// ones): the one still slow is its incident's tail, not that callee's
// links.
func (e *Engine) stillStarved(caller string) bool {
	s, ok := e.services[caller]
	return ok && s.starved && s.ev.lat.n > 0 && s.ev.lat.share >= e.cfg.LatencySpike.MinShare/2
}

// selfGrew reports whether the time a service's requests spend in its own
// code grew beyond chance. It decides a slow call (not a failing one, nor
// one failing more than normal: retry backoffs grow a caller's own time
// too) to a callee fine on its own side:
// a caller whose own code got slower as well is starved, and its calls are
// slow on its side; one whose own code did not change waits on the
// callee's slow links.
func (e *Engine) selfGrew(caller string) bool {
	s, ok := e.services[caller]
	return ok && s.ev.selfGrew
}

// isOrigin: a node with anomalous edges into it whose trouble is its own:
// none of its own calls are anomalous, most of its sampled failed requests
// had no failed call beneath them, or the time its requests spend in its
// own code got far longer while the calls it makes are slow only on its own
// side (none fails, and their callees are fine on their side or cannot
// tell). A service whose requests wait on a callee in trouble (retry
// backoffs, queues) also spends longer in its own code: that callee, not
// the waiting, is where it started.
func (e *Engine) isOrigin(g *graph, n string) bool {
	if len(g.out[n]) == 0 {
		return true
	}
	s, ok := e.services[n]
	if !ok {
		return false
	}
	if s.ev.ownShare >= 0.5 {
		return true
	}
	if !s.ev.selfSlow {
		return false
	}
	for _, out := range g.out[n] {
		if out.failing() || e.side(out) == sideInside {
			return false
		}
	}
	return true
}

// originsOf follows anomalous edges down from n to the nodes whose failures
// are their own. A cycle with no way out names the node where it was entered.
func (e *Engine) originsOf(g *graph, n string, memo map[string][]string, onPath map[string]bool) []string {
	if o, ok := memo[n]; ok {
		return o
	}
	if onPath[n] {
		return nil
	}
	onPath[n] = true
	defer delete(onPath, n)
	set := map[string]bool{}
	if e.isOrigin(g, n) {
		set[n] = true
	}
	for _, ed := range g.out[n] {
		for _, o := range e.edgeOrigins(g, ed, memo, onPath) {
			set[o] = true
		}
	}
	if len(set) == 0 {
		set[n] = true
	}
	out := slices.Sorted(maps.Keys(set))
	memo[n] = out
	return out
}

// incidents groups the graph by origin and decides, per origin, whether the
// failure spreads into its callers.
func (e *Engine) incidents(g *graph) []*incident {
	byOrigin := map[string]*incident{}
	for ed, origins := range g.origins {
		for _, o := range origins {
			inc := byOrigin[o]
			if inc == nil {
				inc = &incident{origin: o, affected: map[string]int{}}
				byOrigin[o] = inc
			}
			if ed.callee == o {
				inc.edges = append(inc.edges, ed)
			}
			if ed.caller == o {
				inc.callerSide = true
			}
		}
	}
	out := make([]*incident, 0, len(byOrigin))
	for _, o := range slices.Sorted(maps.Keys(byOrigin)) {
		inc := byOrigin[o]
		if len(inc.edges) == 0 {
			// Nothing calls the origin through an anomalous edge (a starved
			// front door): no caller to spread to.
			continue
		}
		sort.Slice(inc.edges, func(i, j int) bool { return inc.edges[i].caller < inc.edges[j].caller })
		// Walk up from the origin through anomalous edges attributed to it.
		frontier := []string{o}
		for d := 1; len(frontier) > 0 && d < 32; d++ {
			var next []string
			for _, n := range frontier {
				for _, ed := range g.in[n] {
					if !slices.Contains(g.origins[ed], o) {
						continue
					}
					if _, seen := inc.affected[ed.caller]; !seen && ed.caller != o {
						inc.affected[ed.caller] = d
						next = append(next, ed.caller)
					}
				}
			}
			frontier = next
		}
		cfg := e.cfg.Cascade
		for _, ed := range inc.edges {
			if ed.failing() {
				inc.failing = true
				if ed.errTrace != ([16]byte{}) {
					inc.trace = ed.errTrace
				}
			}
			contained := ed.ev.propagation >= 0 && ed.ev.propagation < cfg.MaxPropagation
			if contained {
				continue
			}
			caller := ed.caller
			callerHurt := len(g.in[caller]) > 0 || e.slowReachesCaller(ed)
			if s, ok := e.services[caller]; ok && (s.ev.failing || s.ev.slow) {
				callerHurt = true
			}
			if callerHurt {
				inc.spread = true
			}
		}
		// A slowdown nobody upstream feels is not an incident; a failure is,
		// spreading or contained.
		if inc.failing || inc.spread {
			out = append(out, inc)
		}
	}
	return out
}

// slowReachesCaller reports whether a slow edge made the caller's own
// requests that call it slower, by at least half of what the calls
// themselves gained (and the least delta that counts): a caller that waits
// for the callee passes the slowdown on, one that does not (asynchronous
// calls, a hedge) contains it. Measured from in-process joins, so it holds
// for a route that is a small share of the caller's traffic too.
func (e *Engine) slowReachesCaller(ed *edge) bool {
	if !ed.ev.slow && !ed.ev.slowKeep {
		return false
	}
	if ed.mesh && ed.baseParent.n == 0 {
		return e.slowReachesCallerUnjoined(ed)
	}
	gained := ed.ev.lat.recentP50 - ed.baseLat.quantile(0.5)
	need := max(gained/2, float64(e.cfg.LatencySpike.MinDelta.Milliseconds()))
	return gained > 0 && ed.ev.parentRise >= need
}

// slowReachesCallerUnjoined judges an edge no join ever measured (a service
// mesh's metrics say nothing of which requests made which calls) from the
// caller's requests as a whole: the share of them in their tail grew by at
// least half of what the slow calls add to it (in proportion to how many
// calls to the callee it makes per request), by two points at least, and
// beyond chance (three standard deviations of the share at its normal).
func (e *Engine) slowReachesCallerUnjoined(ed *edge) bool {
	s, ok := e.services[ed.caller]
	if !ok || s.ev.lat.n < 20 || s.ev.lat.barMs <= 0 {
		return false
	}
	base := s.ev.lat.tailBase
	callerRise := s.ev.lat.share - base
	callRise := ed.ev.lat.share - ed.ev.lat.tailBase
	perRequest := min(1, ed.ev.lat.n/s.ev.lat.n)
	chance := 3 * math.Sqrt(max(base, 0.01)*(1-base)/s.ev.lat.n)
	return callRise > 0 && callerRise >= max(0.02, chance, callRise*perRequest/2)
}
