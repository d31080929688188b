package edges

import (
	"hash/maphash"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/vigilhq/vigil/connectors/redflagconnector/internal/detect"
	"github.com/vigilhq/vigil/internal/redflag"
)

// Mesh turns a service mesh's request metrics into the same edge and service
// observations spans give, for services whose only per-call telemetry is
// their sidecars':
//
//   - Istio's standard metrics (istio_requests_total and the
//     istio_request_duration_milliseconds histogram, as Envoy exposes them on
//     :15020/stats/prometheus): a client-side report (reporter="source") is a
//     call on the edge source -> destination; a server-side one
//     (reporter="destination", or "waypoint" in ambient mode) is a request the
//     destination served, and also the edge's call when no client-side proxy
//     reports that pair (a caller outside the mesh);
//   - Linkerd's proxy metrics (response_total and the response_latency_ms
//     histogram): direction="outbound" is a call of the proxy's workload to
//     dst_deployment (or dst_service), "inbound" a request it served.
//
// Counters become deltas per series across scrapes: a counter that went down
// restarted (a sidecar restart) and counts from zero; a series that appears on
// a target already scraped counts whole (Envoy creates a series at its first
// request, so a first 503 is a new series); a target's first scrape is only a
// baseline. Response flags give the failure class: UO (circuit breaker open),
// UT (route timeout), UF/UH/UC/UR/LR/NC (connection failure, no healthy
// upstream), RL (rate limited), DC (the caller went away: cancelled).
type Mesh struct {
	mu        sync.Mutex
	seed      maphash.Seed
	maxSeries int
	series    map[uint64]*meshSeries
	targets   map[uint64]*meshTarget // scraped targets
	clientRep map[[2]string]int64    // caller/callee pairs a client-side proxy reported, last seen
	swept     int64
	stats     MeshStats
}

// MeshStats counts what the mesh converter saw.
type MeshStats struct {
	Points  uint64 // mesh data points read
	Resets  uint64 // counters that went down (a proxy restart)
	Dropped uint64 // points of new series refused at the series cap
	Series  int    // series tracked now
}

// meshTarget is what is known of a scrape target's scrapes: the time of its
// latest scrape's points and of the one before (zero until there was one).
type meshTarget struct {
	seen      int64 // unix s
	cur, prev pcommon.Timestamp
	// known: scraped before the batch being read; refused: a series of it
	// was refused at the cap, so one without a start time may be an old one
	// let in again.
	known, refused bool
}

// scraped notes a point's timestamp: a later one starts a new scrape.
func (t *meshTarget) scraped(ts pcommon.Timestamp) {
	if ts > t.cur {
		t.prev, t.cur = t.cur, ts
	}
}

// newSince reports whether a series first seen now started after the
// target's previous scrape, so all it counted is new: Envoy creates a series
// at its first request (a first 503 is a new series). A series that only
// looks new (the target's first scrape, split across batches; a series let in
// again under the cap) started before, and is a baseline. Without a start
// time (the prometheus receiver sets one only from a _created series, which
// Envoy and Linkerd do not expose), a series is new when the target was
// scraped before this batch and never had a series refused at the cap.
func (t *meshTarget) newSince(start pcommon.Timestamp) bool {
	if !t.known || t.prev == 0 {
		return false
	}
	if start == 0 {
		return !t.refused
	}
	return start > t.prev
}

type meshSeries struct {
	seen    int64 // unix s
	start   pcommon.Timestamp
	value   float64  // a counter's last value
	count   uint64   // a histogram's last count
	sum     float64  // ... sum
	buckets []uint64 // ... bucket counts
}

// meshStale is how long a series or target unseen is kept.
const meshStale = 10 * 60 // seconds

// NewMesh returns a converter tracking at most maxSeries series.
func NewMesh(maxSeries int) *Mesh {
	return &Mesh{seed: maphash.MakeSeed(), maxSeries: max(maxSeries, 1),
		series: map[uint64]*meshSeries{}, targets: map[uint64]*meshTarget{}, clientRep: map[[2]string]int64{}}
}

// Stats returns a copy of the counters.
func (m *Mesh) Stats() MeshStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.stats
	s.Series = len(m.series)
	return s
}

type meshFamily uint8

const (
	notMesh meshFamily = iota
	istioCount
	istioDuration
	linkerdCount
	linkerdLatency
)

