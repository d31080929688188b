package simulate

import (
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// rkind is the outcome of a request or of one call attempt.
type rkind uint8

const (
	rOK          rkind = iota
	rClient            // 4xx: result.code is 400 or 404
	rInternal          // a bug: 500 / INTERNAL
	rUnavailable       // 503 / UNAVAILABLE
	rOverload          // rejected, queue full: 503 / RESOURCE_EXHAUSTED (429 from an external API)
	rDepTimeout        // a dependency timed out: 504 / DEADLINE_EXCEEDED
	rDepFailed         // a dependency failed: 500 (502 at the entry) / UNKNOWN
	rPoolTimeout       // no database connection in time: 500 / UNKNOWN
	rExtError          // an external dependency answered with an error
	rTimeout           // client side: the attempt timed out
	rConnect           // client side: connection refused
	rBreaker           // client side: circuit breaker open
	rCancelled         // client side: the caller cancelled the call (a failed sibling)
)

type result struct {
	kind rkind
	code int16 // rClient: the HTTP status
}

func (r result) ok() bool     { return r.kind == rOK }
func (r result) failed() bool { return r.kind != rOK && r.kind != rClient && r.kind != rCancelled }

// propagate maps a failed call to the caller's own outcome.
func propagate(r result) result {
	switch r.kind {
	case rTimeout, rDepTimeout:
		return result{kind: rDepTimeout}
	case rUnavailable, rOverload, rBreaker, rConnect:
		return result{kind: rUnavailable}
	case rClient:
		return r
	}
	return result{kind: rDepFailed}
}

// retryable says whether a client retries after r (when attempts remain).
func (s *site) retryable(r result) bool {
	switch r.kind {
	case rConnect, rUnavailable:
		return true
	case rTimeout:
		return s.spec.RetryTimeouts
	case rOverload:
		// HTTP clients retry 503 and 429; gRPC retry policies usually only
		// name UNAVAILABLE.
		return s.svc == nil || s.svc.spec.Protocol == HTTP
	case rExtError:
		// A third-party API's 502, 503, 408 and 429 are worth another try.
		return s.ext != nil && s.ext.spec.Kind == ExternalHTTP && r.code != 500
	case rDepTimeout, rDepFailed:
		// 504 and 502 are retried by HTTP clients; gRPC UNKNOWN and
		// DEADLINE_EXCEEDED are not.
		return s.svc != nil && s.svc.spec.Protocol == HTTP && s.svc.httpStatus(r) != 500
	}
	return false
}

const (
	evArrival uint8 = iota
	evDeliver
	evCPUDone
	evResponse
	evTimeout
	evRetry
	evExtArrive
	evExtDone
	evPoolTimeout
	evMetrics
	evEffectOn
	evEffectOff
	evDeployStart
	evDeployReady
	evLagEnd
	evResume
)

// ref names one attempt of a call; it goes stale when the attempt resolves
// or the call is recycled, so late events for it are ignored.
type ref struct {
	c       *call
	gen     uint32
	attempt int32
}

func (r ref) live() bool {
	return r.c != nil && r.c.gen == r.gen && r.c.attempt == r.attempt && !r.c.done
}

type event struct {
	at   int64
	seq  uint64
	kind uint8
	n    int32
	ref  ref
	r    *request
	inst *instance
	aux  *instance
	ext  *external
	res  result
}

// eventHeap is a binary min-heap on (at, seq); seq makes ties deterministic.
type eventHeap []event

func (h eventHeap) less(i, j int) bool {
	return h[i].at < h[j].at || (h[i].at == h[j].at && h[i].seq < h[j].seq)
}

func (h *eventHeap) push(e event) {
	*h = append(*h, e)
	a := *h
	i := len(a) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !a.less(i, p) {
			break
		}
		a[i], a[p] = a[p], a[i]
		i = p
	}
}

func (h *eventHeap) pop() event {
	a := *h
	top := a[0]
	n := len(a) - 1
	a[0] = a[n]
	a[n] = event{}
	a = a[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && a.less(r, l) {
			m = r
		}
		if !a.less(m, i) {
			break
		}
		a[i], a[m] = a[m], a[i]
		i = m
	}
	*h = a
	return top
}

// ring is a FIFO on a growable circular buffer.
type ring[T any] struct {
	buf  []T
	head int
	n    int
}

func (q *ring[T]) len() int { return q.n }

func (q *ring[T]) push(v T) {
	if q.n == len(q.buf) {
		nb := make([]T, max(8, 2*len(q.buf)))
		for i := 0; i < q.n; i++ {
			nb[i] = q.buf[(q.head+i)%len(q.buf)]
		}
		q.buf, q.head = nb, 0
	}
	q.buf[(q.head+q.n)%len(q.buf)] = v
	q.n++
}

func (q *ring[T]) pop() T {
	var zero T
	v := q.buf[q.head]
	q.buf[q.head] = zero
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	return v
}

type service struct {
	spec      *Service
	ops       []*operation
	all       []*instance // live instances (ready, starting or draining)
	ready     []*instance // receiving new requests
	targets   []*instance // what callers route to: ready plus recently removed
	short     string      // "payments"
	fqdn      string      // "payments.shop.svc.cluster.local"
	rpcSvc    string      // "shop.PaymentsService"
	scope     string
	isEntry   bool
	failShare float64
	failKind  rkind
	slow      float64
	leak      float64 // leak effect: seconds until the pool is exhausted (0 = off)
	leakPool  string
	breakers  int // breaker-guarded call sites
	pools     []*external
	// starve is the median delay (ns) before a starved instance's
	// goroutines handle a response (CPU starvation; 0 = off).
	starve float64
	// linkDelay is added to every hop into and out of the service (its
	// network got slow; 0 = off).
	linkDelay int64
}

