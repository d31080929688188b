package detect

import (
	"math"
	"sort"
	"strings"
	"time"
)

// satState holds the latest utilization signals of a service's instances.
type satState struct {
	// by resource, then instance
	res map[string]map[string]*satPoint
	ev  []satHit
	// active requests per instance: value now and five minutes of history.
	active map[string]*activeTrend
}

type satPoint struct {
	used, limit, waiters float64
	hasUsed, hasLimit    bool
	hasWaiters           bool
	timeouts             float64
	timeoutsGrew         bool
	hasTimeouts          bool
	at                   time.Time
	ratio                bool // used is already a 0..1 ratio
	usedAt               time.Time

	// The last trendLen utilization samples, one per new sample of used,
	// for the trend (a resource filling up).
	trendU     [trendLen]float64
	trendAt    [trendLen]time.Time
	trendN     int
	recordedAt time.Time // usedAt of the newest recorded sample
	// trendLevel is the utilization at the last trend hit (0: none), at
	// trendHitAt; the hit holds while the resource does not drain below it,
	// for at most trendHold.
	trendLevel, trendRise float64
	trendHitAt            time.Time
}

const (
	// trendLen samples within trendWindow make a trend: a sample every
	// 10 s over 40 s. Metrics exported less often never make one.
	trendLen    = 5
	trendWindow = 45 * time.Second
	// trendHold is how long a trend hit holds without a new climb.
	trendHold = 5 * time.Minute
)

// record keeps u, the utilization from the used sample of usedAt, once.
func (p *satPoint) record(u float64) {
	if !p.usedAt.After(p.recordedAt) {
		return
	}
	i := p.trendN % trendLen
	p.trendU[i], p.trendAt[i] = u, p.usedAt
	p.trendN++
	p.recordedAt = p.usedAt
}

// rising reports the rise of utilization over the samples of the last
// trendWindow when there are at least four, they never fell, and at least
// two of the steps between them went up: a climb, not one step to a new
// level.
func (p *satPoint) rising(now time.Time) (rise float64, ok bool) {
	n, ups := 0, 0
	lo, prev := math.Inf(1), math.Inf(-1)
	for k := max(p.trendN-trendLen, 0); k < p.trendN; k++ {
		i := k % trendLen
		if now.Sub(p.trendAt[i]) > trendWindow {
			continue
		}
		u := p.trendU[i]
		if u < prev {
			return 0, false
		}
		if n > 0 && u > prev {
			ups++
		}
		prev, lo = u, min(lo, u)
		n++
	}
	if n < 4 || ups < 2 {
		return 0, false
	}
	return prev - lo, true
}

// trend reports a pool filling up: a climb of at least TrendRise within
// trendWindow to TrendMin or more, while the service's inbound traffic
// stayed flat (a leak, not load); held while the pool does not drain, for
// at most trendHold after the last climb. Only rules that read waiters
// (connection pools) have trends: CPU and memory climb with load.
func (p *satPoint) trend(cfg SaturationConfig, rule *SaturationRule, now time.Time, u, inbound1, inboundPrev float64) (satHit, bool) {
	if cfg.TrendRise <= 0 || rule == nil || rule.Waiters == "" || u < cfg.TrendMin {
		p.trendLevel = 0
		return satHit{}, false
	}
	if inboundPrev > 0 && inbound1 <= 1.1*inboundPrev {
		if rise, ok := p.rising(now); ok && rise >= cfg.TrendRise {
			p.trendLevel, p.trendRise, p.trendHitAt = u, rise, now
			return satHit{value: u, rise: rise}, true
		}
	}
	if p.trendLevel > 0 && u >= p.trendLevel-0.1 && now.Sub(p.trendHitAt) <= trendHold {
		return satHit{value: u, rise: p.trendRise}, true
	}
	p.trendLevel = 0
	return satHit{}, false
}

type satHit struct {
	resource, instance string
	value              float64
	waiters            float64
	rise               float64 // > 0: a trend hit, the rise over the trend's 40 s
}

type activeTrend struct {
	epoch [NumBuckets]int64
	v     [NumBuckets]float64
	at    time.Time
}

func (st *satState) point(resource, instance string) *satPoint {
	if st.res == nil {
		st.res = map[string]map[string]*satPoint{}
	}
	m := st.res[resource]
	if m == nil {
		m = map[string]*satPoint{}
		st.res[resource] = m
	}
	p := m[instance]
	if p == nil {
		if len(m) >= 256 {
			return nil
		}
		p = &satPoint{}
		m[instance] = p
	}
	return p
}