// family tells a mesh metric by name, as scraped (istio_requests_total) or
// with the Prometheus translator's suffixes removed (istio_requests).
func family(name string) meshFamily {
	switch name {
	case "istio_requests_total", "istio_requests":
		return istioCount
	case "istio_request_duration_milliseconds", "istio_request_duration":
		return istioDuration
	case "response_total", "response":
		return linkerdCount
	case "response_latency_ms", "response_latency":
		return linkerdLatency
	}
	return notMesh
}

// meshCall is what one series' labels say about its calls.
type meshCall struct {
	caller, callee string
	callerNS       string
	calleeNS       string
	client         bool // reported by the caller's proxy
	outcome        detect.Outcome
}

// Metrics reads the mesh metrics in md into b and reports whether there were
// any. now is the time of processing (it ages series out).
func (m *Mesh) Metrics(md pmetric.Metrics, now time.Time, b *detect.Batch) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	sec := now.Unix()
	found := false
	var bi batchIndex
	nsSeen := map[string]bool{}
	for _, rm := range md.ResourceMetrics().All() {
		res := rm.Resource().Attributes()
		target := m.mapHash(res, 0)
		tg := m.targets[target]
		if tg == nil {
			tg = &meshTarget{}
		} else {
			tg.known = true
		}
		for _, sm := range rm.ScopeMetrics().All() {
			for _, mt := range sm.Metrics().All() {
				fam := family(mt.Name())
				if fam == notMesh {
					continue
				}
				nameHash := maphash.String(m.seed, mt.Name())
				switch mt.Type() {
				case pmetric.MetricTypeSum:
					if fam != istioCount && fam != linkerdCount {
						continue
					}
					delta := mt.Sum().AggregationTemporality() == pmetric.AggregationTemporalityDelta
					for _, dp := range mt.Sum().DataPoints().All() {
						v := dp.DoubleValue()
						if dp.ValueType() == pmetric.NumberDataPointValueTypeInt {
							v = float64(dp.IntValue())
						}
						// A stale marker (the series left the target) or a
						// value no counter has says nothing about calls.
						if dp.Flags().NoRecordedValue() || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
							continue
						}
						c, ok := parseMeshCall(fam, dp.Attributes(), res)
						if !ok {
							continue
						}
						found = true
						m.stats.Points++
						n := v
						if !delta {
							tg.scraped(dp.Timestamp())
							n = m.counterDelta(target^nameHash, dp.Attributes(), dp.StartTimestamp(), v, tg, sec)
						}
						if n <= 0 {
							continue
						}
						m.addCount(b, &bi, nsSeen, &c, uint32(min(math.Round(n), math.MaxUint32)), sec)
					}
				case pmetric.MetricTypeHistogram:
					if fam != istioDuration && fam != linkerdLatency {
						continue
					}
					delta := mt.Histogram().AggregationTemporality() == pmetric.AggregationTemporalityDelta
					for _, dp := range mt.Histogram().DataPoints().All() {
						if dp.Flags().NoRecordedValue() || dp.BucketCounts().Len() == 0 || math.IsNaN(dp.Sum()) {
							continue
						}
						c, ok := parseMeshCall(fam, dp.Attributes(), res)
						if !ok {
							continue
						}
						found = true
						m.stats.Points++
						var h detect.Hist
						var sum float64
						var n uint64
						if delta {
							n, sum = histInto(&h, dp.ExplicitBounds().AsRaw(), dp.BucketCounts().AsRaw(), nil), dp.Sum()
						} else {
							tg.scraped(dp.Timestamp())
							n, sum = m.histDelta(target^nameHash, dp, tg, sec, &h)
						}
						if n == 0 {
							continue
						}
						m.addHist(b, &bi, &c, &h, n, sum, sec)
					}
				}
			}
		}
		// Only targets that had mesh points are kept, and no more of them
		// than series.
		if tg.cur != 0 && (m.targets[target] != nil || len(m.targets) < m.maxSeries) {
			tg.seen = sec
			m.targets[target] = tg
		}
	}
	if sec-m.swept >= 60 {
		m.sweep(sec)
	}
	return found
}