type operation struct {
	svc      *service
	spec     *Operation
	steps    [][]*site
	method   string // HTTP method
	route    string // HTTP route, "/products/{id}"
	spanName string
	rpcName  string
	cpu      float64 // median ns
	weight   float64
	idInPath bool
	metricIx int
}

type site struct {
	spec    Call
	caller  *service
	svc     *service
	op      *operation
	ext     *external
	bidx    int
	pidx    int
	addr    string
	port    int64
	url     string // url.full without the id
	dbOp    string
	dbTable string
	dbQuery string
	method  string
}

type external struct {
	spec  External
	busy  int
	queue ring[ref]
	slow  float64
	scope string
}

type instance struct {
	svc          *service
	slot         int
	id, pod      string
	node         string
	version      string
	ready        bool
	refusing     bool // removed by a rolling restart: callers that still route here are refused
	gone         bool
	started      int64
	warmUntil    int64
	busy         int
	queue        ring[*request]
	cpuSlots     int
	cpuSpeed     float64
	cpuBusy      int
	cpuQ         ring[*request]
	cpuNs        float64 // cumulative CPU consumed
	lastCPU      float64
	failShare    float64
	pools        []*pool
	breakers     []breaker
	series       []*series
	memNoise     float64
	resourceAttr [][2]string
	ip           string // the pod IP
}

type pool struct {
	ext      *external
	max      int
	used     int // checked out, leaked included
	leaked   int
	pending  int
	waiters  ring[ref]
	timeouts int64
	acquired int64
}

type request struct {
	trace  [16]byte
	span   [8]byte
	parent [8]byte
	inst   *instance
	op     *operation
	from   ref
	arrive int64
	start  int64
	phase  uint8
	step   int
	out    int
	res    result
	bad    int16
	cpu    float64 // compute needed (ns) for the queued segment
	id     int64
	calls  []*call // the current step's calls in flight
	next   *request
}

const (
	phasePre uint8 = iota
	phaseSteps
	phasePost
)

type call struct {
	gen       uint32
	attempt   int32
	r         *request
	site      *site
	span      [8]byte
	start     int64
	inst      *instance
	spanned   bool
	waiting   bool
	holdsConn bool
	done      bool
	next      *call
}

type breaker struct {
	open      bool
	half      bool
	trial     bool
	openUntil int64
	consec    int
	win       []bool
	wpos      int
	wn        int
	fails     int
}

func (b *breaker) allow(now int64) bool {
	if !b.open {
		return true
	}
	if now < b.openUntil {
		return false
	}
	if !b.half {
		b.half, b.trial = true, false
	}
	if b.trial {
		return false
	}
	b.trial = true
	return true
}

// record counts an outcome; it reports whether the breaker just opened.
func (b *breaker) record(spec *Breaker, ok bool, now int64) bool {
	if b.open {
		if !b.half || !b.trial {
			return false
		}
		b.trial = false
		if ok {
			*b = breaker{win: b.win}
			for i := range b.win {
				b.win[i] = false
			}
			return false
		}
		b.openUntil = now + int64(spec.Open)
		return false
	}
	if b.win == nil {
		b.win = make([]bool, spec.Window)
	}
	if b.wn == len(b.win) {
		if b.win[b.wpos] {
			b.fails--
		}
	} else {
		b.wn++
	}
	b.win[b.wpos] = !ok
	b.wpos = (b.wpos + 1) % len(b.win)
	if ok {
		b.consec = 0
	} else {
		b.fails++
		b.consec++
	}
	if b.consec >= spec.Consecutive || (b.wn == len(b.win) && float64(b.fails) >= spec.Ratio*float64(b.wn)) {
		b.open, b.half, b.trial = true, false, false
		b.openUntil = now + int64(spec.Open)
		return true
	}
	return false
}

// Sim is one simulation. It is not safe for concurrent use: one goroutine
// calls Advance; the Batch it returns belongs to the caller.
type Sim struct {
	cfg     Config
	topo    Topology
	truth   Truth
	rng     *rand.Rand
	start   int64
	now     int64
	seq     uint64
	events  eventHeap
	svcs    []*service
	byName  map[string]*service
	exts    map[string]*external
	insts   []*instance
	entry   *service
	effects []effect

	rate       float64 // nominal root rate, per ns
	rateMul    float64
	arrivalGen int32
	badShare   float64
	errScale   float64

	freeReq  *request
	freeCall *call
	inflight int
	podIPs   int64 // pod IPs handed out

	b     batch
	stats Stats
}

// Stats counts what a Sim has emitted so far.
type Stats struct {
	Roots, Spans, Logs, DataPoints int64
}

// Batch is the telemetry that completed in one Advance call. It belongs to
// the caller; the Sim keeps no reference to it.
type Batch struct {
	Traces  ptrace.Traces
	Logs    plog.Logs
	Metrics pmetric.Metrics
}

