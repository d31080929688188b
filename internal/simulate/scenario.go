package simulate

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// Alert names of the red-flag contract (docs/DESIGN.md), used in expectations.
const (
	AlertDependencyErrorSpike      = "DependencyErrorSpike"
	AlertDependencyTimeoutPressure = "DependencyTimeoutPressure"
	AlertDependencyLatencySpike    = "DependencyLatencySpike"
	AlertRetryStorm                = "RetryStorm"
	AlertCascadingFailure          = "CascadingFailure"
	AlertIsolatedFailure           = "IsolatedFailure"
	AlertErrorLogBurst             = "ErrorLogBurst"
	AlertSaturation                = "Saturation"
	AlertErrorBudgetBurn           = "ErrorBudgetBurn"
)

// ScenarioInfo describes a scenario.
type ScenarioInfo struct {
	Name        string
	Description string
	// Negative is true for negative controls: traffic a good detector must
	// not alert on.
	Negative bool
	// Expect lists the alert names a good detector raises (sorted).
	Expect []string
}

// Truth is the ground truth of a run: what was injected, where and when.
type Truth struct {
	Scenario string
	Seed     int64
	Negative bool
	// Start is the virtual start of the run; RootRate the nominal root rate
	// after the scenario's scaling (low-traffic scales it down).
	Start    time.Time
	RootRate float64
	// Faults are the injected faults (none for negative controls).
	Faults []Fault
	// Events are benign perturbations of negative controls (a surge, a
	// rolling restart, a burst of bad client requests), for context.
	Events []Event
}

// Fault is one injected fault.
type Fault struct {
	// Origin is named as a detector sees it: the service.name of an internal
	// service, or the server.address (no port) of an external dependency.
	Origin string
	// External is true when Origin is an external dependency.
	External bool
	// Instance is the service.instance.id for a single-instance fault.
	Instance string
	// Kind is "errors", "unavailable", "latency", "overload",
	// "connection-leak" or "bad-instance".
	Kind string
	// Detail says the fault's size in words ("fails 42% of requests").
	Detail string
	// Size is the fault's magnitude: the failing share of requests for
	// "errors", "unavailable" and "bad-instance"; the slowdown factor for
	// "latency" and "overload"; seconds until the pool is gone for
	// "connection-leak".
	Size float64
	// Start and End bound the fault. For metastable, TriggerEnd is when the
	// trigger ended (the overload goes on after it) and End is when operators
	// mitigated it (the origin was scaled out); for others TriggerEnd == End.
	Start, TriggerEnd, End time.Time
	// Affected are the services the failure spreads to (callers without a
	// fallback, transitively), nearest first; the origin is not included.
	Affected []string
	// Expect are the alerts a good detector raises for this fault, with the
	// labels that identify them. Callee labels use the canonical name
	// (service.name or server.address); callers that address a service by its
	// Kubernetes FQDN ("payments.shop.svc.cluster.local") are expected to be
	// normalised to it.
	Expect []Expectation
	// Tolerate lists alert names that are real secondary symptoms of this
	// fault (on the origin or the Affected services); raising them is not a
	// false alarm, and not raising them is not a miss.
	Tolerate []string
}

// ExpectNames returns the distinct alert names of f.Expect, in order.
func (f Fault) ExpectNames() []string {
	names := make([]string, 0, len(f.Expect))
	for _, e := range f.Expect {
		names = append(names, e.Alertname)
	}
	return dedup(names)
}

// Expectation is one alert a good detector raises.
type Expectation struct {
	Alertname string
	Labels    map[string]string
}

// Event is a benign perturbation in a negative control.
type Event struct {
	Kind, Target string
	Start, End   time.Time
	Detail       string
}

// Phase names where the run is at t: "healthy", "fault active: origin=X",
// "overload sustained after trigger: origin=X", or "fault over".
func (t Truth) Phase(at time.Time) string {
	var active []string
	over := false
	for _, f := range t.Faults {
		switch {
		case at.Before(f.Start):
		case at.Before(f.TriggerEnd):
			active = append(active, "fault active: origin="+f.Origin)
		case at.Before(f.End):
			active = append(active, "overload sustained after trigger: origin="+f.Origin)
		default:
			over = true
		}
	}
	for _, e := range t.Events {
		if !at.Before(e.Start) && at.Before(e.End) {
			active = append(active, e.Kind+": "+e.Target)
		}
	}
	switch {
	case len(active) > 0:
		return strings.Join(active, "; ")
	case over:
		return "fault over"
	}
	return "healthy"
}

