package detect

import (
	"encoding/hex"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vigilhq/vigil/internal/alertevent"
	"github.com/vigilhq/vigil/internal/redflag"
)

// Evaluate runs every detector at now and returns the alert state changes,
// in a deterministic order. Call it every evaluation interval (10 s).
func (e *Engine) Evaluate(now time.Time) []Transition {
	bk := bucketOf(now)
	e.bucket = bk
	dt := BucketWidth
	if !e.lastEval.IsZero() {
		dt = min(max(now.Sub(e.lastEval), time.Second), 10*time.Minute)
	}
	e.expire(bk)
	minInfo := e.cfg.SignificanceBits * math.Ln2

	for _, s := range e.services {
		s.evaluate(e.cfg, bk, minInfo)
		s.logs.evaluate(e.cfg.ErrorLogBurst, bk, minInfo)
		in1 := float64(s.in.sum(bk, 6).Calls)
		inPrev := float64(s.in.sum(bk-NumBuckets+6, 6).Calls)
		s.sat.evaluate(e.cfg.Saturation, now, bk, in1, inPrev)
		for i := range s.slos {
			s.slos[i].evaluate(now, ratio(s.ev.w5.Errors, s.ev.w5.Calls)/(1-s.slos[i].cfg.Objective), s.ev.w5.Calls)
		}
	}
	for _, ed := range e.edges {
		ed.evaluate(e.cfg, bk, minInfo)
	}

	g := e.buildGraph()
	incs := e.incidents(g)
	// Symptoms carry the cascade_id of the incident they belong to: edges
	// attributed to a current incident's origin, and services in its blast
	// radius (the origin and the callers it reaches).
	current := map[string]bool{}
	blast := map[string]string{}
	for _, s := range e.services {
		s.origin, s.starved = false, false
	}
	for _, inc := range incs {
		current[inc.origin] = true
		if s, ok := e.services[inc.origin]; ok {
			s.origin, s.starved = true, inc.callerSide
		}
		for _, n := range append(slices.Sorted(maps.Keys(inc.affected)), inc.origin) {
			if _, taken := blast[n]; !taken {
				blast[n] = inc.origin
			}
		}
	}
	originOf := map[*edge]string{}
	for ed, os := range g.origins {
		for _, o := range os {
			if current[o] {
				originOf[ed] = o
				break
			}
		}
	}

	var out []Transition
	e.edgeAlerts(now, g, originOf, &out)
	e.incidentAlerts(now, incs, &out)
	e.serviceAlerts(now, blast, &out)
	e.resolveUnseen(now, &out)

	// Flag what active alerts cover, for the baselines and the sampler.
	for _, ed := range e.edges {
		ed.flagged = false
	}
	for _, a := range e.alerts {
		if c := a.Labels["callee"]; c != "" {
			if ed, ok := e.edges[edgeKey{a.Labels["service"], c}]; ok {
				ed.flagged = true
			}
		}
	}
	for _, inc := range incs {
		for _, ed := range inc.edges {
			ed.flagged = true
		}
	}

	for _, ed := range e.edges {
		ed.learnBaselines(bk, dt, e.cfg.BaselineHalfLife)
	}
	for _, s := range e.services {
		s.learnBaselines(bk, e.cfg.BaselineHalfLife)
		s.logs.learn(bk, dt, e.cfg.BaselineHalfLife)
	}
	e.lastEval = now
	return out
}

func (e *Engine) expire(bk int64) {
	idle := int64(e.cfg.IdleExpiry / BucketWidth)
	for k, ed := range e.edges {
		if bk-ed.lastBucket > idle && !ed.flagged {
			delete(e.edges, k)
			e.stats.EdgesExpired++
		}
	}
	for k, s := range e.services {
		if bk-s.lastBucket > idle && !s.origin && len(s.slos) == 0 {
			delete(e.services, k)
			e.dir.changed = true
		}
	}
	if e.dir.expire(bk, idle) {
		e.rekey()
	}
	for k, n := range e.namespaces {
		if bk-n.bucket > idle {
			if _, ok := e.services[k]; !ok {
				delete(e.namespaces, k)
			}
		}
	}
}

