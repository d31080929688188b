package simulate

import (
	"time"
)

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