// parseMeshCall reads a series' labels; false when they name no call.
func parseMeshCall(fam meshFamily, attrs, res pcommon.Map) (meshCall, bool) {
	var c meshCall
	f := facts{httpStatus: -1, grpcCode: -1}
	var flags, classification, direction, errLabel string
	var src, dst [3]string // Istio: canonical service, workload, app or service name
	var dstNS, dstSvcNS string
	for k, v := range attrs.All() {
		switch k {
		case "reporter":
			c.client = v.Str() == "source"
		case "source_canonical_service":
			src[0] = v.Str()
		case "source_workload":
			src[1] = v.Str()
		case "source_app":
			src[2] = v.Str()
		case "source_workload_namespace":
			c.callerNS = v.Str()
		case "destination_canonical_service":
			dst[0] = v.Str()
		case "destination_workload":
			dst[1] = v.Str()
		case "destination_service_name":
			dst[2] = v.Str()
		case "destination_workload_namespace":
			dstNS = v.Str()
		case "destination_service_namespace":
			dstSvcNS = v.Str()
		case "response_code", "status_code":
			f.httpStatus = intValue(v)
		case "grpc_response_status", "grpc_status":
			f.grpcCode = grpcCodeValue(v)
		case "response_flags":
			flags = v.Str()
		// Linkerd
		case "direction":
			direction = v.Str()
		case "classification":
			classification = v.Str()
		case "error":
			errLabel = v.Str()
		case "deployment", "statefulset", "daemonset", "job", "cronjob", "replicaset", "rollout":
			if src[1] == "" {
				src[1] = v.Str()
			}
		case "namespace":
			if fam == linkerdCount || fam == linkerdLatency {
				c.callerNS = v.Str()
			}
		case "dst_deployment", "dst_statefulset", "dst_daemonset":
			if dst[1] == "" {
				dst[1] = v.Str()
			}
		case "dst_service":
			dst[2] = v.Str()
		case "dst_namespace":
			dstNS = v.Str()
		}
	}
	switch fam {
	case istioCount, istioDuration:
		c.caller, c.callee = known(src[:]), known(dst[:])
		c.calleeNS = dstNS
		if c.calleeNS == "" {
			c.calleeNS = dstSvcNS
		}
	case linkerdCount, linkerdLatency:
		if direction != "inbound" && direction != "outbound" {
			return c, false // a response_total that is not Linkerd's
		}
		own := src[1]
		if own == "" {
			own = firstAttr(res, "k8s.deployment.name", "k8s.statefulset.name", "k8s.daemonset.name")
		}
		if direction == "outbound" {
			c.client = true
			c.caller, c.callee, c.calleeNS = own, known(dst[:]), dstNS
		} else {
			// Inbound: a request the proxy's own workload served. Linkerd
			// names the caller only by its TLS identity.
			c.callee, c.calleeNS, c.callerNS = own, c.callerNS, ""
		}
	}
	if c.callee == "" {
		return c, false
	}
	c.outcome = meshOutcome(&f, flags, classification, errLabel)
	return c, true
}

// known is the first name that is set and not Istio's "unknown".
func known(names []string) string {
	for _, n := range names {
		if n != "" && n != "unknown" {
			return n
		}
	}
	return ""
}

// meshOutcome classifies a series' calls from their code, Envoy response
// flags, or Linkerd classification.
func meshOutcome(f *facts, flags, classification, errLabel string) detect.Outcome {
	if f.httpStatus == 0 {
		f.httpStatus = -1 // Envoy's 0: no response was sent; the flags say why
	}
	if f.grpcCode >= 0 && f.httpStatus == 200 && f.grpcCode != 0 {
		f.httpStatus = -1 // gRPC's status travels in a 200
	}
	f.errorType = errLabel
	o := f.outcome(0, "")
	for fl := range strings.SplitSeq(flags, ",") {
		switch fl {
		case "DC":
			if !o.Failed {
				return detect.Outcome{Cancelled: true}
			}
		case "DR": // the caller reset the stream
			if !o.Failed {
				return detect.Outcome{Cancelled: true}
			}
		case "UO", "UH":
			// Istio's "circuit breaking": the connection pool's limits (UO)
			// and outlier detection ejecting every host (UH).
			o = detect.Outcome{Failed: true, Class: detect.ClassCircuitOpen}
		case "UT", "SI":
			o = detect.Outcome{Failed: true, Class: detect.ClassTimeout, OwnTimeout: fl == "UT"}
		case "UF", "UC", "UR", "LR", "NC", "URX", "DF", "LH":
			if o.Class != detect.ClassTimeout && o.Class != detect.ClassCircuitOpen {
				o = detect.Outcome{Failed: true, Class: detect.ClassConnect}
			}
		case "RL", "RLSE":
			o = detect.Outcome{Failed: true, Class: detect.ClassOverload}
		}
	}
	switch classification {
	case "failure":
		if !o.Failed && !o.Cancelled {
			o = detect.Outcome{Failed: true, Class: o.Class}
		}
	case "success":
		if o.Failed && f.httpStatus < 500 && f.grpcCode <= 0 {
			o = detect.Outcome{}
		}
	}
	return o
}