func pct(x float64) string { return strconv.FormatFloat(100*x, 'f', 1, 64) + "%" }

func ms(x float64) string {
	if x >= 1000 {
		return strconv.FormatFloat(x/1000, 'f', 2, 64) + "s"
	}
	return strconv.FormatFloat(x, 'f', 0, 64) + "ms"
}

func traceHex(t [16]byte) string {
	if t == ([16]byte{}) {
		return ""
	}
	return hex.EncodeToString(t[:])
}

func perSecond(n uint32, window time.Duration) string {
	return strconv.FormatFloat(float64(n)/window.Seconds(), 'f', 2, 64)
}

// symptomLabels builds the labels of an edge alert, with the cascade_id of the
// incident it belongs to when there is one (sticky for the alert's life).
func symptomLabels(name, severity string, ed *edge, origin string) (map[string]string, string) {
	l := map[string]string{"alertname": name, "severity": severity, "service": ed.caller, "callee": ed.callee}
	identity := alertevent.LabelsKey(l)
	if origin != "" {
		l["cascade_id"] = CascadeID(origin)
	}
	return l, identity
}

// blastLabels adds the cascade_id of the incident whose blast radius a
// service is in (origin "" : none), sticky like symptomLabels.
func blastLabels(l map[string]string, origin string) (map[string]string, string) {
	identity := alertevent.LabelsKey(l)
	if origin != "" {
		l["cascade_id"] = CascadeID(origin)
	}
	return l, identity
}