// String is the one-line summary `vigil simulate` prints at start.
func (t Truth) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "scenario %s (seed %d, %.3g root req/s)", t.Scenario, t.Seed, t.RootRate)
	if t.Negative {
		b.WriteString(": negative control, no fault")
	}
	for i, f := range t.Faults {
		sep := ": "
		if i > 0 {
			sep = "; "
		}
		fmt.Fprintf(&b, "%sorigin %s", sep, f.Origin)
		if f.Instance != "" {
			fmt.Fprintf(&b, " (instance %s)", f.Instance)
		}
		fmt.Fprintf(&b, ", %s %s, fault at %s for %s", f.Kind, f.Detail, f.Start.Format("15:04:05"), f.End.Sub(f.Start))
		if f.TriggerEnd.Before(f.End) {
			fmt.Fprintf(&b, " (trigger %s)", f.TriggerEnd.Sub(f.Start))
		}
		fmt.Fprintf(&b, ", expect %s", strings.Join(f.ExpectNames(), ", "))
	}
	for _, e := range t.Events {
		fmt.Fprintf(&b, "; %s %s (%s) at %s for %s", e.Kind, e.Target, e.Detail, e.Start.Format("15:04:05"), e.End.Sub(e.Start))
	}
	return b.String()
}

func dedup(in []string) []string {
	seen := map[string]bool{}
	out := in[:0]
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// effKind is a runtime perturbation the engine applies between two instants.
type effKind uint8

const (
	effSvcFail     effKind = iota // service fails share of requests with res
	effSvcSlow                    // service's compute is factor slower
	effExtSlow                    // external's latency is factor higher
	effLeak                       // service leaks a pooled connection per query with share
	effBadInstance                // one instance fails share of requests
	effRate                       // root rate x factor
	effDeploy                     // rolling restart of target
	effClient4xx                  // share of root requests are bad client requests
	effScale                      // target scaled out to int(factor) ready instances at `at`
	effStarve                     // service starved of CPU: compute factor slower, responses handled share ms late
	effLinkDelay                  // every hop into and out of service takes factor ms longer
)

type effect struct {
	kind      effKind
	at, until time.Duration
	target    string
	inst      int
	share     float64
	factor    float64
	res       rkind
	pool      string // effLeak: the external whose pool leaks
}

// build is the scenario builder's state.
type build struct {
	p       *rand.Rand
	cfg     Config
	topo    *Topology
	truth   *Truth
	effects []effect
	rate    float64 // multiplier on cfg.RootRate
	// bad-instance: fault index -> (service, instance index) to name once
	// instances exist.
	instFault []instRef
	// errScale multiplies every background error rate (low-traffic).
	errScale float64
}

type instRef struct {
	fault   int
	service string
	idx     int
}

func (b *build) uniform(lo, hi float64) float64 { return lo + (hi-lo)*b.p.Float64() }

func (b *build) pick(names ...string) string { return names[b.p.IntN(len(names))] }

func (b *build) at(d time.Duration) time.Time { return b.cfg.Start.Add(d) }

// fault appends a fault and returns its index.
func (b *build) fault(f Fault, start, end time.Duration) int {
	f.Start, f.TriggerEnd, f.End = b.at(start), b.at(end), b.at(end)
	if f.Affected == nil {
		f.Affected = b.topo.spreadsTo(f.Origin)
	}
	b.truth.Faults = append(b.truth.Faults, f)
	return len(b.truth.Faults) - 1
}

// edgeExpect expects alertname on every edge caller -> origin.
func (b *build) edgeExpect(alertname, origin string) []Expectation {
	var out []Expectation
	seen := map[string]bool{}
	for _, ref := range b.topo.callSites(origin) {
		if seen[ref.caller] {
			continue
		}
		seen[ref.caller] = true
		out = append(out, Expectation{Alertname: alertname, Labels: map[string]string{"service": ref.caller, "callee": origin}})
	}
	return out
}

// edgeExpectWithin is edgeExpect for the callers whose calls to origin have
// a timeout of at least minTimeout.
func (b *build) edgeExpectWithin(alertname, origin string, minTimeout time.Duration) []Expectation {
	var out []Expectation
	seen := map[string]bool{}
	for _, ref := range b.topo.callSites(origin) {
		if seen[ref.caller] || ref.call.Timeout < minTimeout {
			continue
		}
		seen[ref.caller] = true
		out = append(out, Expectation{Alertname: alertname, Labels: map[string]string{"service": ref.caller, "callee": origin}})
	}
	return out
}

func originExpect(alertname, origin string) Expectation {
	return Expectation{Alertname: alertname, Labels: map[string]string{"origin_service": origin}}
}

var secondary = []string{AlertDependencyErrorSpike, AlertDependencyTimeoutPressure, AlertRetryStorm, AlertErrorLogBurst, AlertErrorBudgetBurn, AlertSaturation}

type scenarioDef struct {
	info  ScenarioInfo
	build func(b *build)
}

// errorDependency makes origin fail share of its requests with an internal
// error (HTTP 500 / gRPC INTERNAL, not retried) from start to end.
func errorDependency(b *build, origin string, start, end time.Duration) {
	share := b.uniform(0.3, 0.7)
	b.effects = append(b.effects, effect{kind: effSvcFail, at: start, until: end, target: origin, share: share, res: rInternal})
	exp := append(b.edgeExpect(AlertDependencyErrorSpike, origin), originExpect(AlertCascadingFailure, origin))
	b.fault(Fault{Origin: origin, Kind: "errors", Size: share, Detail: fmt.Sprintf("fails %.0f%% of requests (internal error)", 100*share),
		Expect: exp, Tolerate: secondary}, start, end)
}

// cpuStarvation starves origin of CPU (a noisy neighbour, a CPU limit set
// too low): its own compute runs factor slower and its goroutines handle
// every answer late, so its requests and every call it makes look slow from
// its side, while its callees answer as fast as ever. Latency only: the
// slowdown stays inside its callers' timeouts.
func cpuStarvation(b *build, origin string, start, end time.Duration) {
	factor := b.uniform(1.5, 2.5)
	delay := b.uniform(40, 90)
	b.effects = append(b.effects, effect{kind: effStarve, at: start, until: end, target: origin, factor: factor, share: delay})
	// A caller with a short timeout may see the slowdown as timeouts (an
	// error spike, tolerated): latency is expected where the timeout leaves
	// room for it.
	exp := append(b.edgeExpectWithin(AlertDependencyLatencySpike, origin, time.Second), originExpect(AlertCascadingFailure, origin))
	b.fault(Fault{Origin: origin, Kind: "cpu", Size: factor, Detail: fmt.Sprintf("starved of CPU: compute %.1fx slower, its work scheduled ~%.0f ms late", factor, delay),
		Expect: exp, Tolerate: secondary}, start, end)
}

// networkDelay slows every link into and out of origin by a fixed delay
// (its node's network, a sidecar gone wrong): its callers see it slow,
// while its own server spans do not. Latency only.
func networkDelay(b *build, origin string, start, end time.Duration) {
	delay := b.uniform(120, 250)
	b.effects = append(b.effects, effect{kind: effLinkDelay, at: start, until: end, target: origin, factor: delay})
	exp := append(b.edgeExpectWithin(AlertDependencyLatencySpike, origin, time.Second), originExpect(AlertCascadingFailure, origin))
	b.fault(Fault{Origin: origin, Kind: "network-delay", Size: delay, Detail: fmt.Sprintf("every hop into it %.0f ms slower", delay),
		Expect: exp, Tolerate: secondary}, start, end)
}

// slowDependency multiplies an external database's latency.
func slowDependency(b *build, origin string, start, end time.Duration) {
	factor := b.uniform(400, 800)
	b.effects = append(b.effects, effect{kind: effExtSlow, at: start, until: end, target: origin, factor: factor})
	exp := append(b.edgeExpect(AlertDependencyTimeoutPressure, origin), originExpect(AlertCascadingFailure, origin))
	b.fault(Fault{Origin: origin, External: true, Kind: "latency", Size: factor, Detail: fmt.Sprintf("queries %.0fx slower (lock contention)", factor),
		Expect: exp, Tolerate: secondary}, start, end)
}

var scenarios = []scenarioDef{
	{
		info: ScenarioInfo{Name: "healthy", Negative: true,
			Description: "steady traffic through the shop, ~0.1% background errors, no fault"},
		build: func(*build) {},
	},
	{
		info: ScenarioInfo{Name: "error-dependency", Expect: []string{AlertDependencyErrorSpike, AlertCascadingFailure},
			Description: "an internal leaf service (payments, inventory, shipping, search or currency) fails 30-70% of requests; callers without fallback propagate it up to the frontend"},
		build: func(b *build) {
			errorDependency(b, b.pick("payments", "inventory", "shipping", "search", "currency"), b.cfg.FaultAfter, b.cfg.FaultAfter+b.cfg.FaultDuration)
		},
	},
	{
		info: ScenarioInfo{Name: "slow-dependency", Expect: []string{AlertDependencyTimeoutPressure, AlertCascadingFailure},
			Description: "an external PostgreSQL (inventory-db or catalog-db) becomes 400-800x slower (lock contention: queries hit the 1 s statement timeout); callers time out, pools and workers fill, the frontend fails"},
		build: func(b *build) {
			slowDependency(b, b.pick("inventory-db", "catalog-db"), b.cfg.FaultAfter, b.cfg.FaultAfter+b.cfg.FaultDuration)
		},
	},
	{
		info: ScenarioInfo{Name: "cpu-starvation", Expect: []string{AlertCascadingFailure, AlertDependencyLatencySpike},
			Description: "catalog or checkout is starved of CPU (compute 1.5-2.5x slower, every scheduling of its work 40-90 ms late): its own code and every call it makes look slow from its side while its callees are fine; its callers slow down, nothing fails"},
		build: func(b *build) {
			cpuStarvation(b, b.pick("catalog", "checkout"), b.cfg.FaultAfter, b.cfg.FaultAfter+b.cfg.FaultDuration)
		},
	},
	{
		info: ScenarioInfo{Name: "network-delay", Expect: []string{AlertCascadingFailure, AlertDependencyLatencySpike},
			Description: "every link into inventory, shipping or search gets 120-250 ms slower (its network, not its code): callers see it slow, its own server spans do not; nothing fails"},
		build: func(b *build) {
			networkDelay(b, b.pick("inventory", "shipping", "search"), b.cfg.FaultAfter, b.cfg.FaultAfter+b.cfg.FaultDuration)
		},
	},
	{
		info: ScenarioInfo{Name: "retry-storm", Expect: []string{AlertRetryStorm, AlertDependencyErrorSpike, AlertCascadingFailure},
			Description: "payments or inventory answers 80-95% of requests with 503/UNAVAILABLE; checkout and the frontend both retry, so the origin sees 3-6x its normal calls"},
		build: func(b *build) {
			origin := b.pick("payments", "inventory")
			share := b.uniform(0.8, 0.95)
			start, end := b.cfg.FaultAfter, b.cfg.FaultAfter+b.cfg.FaultDuration
			b.effects = append(b.effects, effect{kind: effSvcFail, at: start, until: end, target: origin, share: share, res: rUnavailable})
			exp := b.edgeExpect(AlertRetryStorm, origin)
			exp = append(exp, b.edgeExpect(AlertDependencyErrorSpike, origin)...)
			exp = append(exp, originExpect(AlertCascadingFailure, origin))
			b.fault(Fault{Origin: origin, Kind: "unavailable", Size: share, Detail: fmt.Sprintf("answers %.0f%% of requests with UNAVAILABLE/503", 100*share),
				Expect: exp, Tolerate: secondary}, start, end)
		},
	},
	{
		info: ScenarioInfo{Name: "metastable", Expect: []string{AlertRetryStorm, AlertCascadingFailure},
			Description: "catalog runs on one replica at ~45% of its CPU limit with aggressive client retries; a 40-90 s slowdown tips it over and retries keep it overloaded after the trigger ends, until it is scaled out at fault_after+fault_duration"},
		build: func(b *build) {
			cat := &b.topo.Services[b.topo.serviceIndex("catalog")]
			// Right-sized to the traffic: ~45% of its CPU limit from 20 root
			// requests/s up. Below that a smaller slice of a core makes each
			// request too slow for its callers' timeouts.
			cat.Instances, cat.CPU = 1, 0.5*max(b.cfg.RootRate, 20)/DefaultRootRate
			// Misconfigured retries toward catalog: six attempts, on timeouts too.
			for i := range b.topo.Services {
				for j := range b.topo.Services[i].Ops {
					for k := range b.topo.Services[i].Ops[j].Steps {
						for l := range b.topo.Services[i].Ops[j].Steps[k] {
							if c := &b.topo.Services[i].Ops[j].Steps[k][l]; c.Target == "catalog" && b.topo.Services[i].Name == "frontend" {
								c.Attempts, c.Timeout, c.Backoff, c.RetryTimeouts = 6, time.Second, 50*time.Millisecond, true
							}
						}
					}
				}
			}
			start, end := b.cfg.FaultAfter, b.cfg.FaultAfter+b.cfg.FaultDuration
			trigger := time.Duration(b.uniform(40, 90) * float64(time.Second)).Round(time.Second)
			if trigger > b.cfg.FaultDuration/2 {
				trigger = b.cfg.FaultDuration / 2
			}
			factor := b.uniform(3, 5)
			b.effects = append(b.effects,
				effect{kind: effSvcSlow, at: start, until: start + trigger, target: "catalog", factor: factor},
				effect{kind: effScale, at: end, target: "catalog", factor: 3})
			exp := append(b.edgeExpect(AlertRetryStorm, "catalog")[:1], originExpect(AlertCascadingFailure, "catalog"))
			i := b.fault(Fault{Origin: "catalog", Kind: "overload", Size: factor,
				Detail: fmt.Sprintf("CPU %.1fx slower for %s, then retry load keeps it overloaded", factor, trigger),
				Expect: exp, Tolerate: append([]string{AlertIsolatedFailure}, secondary...)}, start, end)
			b.truth.Faults[i].TriggerEnd = b.at(start + trigger)
		},
	},
	{
		info: ScenarioInfo{Name: "pool-exhaustion", Expect: []string{AlertSaturation, AlertCascadingFailure},
			Description: "inventory leaks PostgreSQL connections until its pool is exhausted (in 1-3 min): waiters pile up, queries wait and time out; the pool metrics show it"},
		build: func(b *build) {
			start, end := b.cfg.FaultAfter, b.cfg.FaultAfter+b.cfg.FaultDuration
			exhaust := b.uniform(60, 180) // seconds until the pool is gone
			b.effects = append(b.effects, effect{kind: effLeak, at: start, until: end, target: "inventory", pool: "inventory-db", factor: exhaust})
			exp := []Expectation{
				{Alertname: AlertSaturation, Labels: map[string]string{"service": "inventory", "resource": "db_connection_pool"}},
				originExpect(AlertCascadingFailure, "inventory"),
			}
			b.fault(Fault{Origin: "inventory", Kind: "connection-leak", Size: exhaust, Detail: fmt.Sprintf("pool exhausted after ~%.0fs", exhaust),
				Expect: exp, Tolerate: secondary}, start, end)
		},
	},
	{
		info: ScenarioInfo{Name: "bad-instance", Expect: []string{AlertDependencyErrorSpike},
			Description: "one instance of catalog, cart, search or currency refuses connections or answers 503 for 50-90% of its requests; the others are fine"},
		build: func(b *build) {
			origin := b.pick("catalog", "cart", "search", "currency")
			n := b.topo.Services[b.topo.serviceIndex(origin)].Instances
			idx := b.p.IntN(n)
			share := b.uniform(0.5, 0.9)
			start, end := b.cfg.FaultAfter, b.cfg.FaultAfter+b.cfg.FaultDuration
			b.effects = append(b.effects, effect{kind: effBadInstance, at: start, until: end, target: origin, inst: idx, share: share})
			i := b.fault(Fault{Origin: origin, Kind: "bad-instance", Size: share, Detail: fmt.Sprintf("one of %d instances fails %.0f%% of its requests", n, 100*share),
				Expect: b.edgeExpect(AlertDependencyErrorSpike, origin), Tolerate: append([]string{AlertCascadingFailure, AlertIsolatedFailure}, secondary...)}, start, end)
			b.instFault = append(b.instFault, instRef{fault: i, service: origin, idx: idx})
		},
	},
	{
		info: ScenarioInfo{Name: "contained-by-fallback", Expect: []string{AlertIsolatedFailure, AlertDependencyErrorSpike},
			Description: "recommendation fails 60-100% of requests, but the frontend's fallback and circuit breaker keep its pages OK: an isolated failure, no cascade"},
		build: func(b *build) {
			share := b.uniform(0.6, 1.0)
			start, end := b.cfg.FaultAfter, b.cfg.FaultAfter+b.cfg.FaultDuration
			b.effects = append(b.effects, effect{kind: effSvcFail, at: start, until: end, target: "recommendation", share: share, res: rInternal})
			exp := append(b.edgeExpect(AlertDependencyErrorSpike, "recommendation"), originExpect(AlertIsolatedFailure, "recommendation"))
			b.fault(Fault{Origin: "recommendation", Kind: "errors", Size: share, Detail: fmt.Sprintf("fails %.0f%% of requests (internal error)", 100*share),
				Expect: exp, Tolerate: []string{AlertErrorLogBurst, AlertErrorBudgetBurn}}, start, end)
		},
	},
	{
		info: ScenarioInfo{Name: "traffic-surge", Negative: true,
			Description: "root traffic rises 2-3x for fault_duration, within capacity: latency rises a little, nothing fails"},
		build: func(b *build) {
			f := b.uniform(2, 3)
			start, end := b.cfg.FaultAfter, b.cfg.FaultAfter+b.cfg.FaultDuration
			b.effects = append(b.effects, effect{kind: effRate, at: start, until: end, factor: f})
			b.truth.Events = append(b.truth.Events, Event{Kind: "traffic-surge", Target: b.topo.Entry, Start: b.at(start), End: b.at(end), Detail: fmt.Sprintf("%.1fx root traffic", f)})
		},
	},
	{
		info: ScenarioInfo{Name: "deploy", Negative: true,
			Description: "rolling restart of checkout, catalog, cart or payments to a new service.version: brief connection-refused blips, cold new instances"},
		build: func(b *build) {
			target := b.pick("checkout", "catalog", "cart", "payments")
			start := b.cfg.FaultAfter
			n := b.topo.Services[b.topo.serviceIndex(target)].Instances
			b.effects = append(b.effects, effect{kind: effDeploy, at: start, target: target})
			b.truth.Events = append(b.truth.Events, Event{Kind: "deploy", Target: target, Start: b.at(start), End: b.at(start + time.Duration(n)*deployStep + 16*time.Second),
				Detail: "rolling restart to " + nextVersion(b.topo.Services[b.topo.serviceIndex(target)].Version)})
		},
	},
	{
		info: ScenarioInfo{Name: "low-traffic", Negative: true,
			Description: "a few root requests a minute (root_rate x 0.0015-0.004) with an occasional error"},
		build: func(b *build) {
			b.rate = b.uniform(0.0015, 0.004)
			b.errScale = 15
		},
	},
	{
		info: ScenarioInfo{Name: "client-4xx-burst", Negative: true,
			Description: "for fault_duration 20-50% of root requests are bad client requests: 404 for unknown products (passed down to catalog) and 400 for malformed ones; no 5xx"},
		build: func(b *build) {
			share := b.uniform(0.2, 0.5)
			start, end := b.cfg.FaultAfter, b.cfg.FaultAfter+b.cfg.FaultDuration
			b.effects = append(b.effects, effect{kind: effClient4xx, at: start, until: end, share: share})
			b.truth.Events = append(b.truth.Events, Event{Kind: "client-4xx-burst", Target: b.topo.Entry, Start: b.at(start), End: b.at(end), Detail: fmt.Sprintf("%.0f%% bad requests", 100*share)})
		},
	},
	{
		info: ScenarioInfo{Name: "two-faults", Expect: []string{AlertDependencyErrorSpike, AlertDependencyTimeoutPressure, AlertCascadingFailure},
			Description: "two independent faults: a checkout-path service (payments, inventory or shipping) fails at fault_after, and catalog-db slows down 0.5-1.5 fault durations later"},
		build: func(b *build) {
			start, dur := b.cfg.FaultAfter, b.cfg.FaultDuration
			errorDependency(b, b.pick("payments", "inventory", "shipping"), start, start+dur)
			second := start + time.Duration(b.uniform(0.5, 1.5)*float64(dur))
			slowDependency(b, "catalog-db", second, second+dur)
		},
	},
}

// deployStep is the time one instance of a rolling restart takes.
const deployStep = 30 * time.Second

func nextVersion(v string) string {
	parts := strings.Split(v, ".")
	if len(parts) < 2 {
		return v + "-1"
	}
	n := 0
	for _, ch := range parts[1] {
		if ch < '0' || ch > '9' {
			return v + "-1"
		}
		n = n*10 + int(ch-'0')
	}
	return fmt.Sprintf("%s.%d.0", parts[0], n+1)
}