// counterDelta returns how much a cumulative counter grew since its last
// scrape: all of it when it went down (restarted) or is new on a known
// target, nothing on a target's first scrape.
func (m *Mesh) counterDelta(base uint64, attrs pcommon.Map, start pcommon.Timestamp, v float64, tg *meshTarget, sec int64) float64 {
	k := m.mapHash(attrs, base)
	s := m.series[k]
	if s == nil {
		if !m.admit(k, sec) {
			tg.refused = true
			return 0
		}
		m.series[k] = &meshSeries{seen: sec, start: start, value: v}
		if tg.newSince(start) {
			return v
		}
		return 0
	}
	s.seen = sec
	prev := s.value
	s.value = v
	if v < prev || (start != 0 && s.start != 0 && start > s.start) {
		m.stats.Resets++
		s.start = start
		return v
	}
	s.start = start
	return v - prev
}

// histDelta puts a cumulative histogram's growth since its last scrape into
// h and returns its count and sum, with counterDelta's rules.
func (m *Mesh) histDelta(base uint64, dp pmetric.HistogramDataPoint, tg *meshTarget, sec int64, h *detect.Hist) (uint64, float64) {
	k := m.mapHash(dp.Attributes(), base)
	counts := dp.BucketCounts().AsRaw()
	s := m.series[k]
	if s == nil {
		if !m.admit(k, sec) {
			tg.refused = true
			return 0, 0
		}
		m.series[k] = &meshSeries{seen: sec, start: dp.StartTimestamp(), count: dp.Count(), sum: dp.Sum(), buckets: counts}
		if tg.newSince(dp.StartTimestamp()) {
			return histInto(h, dp.ExplicitBounds().AsRaw(), counts, nil), dp.Sum()
		}
		return 0, 0
	}
	s.seen = sec
	reset := dp.Count() < s.count || len(counts) != len(s.buckets) ||
		(dp.StartTimestamp() != 0 && s.start != 0 && dp.StartTimestamp() > s.start)
	var prev []uint64
	sum := dp.Sum()
	if !reset {
		for i, c := range counts {
			if c < s.buckets[i] {
				reset = true
				break
			}
		}
	}
	if reset {
		m.stats.Resets++
	} else {
		prev, sum = s.buckets, dp.Sum()-s.sum
	}
	n := histInto(h, dp.ExplicitBounds().AsRaw(), counts, prev)
	s.start, s.count, s.sum, s.buckets = dp.StartTimestamp(), dp.Count(), dp.Sum(), counts
	return n, sum
}

// histInto adds the calls of explicit-bound buckets (less prev, when set) to
// h, each bucket's calls at the most its lower bound proves: in the highest
// detector bin that ends at or below it (the first bucket's in bin 0). A
// mesh's buckets are coarse (Istio's 25-50 ms is one), and the detectors
// count the calls at or past a bar; a call that moved from 24 to 26 ms is
// not one that took 40, and only a bucket's lower bound is known of its
// calls. So the latency a mesh reports is judged by what it proves, never
// more: p50 and p90 of mesh series read low by up to a bucket.
func histInto(h *detect.Hist, bounds []float64, counts, prev []uint64) uint64 {
	var n uint64
	for i, c := range counts {
		if prev != nil {
			c -= prev[i]
		}
		if c == 0 {
			continue
		}
		bin := 0
		if i > 0 && i-1 < len(bounds) && bounds[i-1] > 0 {
			lo := bounds[i-1]
			if bin = detect.BinOf(lo); bin > 0 && detect.BinUpperMs(bin) > lo {
				bin--
			}
		}
		h[bin] += uint32(min(c, math.MaxUint32))
		n += c
	}
	return n
}

func (m *Mesh) admit(k uint64, sec int64) bool {
	if len(m.series) < m.maxSeries {
		return true
	}
	if sec != m.swept { // at most once a second, not for every series refused
		m.sweep(sec)
		if len(m.series) < m.maxSeries {
			return true
		}
	}
	m.stats.Dropped++
	return false
}