func (e *Engine) edgeAlerts(now time.Time, g *graph, originOf map[*edge]string, out *[]Transition) {
	keys := slices.SortedFunc(maps.Keys(e.edges), func(a, b edgeKey) int {
		return strings.Compare(a.caller+"\x00"+a.callee, b.caller+"\x00"+b.callee)
	})
	cfg := e.cfg
	for _, k := range keys {
		ed := e.edges[k]
		ev := &ed.ev
		origin := originOf[ed]
		common := func() map[string]string {
			a := map[string]string{
				"calls_per_second": perSecond(ev.w5.Calls, 5*time.Minute),
				"error_ratio":      pct(ev.err5),
				"error_ratio_1m":   pct(ev.err1),
				"baseline":         pct(ev.baseErr),
				"p50":              ms(ev.p50),
				"p99":              ms(ev.p99),
			}
			if origin != "" {
				a["origin_service"] = origin
			}
			if t := traceHex(ed.errTrace); t != "" {
				a["example_trace_id"] = t
			}
			return a
		}

		if ev.spike || ev.spikeKeep {
			labels, id := symptomLabels("DependencyErrorSpike", "warning", ed, origin)
			ann := common()
			ann["threshold"] = pct(ev.thr)
			ann["summary"] = fmt.Sprintf("%s -> %s: %s of calls fail (baseline %s)", ed.caller, ed.callee, pct(ev.err5), pct(ev.baseErr))
			ann["description"] = fmt.Sprintf("Calls from %s to %s fail at %s over 5 minutes (%s in the last minute), above the threshold %s; top error class %s.",
				ed.caller, ed.callee, pct(ev.err5), pct(ev.err1), pct(ev.thr), topClass(&ev.w5))
			e.offer(candidate{labels: labels, annotations: ann, forDur: cfg.ErrorSpike.For, start: ev.spike, keep: ev.spikeKeep, trace: ed.errTrace, identity: id,
				since: ed.failingSince(bucketOf(now), ev.thr)}, now, out)
		}

		if ev.pressure || ev.pressureKeep {
			labels, id := symptomLabels("DependencyTimeoutPressure", "warning", ed, origin)
			ann := common()
			t := ev.timeoutMs
			if t > 0 {
				ann["timeout"] = ms(t)
			}
			ann["near_timeout_share"] = pct(ev.near5)
			ann["timed_out_share"] = pct(ev.tmo5)
			ann["summary"] = fmt.Sprintf("%s -> %s: latency is eating the timeout budget (p99 %s, timeout %s, %s timed out)", ed.caller, ed.callee, ms(ev.p99), ms(t), pct(ev.tmo5))
			ann["description"] = fmt.Sprintf("Calls from %s to %s: %s beyond %s of the %s timeout, %s hit it; p50 %s, p99 %s.",
				ed.caller, ed.callee, pct(ev.near5), pct(cfg.TimeoutPressure.Budget), ms(t), pct(ev.tmo5), ms(ev.p50), ms(ev.p99))
			e.offer(candidate{labels: labels, annotations: ann, forDur: cfg.TimeoutPressure.For, start: ev.pressure, keep: ev.pressureKeep, trace: ed.errTrace, identity: id}, now, out)
		}

		// DependencyLatencySpike: the calls got slow. Not raised for an edge
		// whose slowness is its caller's own (the callee is fine), nor while
		// the calls fail, which the alerts above say better.
		callerSide := len(g.origins[ed]) == 1 && g.origins[ed][0] == ed.caller
		if (ev.slow || ev.slowKeep) && !callerSide {
			labels, id := symptomLabels("DependencyLatencySpike", "warning", ed, origin)
			ann := common()
			l := &ev.lat
			ann["normal_p90"] = ms(l.baseP90)
			ann["recent_p50"] = ms(l.recentP50)
			ann["recent_p90"] = ms(l.recentP90)
			ann["slow_share"] = pct(l.share)
			ann["summary"] = fmt.Sprintf("%s -> %s: calls got slow, %s of them over %s (normal p90 %s)", ed.caller, ed.callee, pct(l.share), ms(l.barMs), ms(l.baseP90))
			ann["description"] = fmt.Sprintf("Calls from %s to %s take longer than usual: %s of recent calls reached %s, against a normal p90 of %s; recent p50 %s, p90 %s.",
				ed.caller, ed.callee, pct(l.share), ms(l.barMs), ms(l.baseP90), ms(l.recentP50), ms(l.recentP90))
			start := ev.slow && !ed.failing()
			e.offer(candidate{labels: labels, annotations: ann, forDur: cfg.LatencySpike.For, start: start, keep: ev.slowKeep, trace: ed.errTrace, identity: id,
				since: ed.slowSince(bucketOf(now), cfg.LatencySpike.MinShare)}, now, out)
		}

		stormStart := ev.storm && e.calleeUnhealthy(g, ed)
		if stormStart || ev.stormKeep {
			if stormStart && ed.stormSince.IsZero() {
				ed.stormSince = now
			}
			twoLayer := false
			for _, down := range e.edgesFrom(ed.callee) {
				if down.ev.storm {
					twoLayer = true
				}
			}
			ann := common()
			ann["retry_ratio"] = pct(ratio(ev.w5.Retries, ev.w5.Calls))
			ann["amplification"] = strconv.FormatFloat(ev.amplification, 'f', 2, 64)
			if twoLayer {
				ann["retry_layers"] = "2"
			}
			if e.metastable(g, ed, now) {
				ann["metastable"] = "true"
			}
			ann["summary"] = fmt.Sprintf("%s -> %s: retry storm, %s of calls are retries, load x%.1f", ed.caller, ed.callee, ann["retry_ratio"], ev.amplification)
			ann["description"] = fmt.Sprintf("%s retries calls to the unhealthy %s: %s of calls are retries, amplifying load %.1fx.", ed.caller, ed.callee, ann["retry_ratio"], ev.amplification)
			labels, id := symptomLabels("RetryStorm", "warning", ed, origin)
			a := e.offer(candidate{labels: labels, annotations: ann, forDur: cfg.RetryStorm.For, start: stormStart, keep: ev.stormKeep, trace: ed.errTrace, identity: id}, now, out)
			if a != nil && (ev.amplification >= cfg.RetryStorm.CriticalAmplification || twoLayer) {
				labels, id := symptomLabels("RetryStorm", "critical", ed, origin)
				e.offer(candidate{labels: labels, annotations: ann, forDur: cfg.RetryStorm.For, start: stormStart, keep: ev.stormKeep, trace: ed.errTrace, identity: id}, now, out)
			}
			if a == nil {
				ed.stormSince = time.Time{}
			}
		} else {
			ed.stormSince = time.Time{}
		}
	}
}

