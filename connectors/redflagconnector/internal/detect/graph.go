package detect

import (
	"maps"
	"slices"
	"sort"
)

// incident is a failure and everything it spreads to: the origin (whose
// failures are its own) and the callers affected through anomalous edges.
type incident struct {
	origin   string
	edges    []*edge        // anomalous edges into the origin
	affected map[string]int // upstream nodes -> distance from the origin
	spread   bool           // failure propagates into at least one caller
	failing  bool           // some edge into the origin fails (not only slow)
	trace    [16]byte
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
	return ed.ev.anomalous || (ed.flagged && (ed.ev.spikeKeep || ed.ev.pressureKeep))
}

func (e *Engine) buildGraph() *graph {
	g := &graph{in: map[string][]*edge{}, out: map[string][]*edge{}, origins: map[*edge][]string{}}
	for _, k := range slices.SortedFunc(maps.Keys(e.edges), func(a, b edgeKey) int {
		if a.caller != b.caller {
			if a.caller < b.caller {
				return -1
			}
			return 1
		}
		if a.callee < b.callee {
			return -1
		} else if a.callee > b.callee {
			return 1
		}
		return 0
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
			g.origins[ed] = e.originsOf(g, ed.callee, memo, map[string]bool{})
		}
	}
	return g
}

// isOrigin: a node with anomalous edges into it whose failures are its own:
// none of its own calls are anomalous, or most of its sampled failed requests
// had no failed call beneath them.
func (e *Engine) isOrigin(g *graph, n string) bool {
	if len(g.out[n]) == 0 {
		return true
	}
	if s, ok := e.services[n]; ok && s.ev.ownShare >= 0.5 {
		return true
	}
	return false
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
		for _, o := range e.originsOf(g, ed.callee, memo, onPath) {
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
		}
	}
	out := make([]*incident, 0, len(byOrigin))
	for _, o := range slices.Sorted(maps.Keys(byOrigin)) {
		inc := byOrigin[o]
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
			if ed.ev.spike || ed.ev.pressure || ed.ev.fast || (ed.flagged && (ed.ev.spikeKeep || ed.ev.pressureKeep)) {
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
			callerHurt := len(g.in[caller]) > 0
			if s, ok := e.services[caller]; ok && (s.ev.failing || s.ev.slow) {
				callerHurt = true
			}
			if callerHurt {
				inc.spread = true
			}
		}
		if inc.failing {
			out = append(out, inc)
		}
	}
	return out
}