func (m *Mesh) sweep(sec int64) {
	m.swept = sec
	for k, s := range m.series {
		if sec-s.seen > meshStale {
			delete(m.series, k)
		}
	}
	for k, t := range m.targets {
		if sec-t.seen > meshStale {
			delete(m.targets, k)
		}
	}
	for k, t := range m.clientRep {
		if sec-t > meshStale {
			delete(m.clientRep, k)
		}
	}
}

// clientSeen is how long a pair's client-side reports make its server-side
// ones count only for the callee's own requests.
const clientSeen = 120 // seconds

// addCount adds n calls of c: to the edge when the caller's proxy reported
// them (or none reports the pair), to the callee's requests when its own
// proxy did.
func (m *Mesh) addCount(b *detect.Batch, bi *batchIndex, nsSeen map[string]bool, c *meshCall, n uint32, sec int64) {
	addNS(b, nsSeen, c.caller, c.callerNS)
	addNS(b, nsSeen, c.callee, c.calleeNS)
	if d := m.edgeFor(b, bi, c, sec); d != nil {
		addCalls(&d.Counts, c.outcome, n)
	}
	if !c.client {
		sd := bi.service(b, c.callee)
		sd.Mesh = true
		addCalls(&sd.Counts, c.outcome, n)
	}
}

func (m *Mesh) addHist(b *detect.Batch, bi *batchIndex, c *meshCall, h *detect.Hist, n uint64, sum float64, sec int64) {
	if c.outcome.Cancelled && c.client {
		// An abandoned call's duration is the caller's patience. The
		// callee's proxy still saw how long the callee took (a caller's
		// timeout shows there as DC): that stays in its requests' time.
		return
	}
	add := func(cn *detect.Counts) {
		cn.Hist.Add(h)
		cn.DurMsSum += sum
		if c.outcome.OwnTimeout {
			cn.TimeoutMsSum += float32(sum)
			cn.TimeoutN += uint32(min(n, math.MaxUint32))
		}
	}
	if d := m.edgeFor(b, bi, c, sec); d != nil && !c.outcome.Cancelled {
		add(&d.Counts)
	}
	if !c.client {
		sd := bi.service(b, c.callee)
		sd.Mesh = true
		add(&sd.Counts)
	}
}

// edgeFor is the edge c's calls count on, nil when they count only for the
// callee (a server-side report of a pair a client-side proxy reports too, or
// one whose caller is not known).
func (m *Mesh) edgeFor(b *detect.Batch, bi *batchIndex, c *meshCall, sec int64) *detect.EdgeDelta {
	if c.caller == "" || c.caller == c.callee {
		return nil
	}
	pair := [2]string{c.caller, c.callee}
	if c.client {
		if t, ok := m.clientRep[pair]; !ok || t != sec {
			m.clientRep[[2]string{strings.Clone(c.caller), strings.Clone(c.callee)}] = sec
		}
	} else if t, ok := m.clientRep[pair]; ok && sec-t <= clientSeen {
		return nil
	}
	d := bi.edge(b, c.caller, c.callee)
	d.Kind, d.Mesh = redflag.KindService, true
	return d
}

func addCalls(cn *detect.Counts, o detect.Outcome, n uint32) {
	cn.Calls += n
	switch {
	case o.Cancelled:
		cn.Cancelled += n
	case o.Failed:
		cn.Errors += n
		cn.Class[o.Class] += n
	case o.Client4xx:
		cn.Client4xx += n
	}
}

func addNS(b *detect.Batch, seen map[string]bool, svc, ns string) {
	if svc == "" || ns == "" || ns == "unknown" || seen[svc] {
		return
	}
	seen[svc] = true
	b.Namespaces = append(b.Namespaces, detect.Namespace{Service: svc, Name: ns})
}

// mapHash hashes a map's pairs in any order, combined with base.
func (m *Mesh) mapHash(attrs pcommon.Map, base uint64) uint64 {
	h := base
	var mh maphash.Hash
	for k, v := range attrs.All() {
		mh.SetSeed(m.seed)
		mh.WriteString(k)
		mh.WriteByte(0)
		switch v.Type() {
		case pcommon.ValueTypeStr:
			mh.WriteString(v.Str())
		case pcommon.ValueTypeInt:
			mh.WriteString(strconv.FormatInt(v.Int(), 10))
		default:
			mh.WriteString(v.AsString())
		}
		h += mh.Sum64() * 0x9E3779B97F4A7C15
	}
	return h
}