func (e *Engine) edgesFrom(caller string) []*edge {
	var out []*edge
	for k, ed := range e.edges {
		if k.caller == caller {
			out = append(out, ed)
		}
	}
	return out
}

// calleeUnhealthy: the callee of a retrying edge is failing or slow, seen on
// this edge or by anyone calling it.
func (e *Engine) calleeUnhealthy(g *graph, ed *edge) bool {
	if ed.ev.err5 >= e.cfg.ErrorSpike.MinRatio || ed.ev.anomalous {
		return true
	}
	if len(g.in[ed.callee]) > 0 {
		return true
	}
	s, ok := e.services[ed.callee]
	return ok && (s.ev.failing || s.ev.slow)
}

// metastable: the storm has lasted MetastableAfter while the callee's own
// dependencies are healthy and its failures are overload or timeouts, i.e.
// the retries themselves now keep it down.
func (e *Engine) metastable(g *graph, ed *edge, now time.Time) bool {
	if ed.stormSince.IsZero() || now.Sub(ed.stormSince) < e.cfg.RetryStorm.MetastableAfter {
		return false
	}
	if len(g.out[ed.callee]) > 0 {
		return false
	}
	w := &ed.ev.w5
	return w.Errors > 0 && float64(w.Class[ClassOverload]+w.Class[ClassTimeout]) >= 0.5*float64(w.Errors)
}

func topClass(w *Counts) string {
	best, n := Class(ClassOther), uint32(0)
	for c := Class(0); c < NumClasses; c++ {
		if w.Class[c] > n {
			best, n = c, w.Class[c]
		}
	}
	return best.String()
}

