package testbed

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/vigilhq/vigil/benchmarks/testbed/topo"
	"github.com/vigilhq/vigil/internal/simulate"
)

// env is one run: the shared backends (toxiproxy, PostgreSQL, cgroups), the
// topologies' clusters and load generators, and the progress log. Its close
// stops everything it started.
type env struct {
	o   Options
	run string
	t0  time.Time

	logMu sync.Mutex
	log   io.Writer

	tp      *toxiproxy
	pg      *postgres
	cg      *cgroups
	dbAddr  map[string]string // database -> its proxy's host:port
	dbProxy map[string]string // database -> proxy name
	dbIPs   []string

	mu       sync.Mutex
	clusters []*cluster
	loads    []*loadGen
	stopLoad context.CancelFunc
	loadWG   sync.WaitGroup
}

// newEnv is a run's env for o (already defaulted), before setup.
func newEnv(o Options) *env {
	return &env{o: o, run: newRunID(), log: o.Log, dbAddr: map[string]string{}, dbProxy: map[string]string{}}
}

func newRunID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// logf writes one progress line: wall clock, offset into the run, message.
func (e *env) logf(format string, args ...any) {
	e.logMu.Lock()
	defer e.logMu.Unlock()
	now := time.Now()
	off := ""
	if !e.t0.IsZero() {
		d := now.Sub(e.t0).Round(time.Second)
		off = fmt.Sprintf(" +%02d:%02d", int(d.Minutes()), int(d.Seconds())%60)
	}
	fmt.Fprintf(e.log, "%s%s %s\n", now.Format("15:04:05"), off, fmt.Sprintf(format, args...))
}

// setup starts toxiproxy, the cgroup parent, and PostgreSQL with the
// databases and their proxies when a topology needs them.
func (e *env) setup(ctx context.Context, p plan) error {
	tp, err := startToxiproxy(ctx, e.o.Toxiproxy, e.o.WorkDir, e.run)
	if err != nil {
		return err
	}
	e.tp = tp
	if cg, err := newCgroups(e.run); err != nil {
		e.logf("cgroups not writable (%v): CPU faults use in-process spinner goroutines instead", err)
	} else {
		e.cg = cg
	}
	var dbs []*topo.Topology
	for _, t := range p.Topologies {
		if len(t.Topology.Databases) > 0 {
			dbs = append(dbs, t.Topology)
		}
	}
	if len(dbs) == 0 {
		return nil
	}
	pg, err := startPostgres(ctx, e.o.PGBin, e.o.WorkDir, e.run)
	if err != nil {
		return err
	}
	e.pg = pg
	e.logf("PostgreSQL running on %s (data in %s)", pg.addr, pg.dir)
	for _, t := range dbs {
		for _, db := range t.Databases {
			if err := pg.createDatabase(ctx, db, t.Schema); err != nil {
				return err
			}
			ip, err := podIPs.take()
			if err != nil {
				return err
			}
			e.dbIPs = append(e.dbIPs, ip)
			name := "postgresql-" + db
			addr := net.JoinHostPort(ip, strconv.Itoa(topo.DBPort))
			if err := e.tp.createProxy(ctx, name, addr, pg.addr); err != nil {
				return err
			}
			e.dbAddr[db], e.dbProxy[db] = addr, name
			e.logf("database %s: proxy %s on %s", db, name, addr)
		}
	}
	return nil
}