// New builds a simulation. Errors name the bad Config field and value.
func New(cfg Config) (*Sim, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	def := findScenario(cfg.Scenario)
	// Parameters and traffic draw from separate streams, so a scenario's
	// parameters do not depend on how long it runs.
	b := &build{
		p:        rand.New(rand.NewPCG(uint64(cfg.Seed), 0x5ce9a410)),
		cfg:      cfg,
		topo:     cfg.Topology,
		truth:    &Truth{Scenario: cfg.Scenario, Seed: cfg.Seed, Negative: def.info.Negative, Start: cfg.Start},
		rate:     1,
		errScale: 1,
	}
	def.build(b)
	if err := b.topo.validate(); err != nil {
		return nil, err
	}
	s := &Sim{
		cfg:      cfg,
		topo:     *b.topo,
		truth:    *b.truth,
		rng:      rand.New(rand.NewPCG(uint64(cfg.Seed), 0x7a11c0de)),
		start:    cfg.Start.UnixNano(),
		byName:   map[string]*service{},
		exts:     map[string]*external{},
		effects:  b.effects,
		rateMul:  1,
		errScale: b.errScale,
	}
	s.now = s.start
	s.truth.RootRate = cfg.RootRate * b.rate
	s.rate = s.truth.RootRate / 1e9
	s.build()
	for _, ir := range b.instFault {
		s.truth.Faults[ir.fault].Instance = s.byName[ir.service].all[ir.idx].id
	}
	for i, e := range s.effects {
		s.schedule(event{at: s.start + int64(e.at), kind: evEffectOn, n: int32(i)})
		if e.until > 0 {
			s.schedule(event{at: s.start + int64(e.until), kind: evEffectOff, n: int32(i)})
		}
	}
	s.scheduleArrival()
	s.schedule(event{at: s.start + int64(metricInterval), kind: evMetrics})
	return s, nil
}

const metricInterval = 10 * time.Second

func (s *Sim) build() {
	t := &s.topo
	for i := range t.Externals {
		e := &external{spec: t.Externals[i], slow: 1}
		s.exts[e.spec.Name] = e
	}
	for i := range t.Services {
		sp := &t.Services[i]
		svc := &service{spec: sp, short: sp.Name, fqdn: sp.Name + "." + t.Namespace + ".svc.cluster.local",
			rpcSvc: t.Namespace + "." + camel(sp.Name) + "Service", slow: 1, isEntry: sp.Name == t.Entry}
		svc.scope = scopeName(sp)
		s.svcs = append(s.svcs, svc)
		s.byName[sp.Name] = svc
		if svc.isEntry {
			s.entry = svc
		}
	}
	for _, svc := range s.svcs {
		for j := range svc.spec.Ops {
			ops := &svc.spec.Ops[j]
			op := &operation{svc: svc, spec: ops, cpu: float64(ops.CPU), weight: ops.Weight, metricIx: j}
			if svc.spec.Protocol == HTTP {
				op.method, op.route, _ = strings.Cut(ops.Name, " ")
				op.spanName = ops.Name
				op.idInPath = strings.Contains(op.route, "{id}")
			} else {
				op.rpcName = ops.Name
				op.spanName = svc.rpcSvc + "/" + ops.Name
			}
			svc.ops = append(svc.ops, op)
		}
	}
	for _, svc := range s.svcs {
		for j, op := range svc.ops {
			for _, stepSpec := range svc.spec.Ops[j].Steps {
				var step []*site
				for _, cs := range stepSpec {
					st := &site{spec: cs, caller: svc, bidx: -1, pidx: -1}
					if cs.Breaker != nil {
						st.bidx = svc.breakers
						svc.breakers++
					}
					if callee := s.byName[cs.Target]; callee != nil {
						st.svc = callee
						for _, o := range callee.ops {
							if o.spec.Name == cs.Op {
								st.op = o
							}
						}
						st.addr = callee.short
						if svc.spec.FQDN {
							st.addr = callee.fqdn
						}
						st.port = 8080
						if callee.spec.Protocol == HTTP {
							st.url = "http://" + st.addr + ":8080" + strings.Replace(st.op.route, "{id}", "", 1)
							st.method = st.op.method
						}
					} else {
						e := s.exts[cs.Target]
						st.ext = e
						st.addr, st.port = e.spec.Name, int64(e.spec.Port)
						switch e.spec.Kind {
						case ExternalHTTP:
							st.method, _, _ = strings.Cut(cs.Op, " ")
							_, path, _ := strings.Cut(cs.Op, " ")
							st.url = "https://" + e.spec.Name + path
						default:
							st.dbOp, st.dbTable, _ = strings.Cut(cs.Op, " ")
							st.dbQuery = dbQuery(e.spec.Kind, st.dbOp, st.dbTable)
						}
						if e.spec.Pool > 0 {
							st.pidx = -1
							for k, pe := range svc.pools {
								if pe == e {
									st.pidx = k
								}
							}
							if st.pidx < 0 {
								st.pidx = len(svc.pools)
								svc.pools = append(svc.pools, e)
							}
						}
					}
					step = append(step, st)
				}
				op.steps = append(op.steps, step)
			}
		}
	}
	for _, svc := range s.svcs {
		for i := 0; i < svc.spec.Instances; i++ {
			inst := s.newInstance(svc, svc.spec.Version)
			inst.ready = true
			svc.ready = append(svc.ready, inst)
			svc.targets = append(svc.targets, inst)
		}
	}
}

var nodes = []string{"node-a1", "node-b2", "node-c3", "node-d4"}