func (e *Engine) incidentAlerts(now time.Time, incs []*incident, out *[]Transition) {
	cfg := e.cfg.Cascade
	present := map[string]bool{}
	for _, inc := range incs {
		present[inc.origin] = true
		if _, ok := e.incidentSince[inc.origin]; !ok {
			e.incidentSince[inc.origin] = now
		}
	}
	for o := range e.incidentSince {
		if !present[o] {
			delete(e.incidentSince, o)
		}
	}
	// An incident already alerted on covers the services it reaches: a new
	// origin among them is its residue (a pool still draining, a queue still
	// backed up), not a second incident, and is not raised while it lasts.
	alerted := map[string]bool{}
	for _, a := range e.alerts {
		if n := a.Name(); n == "CascadingFailure" || n == "IsolatedFailure" {
			alerted[a.Labels["origin_service"]] = true
		}
	}
	covered := map[string]bool{}
	for _, inc := range incs {
		if alerted[inc.origin] {
			for n := range inc.affected {
				covered[n] = true
			}
		}
	}
	for _, inc := range incs {
		affected := slices.Collect(maps.Keys(inc.affected))
		sort.Slice(affected, func(i, j int) bool {
			di, dj := inc.affected[affected[i]], inc.affected[affected[j]]
			return di < dj || di == dj && affected[i] < affected[j]
		})
		var callers []string
		var worst *edge
		for _, ed := range inc.edges {
			callers = append(callers, ed.caller)
			if worst == nil || ed.ev.err5 > worst.ev.err5 || (ed.ev.err5 == worst.ev.err5 && ed.ev.lat.share > worst.ev.lat.share) {
				worst = ed
			}
		}
		ann := map[string]string{
			"affected_services": strings.Join(affected, ","),
			"callers":           strings.Join(callers, ","),
			"error_ratio":       pct(worst.ev.err5),
			"p99":               ms(worst.ev.p99),
		}
		if s, ok := e.services[inc.origin]; ok && s.ev.ownShare >= 0 {
			ann["own_failure_share"] = pct(s.ev.ownShare)
		}
		if t := traceHex(inc.trace); t != "" {
			ann["example_trace_id"] = t
		}
		// What the origin is: a service, or a name no telemetry has tied to
		// one (an address is shown as such, never passed off as a service).
		what := inc.origin
		if k := worst.kind; k == redflag.KindAddress || k == redflag.KindRPC || inc.origin == redflag.UnknownDependency {
			ann["origin_kind"] = "unresolved " + k.String()
			if inc.origin == redflag.UnknownDependency {
				ann["origin_kind"] = "unnamed dependency"
			}
			what = inc.origin + " (" + ann["origin_kind"] + ")"
		}
		how := "failing on its own (its own calls are healthy)"
		switch {
		case inc.callerSide:
			ann["cause"] = "caller-side slowness"
			how = "slow on its own side: its calls to dependencies that answer as fast as ever got slow, and the time its requests spend in its own code grew"
		case !inc.failing:
			ann["cause"] = "latency"
			how = "slow on its own (its own calls are healthy)"
		}
		if !inc.failing {
			ann["normal_p90"] = ms(worst.ev.lat.baseP90)
			ann["recent_p90"] = ms(worst.ev.lat.recentP90)
		}
		if inc.spread {
			ann["summary"] = fmt.Sprintf("Failure starting at %s is spreading to %s", what, strings.Join(affected, ", "))
			if !inc.failing {
				ann["summary"] = fmt.Sprintf("Slowdown starting at %s is spreading to %s", what, strings.Join(affected, ", "))
			}
			ann["description"] = fmt.Sprintf("%s is %s and it propagates up the call graph through %s to %s.",
				what, how, strings.Join(callers, ", "), strings.Join(affected, ", "))
			labels := map[string]string{"alertname": "CascadingFailure", "severity": "critical",
				"origin_service": inc.origin, "cascade_id": CascadeID(inc.origin)}
			e.offer(candidate{labels: labels, annotations: ann, forDur: cfg.For, start: !covered[inc.origin], keep: true, trace: inc.trace}, now, out)
		} else {
			ann["summary"] = fmt.Sprintf("%s is failing, but its callers (%s) contain it", what, strings.Join(callers, ", "))
			ann["description"] = fmt.Sprintf("Calls to %s fail, but fallbacks or circuit breakers in %s keep the failure from spreading.", what, strings.Join(callers, ", "))
			// Give a spreading failure the time it needs to show in the callers
			// before calling it contained.
			labels := map[string]string{"alertname": "IsolatedFailure", "severity": "warning", "origin_service": inc.origin}
			old := now.Sub(e.incidentSince[inc.origin]) >= 2*cfg.For
			e.offer(candidate{labels: labels, annotations: ann, forDur: 2 * cfg.For, start: old && !covered[inc.origin], keep: true, trace: inc.trace}, now, out)
		}
	}
	// An active cascade whose graph is resolving keeps its alert while any of
	// its edges still holds (hysteresis); the candidate above is only offered
	// while the incident is present.
}

