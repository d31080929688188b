package simulate

import (
	"time"
)

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