func (s *Sim) newInstance(svc *service, version string) *instance {
	cpu := svc.spec.CPU
	slots := int(math.Ceil(cpu))
	inst := &instance{
		svc: svc, slot: len(s.insts), version: version, started: s.now,
		cpuSlots: slots, cpuSpeed: cpu / float64(slots),
		node:     nodes[s.rng.IntN(len(nodes))],
		memNoise: s.rng.Float64(),
		breakers: make([]breaker, svc.breakers),
	}
	inst.id = uuid(s.rng)
	inst.pod = svc.spec.Name + "-" + randName(s.rng, 10) + "-" + randName(s.rng, 5)
	// Every pod gets a fresh IP, as a restart does on Kubernetes.
	s.podIPs++
	inst.ip = "10.42." + itoa(s.podIPs/250) + "." + itoa(s.podIPs%250+2)
	for _, e := range svc.pools {
		inst.pools = append(inst.pools, &pool{ext: e, max: e.spec.Pool})
	}
	inst.resourceAttr = [][2]string{
		{"service.name", svc.spec.Name},
		{"service.namespace", s.topo.Namespace},
		{"service.version", version},
		{"service.instance.id", inst.id},
		{"k8s.namespace.name", s.topo.Namespace},
		{"k8s.pod.name", inst.pod},
		{"k8s.deployment.name", svc.spec.Name},
		{"k8s.node.name", inst.node},
		{"telemetry.sdk.language", svc.spec.Language},
		{"telemetry.sdk.name", "opentelemetry"},
	}
	if svc.spec.PodIP {
		inst.resourceAttr = append(inst.resourceAttr, [2]string{"k8s.pod.ip", inst.ip})
	}
	svc.all = append(svc.all, inst)
	s.insts = append(s.insts, inst)
	return inst
}

// Now returns the virtual time: the end of the last Advance.
func (s *Sim) Now() time.Time { return time.Unix(0, s.now).UTC() }

// Truth returns the run's ground truth. It is fixed by New.
func (s *Sim) Truth() Truth { return s.truth }

// Stats returns what the Sim has emitted so far.
func (s *Sim) Stats() Stats { return s.stats }

// Advance simulates [Now, Now+d) and returns the spans, logs and metrics
// that completed in it. d <= 0 returns an empty batch.
func (s *Sim) Advance(d time.Duration) Batch {
	s.b.reset(len(s.insts))
	if d > 0 {
		end := s.now + int64(d)
		for len(s.events) > 0 && s.events[0].at < end {
			e := s.events.pop()
			s.now = e.at
			s.dispatch(&e)
		}
		s.now = end
	}
	out := Batch{Traces: s.b.traces, Logs: s.b.logs, Metrics: s.b.metrics}
	s.b.traces, s.b.logs, s.b.metrics = ptrace.Traces{}, plog.Logs{}, pmetric.Metrics{}
	return out
}

func (s *Sim) schedule(e event) {
	s.seq++
	e.seq = s.seq
	s.events.push(e)
}

func (s *Sim) dispatch(e *event) {
	switch e.kind {
	case evArrival:
		if e.n == s.arrivalGen {
			s.arrival()
		}
	case evDeliver:
		s.deliver(e.ref, e.inst)
	case evCPUDone:
		s.cpuDone(e.r)
	case evResume:
		s.resume(e.r)
	case evResponse:
		if e.ref.live() {
			// A starved caller handles the answer late: its client span
			// (and its request) runs on past the response.
			if st := e.ref.c.r.inst.svc.starve; st > 0 && e.n == 0 {
				s.schedule(event{at: s.now + int64(s.lognormal(st, 0.5)), kind: evResponse, ref: e.ref, res: e.res, n: 1})
				return
			}
			s.resolve(e.ref.c, e.res)
		}
	case evTimeout:
		if e.ref.live() {
			s.resolve(e.ref.c, result{kind: rTimeout})
		}
	case evRetry:
		if c := e.ref.c; c.gen == e.ref.gen && c.attempt == e.ref.attempt {
			s.startAttempt(c)
		}
	case evExtArrive:
		s.extArrive(e.ref, e.ext)
	case evExtDone:
		s.extDone(e.ref, e.ext, e.res)
	case evPoolTimeout:
		if c := e.ref.c; c.gen == e.ref.gen && c.attempt == e.ref.attempt && c.waiting {
			c.waiting = false
			p := c.r.inst.pools[c.site.pidx]
			p.pending--
			p.timeouts++
			s.resolve(c, result{kind: rPoolTimeout})
		}
	case evMetrics:
		s.emitMetrics()
		s.schedule(event{at: s.now + int64(metricInterval), kind: evMetrics})
	case evEffectOn:
		s.applyEffect(&s.effects[e.n], true)
	case evEffectOff:
		s.applyEffect(&s.effects[e.n], false)
	case evDeployStart:
		s.deployStart(e.inst)
	case evDeployReady:
		s.deployReady(e.inst, e.aux)
	case evLagEnd:
		svc := e.inst.svc
		svc.targets = remove(svc.targets, e.inst)
	}
}

// --- traffic ---------------------------------------------------------------

// diurnalAmp is the daily swing of the root rate around its mean.
const diurnalAmp = 0.2

func (s *Sim) maxRate() float64 { return s.rate * s.rateMul * (1 + diurnalAmp) }

func (s *Sim) scheduleArrival() {
	s.arrivalGen++
	s.schedule(event{at: s.now + s.expDelay(s.maxRate()), kind: evArrival, n: s.arrivalGen})
}