func (e *Engine) serviceAlerts(now time.Time, blast map[string]string, out *[]Transition) {
	cfg := e.cfg
	for _, name := range slices.Sorted(maps.Keys(e.services)) {
		s := e.services[name]
		if l := &s.logs.ev; l.burst || l.keep {
			ann := map[string]string{
				"error_logs_5m": strconv.FormatUint(uint64(l.count5), 10),
				"expected_5m":   strconv.FormatFloat(l.expected, 'f', 1, 64),
				"summary":       fmt.Sprintf("%s logs errors at %d per 5 minutes (expected %.0f)", name, l.count5, l.expected),
			}
			if l.newTemplate != "" {
				ann["new_template"] = l.newTemplate
			}
			if l.topTemplate != "" {
				ann["top_template"] = l.topTemplate
			}
			if t := traceHex(s.logs.trace); t != "" {
				ann["example_trace_id"] = t
			}
			labels, id := blastLabels(map[string]string{"alertname": "ErrorLogBurst", "severity": "warning", "service": name}, blast[name])
			e.offer(candidate{labels: labels, annotations: ann, forDur: cfg.ErrorLogBurst.For, start: l.burst, keep: l.keep, trace: s.logs.trace, identity: id}, now, out)
		}
		seen := map[string]bool{}
		for _, h := range s.sat.ev {
			if seen[h.resource] {
				continue
			}
			seen[h.resource] = true
			ann := map[string]string{
				"instance":    h.instance,
				"utilization": pct(h.value),
				"summary":     fmt.Sprintf("%s: %s near its limit on %s (%s)", name, h.resource, h.instance, pct(h.value)),
			}
			if h.resource == "active_requests" {
				ann["utilization"] = ""
				ann["active_requests"] = strconv.FormatFloat(h.value, 'f', 0, 64)
				ann["summary"] = fmt.Sprintf("%s: active requests on %s doubled to %.0f while throughput stayed flat", name, h.instance, h.value)
			}
			if h.waiters > 0 {
				ann["waiters"] = strconv.FormatFloat(h.waiters, 'f', 0, 64)
			}
			forDur := cfg.Saturation.For
			if h.rise > 0 {
				forDur = 0
				ann["trend"] = "+" + pct(h.rise) + " in 40s"
				ann["summary"] = fmt.Sprintf("%s: %s on %s filling up while traffic stays flat: %s, up %s in 40s", name, h.resource, h.instance, pct(h.value), pct(h.rise))
			}
			labels := map[string]string{"alertname": "Saturation", "severity": "warning", "service": name, "resource": h.resource}
			e.offer(candidate{labels: labels, annotations: ann, forDur: forDur, start: true}, now, out)
		}
		for i := range s.slos {
			slo := &s.slos[i]
			for _, h := range slo.ev {
				ann := map[string]string{
					"burn_rate":       strconv.FormatFloat(h.burnLong, 'f', 1, 64),
					"burn_rate_short": strconv.FormatFloat(h.burnShort, 'f', 1, 64),
					"objective":       strconv.FormatFloat(100*slo.cfg.Objective, 'f', -1, 64) + "%",
					"summary":         fmt.Sprintf("%s SLO %s burns its error budget at %.1fx over %s", name, slo.cfg.Name, h.burnLong, h.window),
				}
				labels, id := blastLabels(map[string]string{"alertname": "ErrorBudgetBurn", "severity": h.severity, "service": name, "slo": slo.cfg.Name, "window": h.window}, blast[name])
				e.offer(candidate{labels: labels, annotations: ann, start: true, trace: s.errTrace, identity: id}, now, out)
			}
		}
	}
}

// Names returns the directory the engine resolves callee names with, as an
// immutable copy for the flagged set (rebuilt only after a change).
func (e *Engine) Names() *redflag.Names { return e.dir.snapshotNames(e.services) }

// Flagged lists what active alerts point at, for alert-driven sampling: the
// caller -> callee edges of symptom alerts and incidents, the origins of
// incidents, and the services that service-level alerts (error logs,
// saturation, SLO burn) are about. A symptom on an edge flags that edge,
// not its caller's every request.
func (e *Engine) Flagged() (edges [][2]string, services []string) {
	svc := map[string]bool{}
	for _, ed := range e.edges {
		if ed.flagged {
			edges = append(edges, [2]string{ed.caller, ed.callee})
		}
	}
	for _, a := range e.alerts {
		if v := a.Labels["origin_service"]; v != "" {
			svc[v] = true
		}
		if v := a.Labels["service"]; v != "" && a.Labels["callee"] == "" {
			svc[v] = true
		}
	}
	sort.Slice(edges, func(i, j int) bool { return edges[i][0]+"\x00"+edges[i][1] < edges[j][0]+"\x00"+edges[j][1] })
	return edges, slices.Sorted(maps.Keys(svc))
}