func (st *satState) apply(now time.Time, s *MetricSample, rules []SaturationRule) {
	if s.Metric == "http.server.active_requests" {
		if st.active == nil {
			st.active = map[string]*activeTrend{}
		}
		a := st.active[s.Instance]
		if a == nil {
			if len(st.active) >= 256 {
				return
			}
			a = &activeTrend{}
			st.active[s.Instance] = a
		}
		bk := bucketOf(now)
		i := bk % NumBuckets
		if a.epoch[i] != bk {
			a.epoch[i], a.v[i] = bk, 0
		}
		a.v[i] += s.Value // summed over the data points of one instance
		a.at = now
		return
	}
	for _, r := range rules {
		var role int
		switch s.Metric {
		case r.Metric:
			role = 1
		case r.Limit:
			role = 2
		case r.Waiters:
			role = 3
		case r.Timeouts:
			role = 4
		default:
			continue
		}
		if role == 1 && !attrsMatch(s.Attrs, r.Attributes) {
			continue
		}
		p := st.point(r.Resource+"\x00"+r.Metric, s.Instance+groupKey(s.Attrs, r.Attributes))
		if p == nil {
			return
		}
		p.at = now
		switch role {
		case 1:
			p.used, p.hasUsed, p.ratio, p.usedAt = s.Value, true, r.Limit == "", now
		case 2:
			p.limit, p.hasLimit = s.Value, true
		case 3:
			p.waiters, p.hasWaiters = s.Value, true
		case 4:
			p.timeoutsGrew = p.hasTimeouts && s.Value > p.timeouts
			p.timeouts, p.hasTimeouts = s.Value, true
		}
	}
}

// groupKey tells apart the points of one instance that describe different
// things (two connection pools): the values of the attributes the rule does
// not filter on.
func groupKey(attrs, filter map[string]string) string {
	if len(attrs) == 0 {
		return ""
	}
	keys := make([]string, 0, len(attrs))
	for k := range attrs {
		if _, f := filter[k]; !f {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteByte('|')
		b.WriteString(attrs[k])
	}
	return b.String()
}

func attrsMatch(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// evaluate finds the saturated resources: utilization at or above threshold
// in a fresh sample (and requests waiting, where the rule reads waiters), and
// active requests that doubled in five minutes while throughput stayed flat.
func (st *satState) evaluate(cfg SaturationConfig, now time.Time, bk int64, inbound1, inboundPrev float64) {
	st.ev = st.ev[:0]
	const fresh = 2 * time.Minute
	for key, m := range st.res {
		resource := key[:indexNul(key)]
		rule := ruleFor(cfg.Rules, key)
		for inst, p := range m {
			inst, _, _ = strings.Cut(inst, "|")
			if now.Sub(p.at) > fresh || !p.hasUsed {
				p.trendLevel = 0
				continue
			}
			u := p.used
			if !p.ratio {
				if !p.hasLimit || p.limit <= 0 {
					continue
				}
				u = p.used / p.limit
			}
			p.record(u)
			full := u >= cfg.Threshold
			if full && rule != nil && rule.Waiters != "" && !(p.hasWaiters && p.waiters > 0) && !p.timeoutsGrew {
				full = false // at the limit, but nobody waits for it
			}
			if !full {
				if h, ok := p.trend(cfg, rule, now, u, inbound1, inboundPrev); ok {
					h.resource, h.instance = resource, inst
					st.ev = append(st.ev, h)
				}
				continue
			}
			st.ev = append(st.ev, satHit{resource: resource, instance: inst, value: u, waiters: p.waiters})
		}
	}
	sort.Slice(st.ev, func(i, j int) bool {
		if st.ev[i].resource != st.ev[j].resource {
			return st.ev[i].resource < st.ev[j].resource
		}
		return st.ev[i].value > st.ev[j].value || st.ev[i].value == st.ev[j].value && st.ev[i].instance < st.ev[j].instance
	})
	for inst, a := range st.active {
		if now.Sub(a.at) > fresh {
			continue
		}
		cur := latest(a, bk, 2)
		old := latest(a, bk-NumBuckets+3, 3)
		if old > 0 && cur >= 2*old && cur >= 10 && inbound1 <= 1.1*inboundPrev {
			st.ev = append(st.ev, satHit{resource: "active_requests", instance: inst, value: cur})
		}
	}
}

func latest(a *activeTrend, bk int64, k int) float64 {
	for b := bk; b > bk-int64(k); b-- {
		i := b % NumBuckets
		if b >= 0 && a.epoch[i] == b {
			return a.v[i]
		}
	}
	return 0
}

func indexNul(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return i
		}
	}
	return len(s)
}

func ruleFor(rules []SaturationRule, key string) *SaturationRule {
	for i := range rules {
		if rules[i].Resource+"\x00"+rules[i].Metric == key {
			return &rules[i]
		}
	}
	return nil
}
