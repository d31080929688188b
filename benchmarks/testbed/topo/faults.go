package topo

import "strings"

// Fault kinds, as simulate.Fault.Kind names them.
const (
	KindErrors         = "errors"
	KindUnavailable    = "unavailable"
	KindLatency        = "latency"
	KindCPU            = "cpu"
	KindNetworkDelay   = "network-delay"
	KindPoolExhaustion = "pool-exhaustion"
	KindSlowQuery      = "slow-query"
)

// Control kinds, as simulate.Event.Kind names them.
const (
	ControlSurge    = "surge"
	ControlDeploy   = "rolling-deploy"
	ControlFlood4xx = "client-4xx-flood"
)

const dbOriginPrefix = "postgresql/"

// LatencyOnly says whether a fault kind slows calls without failing them
// by itself.
func LatencyOnly(kind string) bool {
	switch kind {
	case KindLatency, KindCPU, KindNetworkDelay, KindSlowQuery:
		return true
	}
	return false
}

// Means is how a fault is injected.
type Means uint8

// Means of injection.
const (
	// ErrorReturns makes the service's handlers fail a share (Min..Max) of
	// requests with INTERNAL / 500 and an error log.
	ErrorReturns Means = iota + 1
	// HandlerLatency adds Min..Max milliseconds to every request.
	HandlerLatency
	// CPUQuota puts each replica into a cgroup whose CPU quota is Min..Max
	// times the CPU it used just before (measured): it keeps up, but every
	// request waits for the quota.
	CPUQuota
	// LinkLatency adds a latency toxic of Min..Max milliseconds on every
	// proxy into the target (its replicas, or the database).
	LinkLatency
	// ProxyDown disables the target's proxies: connection refused.
	ProxyDown
	// ResetPeer adds a reset_peer toxic: connections are reset.
	ResetPeer
	// PoolLeak makes the target leak database connections until its pool is
	// gone, in Min..Max seconds.
	PoolLeak
	// PGSleep makes the database functions of Via sleep Min..Max ms.
	PGSleep
)

// String names the means.
func (m Means) String() string {
	switch m {
	case ErrorReturns:
		return "error returns"
	case HandlerLatency:
		return "handler latency"
	case CPUQuota:
		return "cgroup CPU quota"
	case LinkLatency:
		return "toxiproxy latency"
	case ProxyDown:
		return "proxy disabled"
	case ResetPeer:
		return "toxiproxy reset_peer"
	case PoolLeak:
		return "connection leak"
	case PGSleep:
		return "pg_sleep in SQL functions"
	}
	return "unknown"
}

// FaultSpec is one fault a plan may inject; Min and Max bound its magnitude,
// in the unit of its Means.
type FaultSpec struct {
	Kind   string
	Target string
	// Method restricts error returns to one operation of Target.
	Method string
	// Via lists, for a database fault, the services whose statements are
	// hit (nil: every service using the database).
	Via      []string
	Means    Means
	Min, Max float64
}

// ControlSpec is one negative control: benign traffic a good detector does
// not alert on. Min..Max is the surge factor, or the rate of invalid
// requests as a multiple of the root rate.
type ControlSpec struct {
	Kind     string
	Target   string
	Min, Max float64
}

// Slot is one entry of a plan: a fault (one of Faults, picked by the seed) or
// a control.
type Slot struct {
	Faults  []FaultSpec
	Control *ControlSpec
}

// DBOrigin names a database as a fault origin.
func DBOrigin(database string) string { return dbOriginPrefix + database }

// DBName returns the database of a DBOrigin.
func DBName(origin string) (string, bool) { return strings.CutPrefix(origin, dbOriginPrefix) }

// edge is one caller of a target.
type edge struct {
	caller    string
	contained bool
}

// callers lists the services calling target (a service, or a DBOrigin), in
// service order; method, when set, keeps only calls to that operation; via,
// when set, keeps only those callers.
func (t *Topology) callers(target, method string, via []string) []edge {
	var out []edge
	keep := func(name string) bool {
		if len(via) == 0 {
			return true
		}
		for _, v := range via {
			if v == name {
				return true
			}
		}
		return false
	}
	if db, ok := DBName(target); ok {
		for _, s := range t.Services {
			if s.DB != nil && s.DB.Database == db && keep(s.Name) {
				out = append(out, edge{caller: s.Name})
			}
		}
		return out
	}
	for _, s := range t.Services {
		if !keep(s.Name) {
			continue
		}
		contained, found := true, false
		scan := func(steps []Step) {
			for _, st := range steps {
				for _, c := range st.Calls {
					if c.Service == target && (method == "" || c.Method == method) {
						found = true
						contained = contained && c.Contained(st.Kind)
					}
				}
			}
		}
		for _, op := range s.Ops {
			scan(op.Steps)
		}
		if s.Jobs != nil {
			scan(s.Jobs.Steps)
		}
		if found {
			out = append(out, edge{caller: s.Name, contained: contained})
		}
	}
	return out
}

// Affected lists the services a fault's failure reaches: the callers of its
// target, transitively, breadth first, except callers that contain it (a
// breaker with a fallback, an asynchronous call). The target is not
// included.
func (t *Topology) Affected(f FaultSpec) []string {
	seen := map[string]bool{f.Target: true}
	var out []string
	queue := []string{}
	for _, e := range t.callers(f.Target, f.Method, f.Via) {
		if !e.contained && !seen[e.caller] {
			seen[e.caller] = true
			out = append(out, e.caller)
			queue = append(queue, e.caller)
		}
	}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, e := range t.callers(cur, "", nil) {
			if e.contained || seen[e.caller] {
				continue
			}
			seen[e.caller] = true
			out = append(out, e.caller)
			queue = append(queue, e.caller)
		}
	}
	return out
}

// NearestCaller is the caller on whose edge into the target the fault's
// symptom shows first: the first caller in service order (topologies list
// the busiest caller first), contained or not.
func (t *Topology) NearestCaller(f FaultSpec) string {
	if c := t.callers(f.Target, f.Method, f.Via); len(c) > 0 {
		return c[0].caller
	}
	return ""
}
