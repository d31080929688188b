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
				res := e.res
				res.late = int64(s.lognormal(st, 0.5))
				s.schedule(event{at: s.now + res.late, kind: evResponse, ref: e.ref, res: res, n: 1})
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