func (s *Sim) expDelay(ratePerNs float64) int64 {
	return int64(s.rng.ExpFloat64()/ratePerNs) + 1
}

func (s *Sim) arrival() {
	s.schedule(event{at: s.now + s.expDelay(s.maxRate()), kind: evArrival, n: s.arrivalGen})
	// Thinning: accept with rate(t)/maxRate for a non-homogeneous Poisson process.
	hour := float64(s.now%int64(24*time.Hour)) / float64(time.Hour)
	cur := 1 + diurnalAmp*math.Sin(2*math.Pi*(hour-9)/24)
	if s.rng.Float64()*(1+diurnalAmp) > cur {
		return
	}
	svc := s.entry
	if len(svc.targets) == 0 {
		return
	}
	x := s.rng.Float64() * s.entryWeight()
	op := svc.ops[len(svc.ops)-1]
	for _, o := range svc.ops {
		if x < o.weight {
			op = o
			break
		}
		x -= o.weight
	}
	r := s.newRequest()
	r.trace = s.traceID()
	r.span = s.spanID()
	r.op = op
	r.id = s.entityID()
	if s.badShare > 0 && s.rng.Float64() < s.badShare {
		r.bad = 400
		if op.idInPath && s.rng.Float64() < 0.7 {
			r.bad = 404
		}
	} else if op.idInPath && s.rng.Float64() < 0.004 {
		r.bad = 404 // a few unknown products in normal traffic
	}
	s.stats.Roots++
	inst := svc.targets[s.rng.IntN(len(svc.targets))]
	if inst.refusing {
		inst = svc.ready[s.rng.IntN(len(svc.ready))]
	}
	r.inst = inst
	r.arrive = s.now
	s.admit(r)
}

func (s *Sim) entryWeight() float64 {
	var w float64
	for _, o := range s.entry.ops {
		w += o.weight
	}
	return w
}

func (s *Sim) entityID() int64 { return 1000 + s.rng.Int64N(90000) }

// --- server side -----------------------------------------------------------

func (s *Sim) newRequest() *request {
	s.inflight++
	if r := s.freeReq; r != nil {
		s.freeReq = r.next
		*r = request{calls: r.calls[:0]}
		return r
	}
	return &request{}
}

func (s *Sim) freeRequest(r *request) {
	s.inflight--
	r.next = s.freeReq
	r.inst, r.op, r.from = nil, nil, ref{}
	s.freeReq = r
}

func (s *Sim) deliver(from ref, inst *instance) {
	if !from.live() {
		return // the caller gave up before the request arrived
	}
	c := from.c
	r := s.newRequest()
	r.trace = c.r.trace
	r.parent = c.span
	r.span = s.spanID()
	r.op = c.site.op
	r.from = from
	r.inst = inst
	r.arrive = s.now
	r.id = c.r.id
	if c.r.bad == 404 && r.op.idInPath {
		r.bad = 404
	}
	s.admit(r)
}

func (s *Sim) admit(r *request) {
	inst := r.inst
	switch {
	case inst.busy < inst.svc.spec.Workers:
		s.startWork(r)
	case inst.queue.len() < inst.svc.spec.Queue:
		inst.queue.push(r)
	default:
		// Load shedding: answer at once.
		r.start = s.now
		r.res = result{kind: rOverload}
		s.finish(r, false)
	}
}

func (s *Sim) startWork(r *request) {
	r.inst.busy++
	r.start = s.now
	r.phase = phasePre
	s.compute(r, 0.6)
}

// compute runs a share of the operation's CPU time on the instance's cores.
func (s *Sim) compute(r *request, share float64) {
	inst := r.inst
	need := share * s.lognormal(r.op.cpu, 0.5) * inst.svc.slow
	if inst.warmUntil > s.now {
		// Cold start: JIT, empty caches.
		need *= 1 + 2*float64(inst.warmUntil-s.now)/float64(30*time.Second)
	}
	r.cpu = need
	if inst.cpuBusy < inst.cpuSlots {
		s.runCPU(r)
		return
	}
	inst.cpuQ.push(r)
}

func (s *Sim) runCPU(r *request) {
	inst := r.inst
	inst.cpuBusy++
	inst.cpuNs += r.cpu
	s.schedule(event{at: s.now + int64(r.cpu/inst.cpuSpeed) + 1, kind: evCPUDone, r: r})
}

func (s *Sim) cpuDone(r *request) {
	inst := r.inst
	inst.cpuBusy--
	if inst.cpuQ.len() > 0 {
		s.runCPU(inst.cpuQ.pop())
	}
	if st := inst.svc.starve; st > 0 {
		// Starved of CPU: the request's goroutine runs again only after a
		// scheduling delay (a CFS quota exhausted, a noisy neighbour).
		s.schedule(event{at: s.now + int64(s.lognormal(st, 0.5)), kind: evResume, r: r})
		return
	}
	s.resume(r)
}

// resume goes on with a request after a compute segment.
func (s *Sim) resume(r *request) {
	switch r.phase {
	case phasePre:
		r.phase = phaseSteps
		if res, fail := s.ownFailure(r); fail {
			r.res = res
			s.finish(r, true)
			return
		}
		s.runStep(r, 0)
	case phasePost:
		if r.bad == 404 && r.res.ok() {
			r.res = result{kind: rClient, code: 404}
		}
		s.finish(r, true)
	}
}