// close stops everything the run started, in order: load, replicas,
// cgroups, PostgreSQL, toxiproxy. It always runs to the end.
func (e *env) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var errs []error
	e.mu.Lock()
	if e.stopLoad != nil {
		e.stopLoad()
	}
	clusters := e.clusters
	e.mu.Unlock()
	e.loadWG.Wait()
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, c := range clusters {
		wg.Go(func() {
			if err := c.stop(ctx); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if e.cg != nil {
		errs = append(errs, e.cg.cleanup())
	}
	if e.pg != nil {
		errs = append(errs, e.pg.stop())
	}
	if e.tp != nil {
		errs = append(errs, e.tp.stop())
		e.tp.proc.killGroup()
	}
	for _, ip := range e.dbIPs {
		podIPs.release(ip)
	}
	if err := errors.Join(errs...); err != nil {
		e.logf("cleanup: %v", err)
		return fmt.Errorf("cannot stop everything cleanly: %w", err)
	}
	e.logf("stopped every process")
	return nil
}

// sequence runs one topology's plan items at their times and returns its
// truth. It stops early when ctx ends, undoing the active item.
func (e *env) sequence(ctx context.Context, c *cluster, lg *loadGen, tp topoPlan) (simulate.Truth, error) {
	t := tp.Topology
	truth := simulate.Truth{Scenario: t.Name, Seed: e.o.Seed, Start: e.t0, RootRate: tp.Rate}
	for _, it := range tp.Items {
		// A CPU fault measures its target's use just before it starts.
		lead := time.Duration(0)
		if it.Fault != nil && it.Fault.Means == topo.CPUQuota {
			lead = cpuWindow
		}
		if err := sleepCtx(ctx, time.Until(e.t0.Add(it.At-lead))); err != nil {
			return truth, err
		}
		what := it.describe(t)
		detail := ""
		before := lg.stats()
		target := ""
		var beforeSvc serviceSnapshot
		if it.Fault != nil {
			target = statsTarget(t, *it.Fault)
			beforeSvc = snapshot(ctx, c, target)
		}
		start := time.Now()
		var undo undoFunc
		var err error
		var deployed time.Time
		if it.Control != nil {
			e.logf("%s: control %s", t.Name, what)
			undo, err = e.applyControl(ctx, c, lg, *it.Control, it.Size)
			if it.Control.Kind == topo.ControlDeploy {
				deployed = time.Now() // it ran to its end in applyControl
			}
		} else {
			undo, detail, err = e.applyFault(ctx, c, *it.Fault, it.Size)
			start = time.Now()
			if detail != "" {
				what = it.Fault.Kind + " at " + it.Fault.Target + ": " + detail
			}
			e.logf("%s: fault %s", t.Name, what)
		}
		if err == nil {
			err = sleepCtx(ctx, time.Until(start.Add(it.For)))
		}
		if undo != nil {
			uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			if uerr := undo(uctx); uerr != nil {
				err = errors.Join(err, fmt.Errorf("cannot undo %s: %w", what, uerr))
			}
			cancel()
		}
		end := time.Now()
		if !deployed.IsZero() {
			end = deployed
		}
		if it.Control != nil {
			truth.Events = append(truth.Events, simulate.Event{Kind: it.Control.Kind, Target: it.Control.Target, Start: start, End: end,
				Detail: controlDetail(t, *it.Control, it.Size)})
		} else {
			if detail == "" {
				detail = faultDetail(t, *it.Fault, it.Size)
			}
			truth.Faults = append(truth.Faults, faultTruth(t, *it.Fault, it.Size, detail, start, end))
		}
		line := fmt.Sprintf("%s: ended %s; front door: %s", t.Name, what, lg.stats().since(before))
		if target != "" {
			line += fmt.Sprintf("; %s: %s", target, snapshot(ctx, c, target).since(beforeSvc))
		}
		e.logf("%s", line)
		if err != nil {
			return truth, err
		}
	}
	if err := sleepCtx(ctx, time.Until(e.t0.Add(tp.End))); err != nil {
		return truth, err
	}
	e.logf("%s: plan done", t.Name)
	return truth, nil
}

// statsTarget is the service whose counters show a fault: the target, or
// for a database the first service hit.
func statsTarget(t *topo.Topology, f topo.FaultSpec) string {
	if _, ok := topo.DBName(f.Target); ok {
		return t.NearestCaller(f)
	}
	return f.Target
}

// serviceSnapshot is a service's summed counters at one instant.
type serviceSnapshot struct {
	ok                                 bool
	requests, failed, jobs, jobsFailed int64
	latencyMicros, injected, fallbacks int64
	leaked                             int64
}

func snapshot(ctx context.Context, c *cluster, svc string) serviceSnapshot {
	s, err := c.stats(ctx, svc)
	if err != nil {
		return serviceSnapshot{}
	}
	return serviceSnapshot{ok: true, requests: s.Requests, failed: s.Failed, jobs: s.Jobs, jobsFailed: s.JobsFailed,
		latencyMicros: s.LatencyMicros, injected: s.Injected, fallbacks: s.Fallbacks, leaked: s.Leaked}
}

func (s serviceSnapshot) since(prev serviceSnapshot) string {
	if !s.ok || !prev.ok {
		return "no counters (replicas changed)"
	}
	n := s.requests - prev.requests
	mean := 0.0
	if n > 0 {
		mean = float64(s.latencyMicros-prev.latencyMicros) / float64(n) / 1000
	}
	out := fmt.Sprintf("%d requests, %.1f%% failed, mean %.0f ms", n, pct(s.failed-prev.failed, n), mean)
	if d := s.injected - prev.injected; d > 0 {
		out += fmt.Sprintf(", %d injected errors", d)
	}
	if d := s.fallbacks - prev.fallbacks; d > 0 {
		out += fmt.Sprintf(", %d fallbacks", d)
	}
	if d := s.jobs - prev.jobs; d > 0 {
		out += fmt.Sprintf(", %d jobs (%d failed)", d, s.jobsFailed-prev.jobsFailed)
	}
	if s.leaked > 0 {
		out += fmt.Sprintf(", %d connections leaked", s.leaked)
	}
	return out
}

// heartbeat logs every topology's front-door traffic once a minute.
func (e *env) heartbeat(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	e.mu.Lock()
	loads := e.loads
	e.mu.Unlock()
	prev := make([]loadStats, len(loads))
	for i, l := range loads {
		prev[i] = l.stats()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for i, l := range loads {
			s := l.stats()
			e.logf("%s: last minute at the front door: %s", l.c.t.Name, s.since(prev[i]))
			prev[i] = s
		}
	}
}
