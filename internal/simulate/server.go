package simulate

import (
	"time"
)

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