// ownFailure decides whether the request fails in the service itself.
func (s *Sim) ownFailure(r *request) (result, bool) {
	svc, inst := r.inst.svc, r.inst
	if r.bad == 400 && svc.isEntry {
		return result{kind: rClient, code: 400}, true
	}
	if svc.failShare > 0 && s.rng.Float64() < svc.failShare {
		return result{kind: svc.failKind}, true
	}
	if inst.failShare > 0 {
		// Half of a bad instance's failures are refused connections (decided
		// by the caller); the rest are answered 503 here.
		half := inst.failShare / 2
		if s.rng.Float64() < half/(1-half) {
			return result{kind: rUnavailable}, true
		}
	}
	if s.rng.Float64() < svc.spec.ErrorRate*s.errScale {
		return result{kind: rInternal}, true
	}
	return result{}, false
}

func (s *Sim) runStep(r *request, i int) {
	steps := r.op.steps
	for ; i < len(steps); i++ {
		n := 0
		for _, st := range steps[i] {
			if st.spec.Prob > 0 && s.rng.Float64() >= st.spec.Prob {
				continue
			}
			c := s.newCall(r, st)
			r.out++
			n++
			r.calls = append(r.calls, c)
			s.startAttempt(c)
		}
		if n > 0 {
			r.step = i
			return
		}
	}
	r.phase = phasePost
	s.compute(r, 0.4)
}

func (s *Sim) stepDone(r *request) {
	if !r.res.ok() {
		s.finish(r, true)
		return
	}
	s.runStep(r, r.step+1)
}

// finish ends a request: its server span, logs and metrics, the response to
// its caller, and the next queued request on the freed worker.
func (s *Sim) finish(r *request, worked bool) {
	inst := r.inst
	s.emitServer(r)
	s.recordRequest(r)
	if r.from.c != nil {
		s.schedule(event{at: s.now + s.netLatency() + inst.svc.linkDelay, kind: evResponse, ref: r.from, res: r.res})
	}
	s.freeRequest(r)
	if worked {
		inst.busy--
		if inst.queue.len() > 0 {
			s.startWork(inst.queue.pop())
		}
	}
	if inst.refusing && !inst.gone && inst.busy == 0 && inst.queue.len() == 0 {
		inst.gone = true
		inst.svc.all = remove(inst.svc.all, inst)
	}
}

// --- client side -----------------------------------------------------------

func (s *Sim) newCall(r *request, st *site) *call {
	c := s.freeCall
	if c != nil {
		s.freeCall = c.next
		gen := c.gen
		*c = call{gen: gen}
	} else {
		c = &call{}
	}
	c.r, c.site, c.attempt = r, st, 1
	return c
}

func (s *Sim) freeCallObj(c *call) {
	c.gen++ // every outstanding ref to it goes stale
	c.r, c.site, c.inst = nil, nil, nil
	c.next = s.freeCall
	s.freeCall = c
}

func (c *call) ref() ref { return ref{c: c, gen: c.gen, attempt: c.attempt} }

func (s *Sim) startAttempt(c *call) {
	c.done, c.spanned, c.inst = false, false, nil
	st, inst := c.site, c.r.inst
	if st.bidx >= 0 && !inst.breakers[st.bidx].allow(s.now) {
		c.spanned, c.span, c.start = true, s.spanID(), s.now
		s.schedule(event{at: s.now + 20_000, kind: evResponse, ref: c.ref(), res: result{kind: rBreaker}})
		return
	}
	if st.pidx >= 0 {
		p := inst.pools[st.pidx]
		if p.used >= p.max {
			c.waiting = true
			p.waiters.push(c.ref())
			p.pending++
			s.schedule(event{at: s.now + int64(p.ext.spec.PoolTimeout), kind: evPoolTimeout, ref: c.ref()})
			return
		}
		s.acquire(c, p)
	}
	s.send(c)
}

func (s *Sim) acquire(c *call, p *pool) {
	p.used++
	p.acquired++
	c.holdsConn = true
	if svc := c.r.inst.svc; svc.leak > 0 && svc.leakPool == p.ext.spec.Name {
		// A connection leak: this query's connection is never returned.
		elapsed := float64(s.now-c.r.inst.started)/1e9 + 1
		perSec := float64(p.acquired) / elapsed
		if s.rng.Float64()*svc.leak*perSec < float64(p.max) {
			p.leaked++
			c.holdsConn = false
		}
	}
}

func (s *Sim) send(c *call) {
	st := c.site
	c.spanned, c.span, c.start = true, s.spanID(), s.now
	rf := c.ref()
	s.schedule(event{at: s.now + int64(st.spec.Timeout), kind: evTimeout, ref: rf})
	if st.ext != nil {
		lat := s.netLatency()
		if st.ext.spec.Kind == ExternalHTTP {
			lat = int64(s.lognormal(float64(20*time.Millisecond), 0.3))
		}
		s.schedule(event{at: s.now + lat, kind: evExtArrive, ref: rf, ext: st.ext})
		return
	}
	svc := st.svc
	if len(svc.targets) == 0 {
		s.schedule(event{at: s.now + 1_000_000, kind: evResponse, ref: rf, res: result{kind: rConnect}})
		return
	}
	inst := svc.targets[s.rng.IntN(len(svc.targets))]
	c.inst = inst
	if inst.refusing || (inst.failShare > 0 && s.rng.Float64() < inst.failShare/2) {
		s.schedule(event{at: s.now + 500_000 + s.rng.Int64N(1_000_000), kind: evResponse, ref: rf, res: result{kind: rConnect}})
		return
	}
	s.schedule(event{at: s.now + s.netLatency() + svc.linkDelay, kind: evDeliver, ref: rf, inst: inst})
}

// resolve ends the current attempt of c with res: client span, breaker,
// then a retry, or the call's final outcome.
func (s *Sim) resolve(c *call, res result) {
	c.done = true
	st, inst := c.site, c.r.inst
	if c.holdsConn {
		c.holdsConn = false
		s.release(inst.pools[st.pidx])
	}
	if c.spanned {
		s.emitClient(c, res)
	}
	if st.bidx >= 0 && res.kind != rBreaker {
		if inst.breakers[st.bidx].record(st.spec.Breaker, !res.failed(), s.now) {
			s.logBreakerOpen(c)
		}
	}
	if res.failed() && int(c.attempt) < st.spec.Attempts && st.retryable(res) {
		backoff := st.spec.Backoff << (c.attempt - 1)
		if backoff > st.spec.MaxBackoff || backoff <= 0 {
			backoff = st.spec.MaxBackoff
		}
		// Equal jitter: half fixed, half random.
		d := int64(backoff)/2 + s.rng.Int64N(int64(backoff)/2+1)
		s.logRetry(c, res, d)
		c.attempt++
		s.schedule(event{at: s.now + d, kind: evRetry, ref: ref{c: c, gen: c.gen, attempt: c.attempt}})
		return
	}
	r := c.r
	if !res.ok() {
		switch {
		case st.spec.Fallback:
			if res.failed() {
				s.logFallback(c, res)
			}
		case r.res.ok() || (r.res.kind == rClient && res.kind != rClient):
			r.res = propagate(res)
			if res.kind == rPoolTimeout && !c.spanned {
				r.res = res // our own pool: the failure is ours
			}
		}
	}
	r.calls = removeCall(r.calls, c)
	s.freeCallObj(c)
	r.out--
	if r.res.failed() && r.op.spec.FailFast {
		s.cancelSiblings(r)
	}
	if r.out == 0 {
		s.stepDone(r)
	}
}

// cancelSiblings ends every call of r's step still in flight, as an errgroup
// does when one of its calls fails: each client span ends CANCELLED at once,
// and a late answer is ignored. The callees go on serving them.
func (s *Sim) cancelSiblings(r *request) {
	for _, c := range r.calls {
		if c.holdsConn {
			c.holdsConn = false
			s.release(r.inst.pools[c.site.pidx])
		}
		if c.spanned && !c.done {
			s.emitClient(c, result{kind: rCancelled})
		}
		s.freeCallObj(c)
		r.out--
	}
	r.calls = r.calls[:0]
}

func removeCall(list []*call, c *call) []*call {
	for i, x := range list {
		if x == c {
			return append(list[:i], list[i+1:]...)
		}
	}
	return list
}

func (s *Sim) release(p *pool) {
	p.used--
	for p.waiters.len() > 0 {
		w := p.waiters.pop()
		if c := w.c; c.gen == w.gen && c.attempt == w.attempt && c.waiting {
			c.waiting = false
			p.pending--
			s.acquire(c, p)
			s.send(c)
			return
		}
	}
}

func (s *Sim) extArrive(rf ref, e *external) {
	if !rf.live() {
		return // cancelled before it arrived
	}
	if e.busy < e.spec.Capacity {
		s.extStart(rf, e)
		return
	}
	if e.queue.len() < e.spec.Queue {
		e.queue.push(rf)
		return
	}
	s.schedule(event{at: s.now + s.netLatency(), kind: evResponse, ref: rf, res: result{kind: rOverload}})
}

func (s *Sim) extStart(rf ref, e *external) {
	e.busy++
	lat := int64(s.lognormal(float64(e.spec.Latency)*e.slow, e.spec.Sigma))
	res := result{}
	if s.rng.Float64() < e.spec.ErrorRate*s.errScale {
		res.kind = rExtError
		lat /= 3
		if e.spec.Kind == ExternalHTTP {
			// A third-party API fails in assorted ways.
			res.code = [...]int16{500, 502, 502, 503, 408, 429}[s.rng.IntN(6)]
		}
	}
	s.schedule(event{at: s.now + lat, kind: evExtDone, ref: rf, ext: e, res: res})
}

func (s *Sim) extDone(rf ref, e *external, res result) {
	e.busy--
	for e.queue.len() > 0 {
		// Cancelled statements waiting in the queue never run.
		if next := e.queue.pop(); next.live() {
			s.extStart(next, e)
			break
		}
	}
	if rf.live() {
		back := s.netLatency()
		if e.spec.Kind == ExternalHTTP {
			back = int64(s.lognormal(float64(20*time.Millisecond), 0.3))
		}
		s.schedule(event{at: s.now + back, kind: evResponse, ref: rf, res: res})
	}
}

// --- effects and deploys -----------------------------------------------------

func (s *Sim) applyEffect(e *effect, on bool) {
	switch e.kind {
	case effSvcFail:
		svc := s.byName[e.target]
		svc.failShare, svc.failKind = 0, rOK
		if on {
			svc.failShare, svc.failKind = e.share, e.res
		}
	case effSvcSlow:
		s.byName[e.target].slow = 1
		if on {
			s.byName[e.target].slow = e.factor
		}
	case effStarve:
		svc := s.byName[e.target]
		svc.slow, svc.starve = 1, 0
		if on {
			svc.slow, svc.starve = e.factor, e.share*float64(time.Millisecond)
		}
	case effLinkDelay:
		s.byName[e.target].linkDelay = 0
		if on {
			s.byName[e.target].linkDelay = int64(e.factor * float64(time.Millisecond))
		}
	case effExtSlow:
		s.exts[e.target].slow = 1
		if on {
			s.exts[e.target].slow = e.factor
		}
	case effLeak:
		svc := s.byName[e.target]
		if on {
			svc.leak, svc.leakPool = e.factor, e.pool
			return
		}
		svc.leak = 0
		// The fix (a restart of the pool, leak detection) returns them.
		for _, inst := range svc.all {
			for _, p := range inst.pools {
				n := p.leaked
				p.leaked = 0
				for range n {
					s.release(p)
				}
			}
		}
	case effBadInstance:
		svc := s.byName[e.target]
		if e.inst < len(svc.all) {
			svc.all[e.inst].failShare = 0
			if on {
				svc.all[e.inst].failShare = e.share
			}
		}
	case effRate:
		s.rateMul = 1
		if on {
			s.rateMul = e.factor
		}
		s.scheduleArrival()
	case effClient4xx:
		s.badShare = 0
		if on {
			s.badShare = e.share
		}
	case effDeploy:
		svc := s.byName[e.target]
		for i, inst := range append([]*instance(nil), svc.ready...) {
			s.schedule(event{at: s.now + int64(i)*int64(deployStep), kind: evDeployStart, inst: inst})
		}
	case effScale:
		svc := s.byName[e.target]
		for len(svc.ready) < int(e.factor) {
			inst := s.newInstance(svc, svc.spec.Version)
			inst.ready = true
			svc.ready = append(svc.ready, inst)
			svc.targets = append(svc.targets, inst)
			s.logLifecycle(inst, "Started "+svc.spec.Name+" (scaled out)")
		}
	}
}

func (s *Sim) deployStart(old *instance) {
	svc := old.svc
	inst := s.newInstance(svc, nextVersion(svc.spec.Version))
	startup := 8*time.Second + time.Duration(s.rng.Int64N(int64(8*time.Second)))
	s.schedule(event{at: s.now + int64(startup), kind: evDeployReady, inst: inst, aux: old})
}

func (s *Sim) deployReady(inst, old *instance) {
	svc := inst.svc
	inst.ready = true
	inst.warmUntil = s.now + int64(30*time.Second)
	svc.ready = append(remove(svc.ready, old), inst)
	svc.targets = append(svc.targets, inst)
	s.logLifecycle(inst, "Started "+svc.spec.Name+" "+inst.version+" in "+itoa(int64(8+s.rng.IntN(8)))+"s")
	old.ready, old.refusing = false, true
	s.logLifecycle(old, "Received SIGTERM, shutting down gracefully")
	// Endpoints take a moment to converge: callers keep routing to the old
	// pod for 1-3 s and get connection refused.
	s.schedule(event{at: s.now + int64(time.Second) + s.rng.Int64N(int64(2*time.Second)), kind: evLagEnd, inst: old})
	if old.busy == 0 && old.queue.len() == 0 {
		old.gone = true
		svc.all = remove(svc.all, old)
	}
}

func remove(list []*instance, x *instance) []*instance {
	for i, v := range list {
		if v == x {
			return append(list[:i:i], list[i+1:]...)
		}
	}
	return list
}

// --- randomness --------------------------------------------------------------

func (s *Sim) lognormal(median, sigma float64) float64 {
	return median * math.Exp(sigma*s.rng.NormFloat64())
}

// netLatency is one in-cluster hop: 0.2 ms plus an exponential tail.
func (s *Sim) netLatency() int64 {
	return 200_000 + int64(s.rng.ExpFloat64()*150_000)
}

func (s *Sim) traceID() (id [16]byte) {
	a, b := s.rng.Uint64(), s.rng.Uint64()|1
	for i := range 8 {
		id[i] = byte(a >> (56 - 8*i))
		id[8+i] = byte(b >> (56 - 8*i))
	}
	return id
}

func (s *Sim) spanID() (id [8]byte) {
	a := s.rng.Uint64() | 1
	for i := range 8 {
		id[i] = byte(a >> (56 - 8*i))
	}
	return id
}

func uuid(r *rand.Rand) string {
	const hex = "0123456789abcdef"
	var b [36]byte
	a, c := r.Uint64(), r.Uint64()
	j := 0
	for i := range 36 {
		switch i {
		case 8, 13, 18, 23:
			b[i] = '-'
			continue
		}
		var v uint64
		if j < 16 {
			v = a >> (4 * j)
		} else {
			v = c >> (4 * (j - 16))
		}
		b[i] = hex[v&15]
		j++
	}
	return string(b[:])
}

func randName(r *rand.Rand, n int) string {
	const alnum = "bcdfghjklmnpqrstvwxz2456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = alnum[r.IntN(len(alnum))]
	}
	return string(b)
}

func camel(s string) string {
	var b strings.Builder
	up := true
	for _, ch := range s {
		if ch == '-' || ch == '_' {
			up = true
			continue
		}
		if up && ch >= 'a' && ch <= 'z' {
			ch -= 'a' - 'A'
		}
		up = false
		b.WriteRune(ch)
	}
	return b.String()
}
