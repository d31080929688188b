// Package testbed runs real instrumented Go services (package service) in
// the topologies of package topo, drives open-loop load through them,
// injects faults between services (toxiproxy) and inside them (admin
// endpoint, cgroups, PostgreSQL), and returns the ground truth of what it
// injected, where and when, for a harness to score the alerts of the Vigil
// agent the services export to. See README.md.
package testbed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/vigilhq/vigil/benchmarks/testbed/topo"
	"github.com/vigilhq/vigil/internal/simulate"
)

// DefaultPGBin is where Debian's postgresql package installs PostgreSQL 15.
const DefaultPGBin = "/usr/lib/postgresql/15/bin"

// Options configure a run.
type Options struct {
	// Bin is the testbed binary, re-executed as `testbed serve` per replica.
	Bin string
	// Endpoint is the OTLP/gRPC host:port every service exports to
	// (plaintext).
	Endpoint string
	Seed     int64
	// Topologies to run (nil: all; the short plan runs the first, or ledger).
	Topologies []string
	// Plan is "full" (default) or "short".
	Plan string
	// WorkDir holds PostgreSQL's data and the processes' logs; created if
	// missing (empty: a new temporary directory, kept after the run).
	WorkDir string
	// Toxiproxy is the toxiproxy-server binary (empty: from PATH).
	Toxiproxy string
	// PGBin is the directory holding initdb and postgres (empty:
	// DefaultPGBin).
	PGBin string
	// Log receives progress lines (nil: discard).
	Log io.Writer
	// Warmup, FaultFor and Gap override the plan's timings when non-zero.
	Warmup, FaultFor, Gap time.Duration
	// MetricsInterval is the services' metric export interval (zero: 10 s).
	MetricsInterval time.Duration
}

// withDefaults fills the defaults and checks o.
func (o Options) withDefaults() (Options, error) {
	if o.Plan == "" {
		o.Plan = PlanFull
	}
	warmup, faultFor, gap := fullWarmup, fullFaultFor, fullGap
	switch o.Plan {
	case PlanFull:
	case PlanShort:
		warmup, faultFor, gap = shortWarmup, shortFault, shortGap
	default:
		return o, fmt.Errorf("invalid plan %q: want %q or %q", o.Plan, PlanFull, PlanShort)
	}
	if o.Warmup == 0 {
		o.Warmup = warmup
	}
	if o.FaultFor == 0 {
		o.FaultFor = faultFor
	}
	if o.Gap == 0 {
		o.Gap = gap
	}
	if o.MetricsInterval == 0 {
		o.MetricsInterval = 10 * time.Second
	}
	if o.Warmup < 0 || o.FaultFor <= 0 || o.Gap < 0 || o.MetricsInterval < 0 {
		return o, fmt.Errorf("invalid timings: warmup %s, fault %s, gap %s, metrics %s", o.Warmup, o.FaultFor, o.Gap, o.MetricsInterval)
	}
	if o.PGBin == "" {
		o.PGBin = DefaultPGBin
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Bin == "" {
		return o, errors.New("invalid options: Bin (the testbed binary) is required")
	}
	if o.Endpoint == "" {
		return o, errors.New("invalid options: Endpoint (OTLP/gRPC host:port) is required")
	}
	if o.Toxiproxy == "" {
		p, err := exec.LookPath("toxiproxy-server")
		if err != nil {
			return o, fmt.Errorf("cannot find toxiproxy-server (set Toxiproxy; scripts/test-deps.sh builds it into .cache/bin): %w", err)
		}
		o.Toxiproxy = p
	}
	if _, err := os.Stat(o.Toxiproxy); err != nil {
		return o, fmt.Errorf("cannot find toxiproxy-server: %w", err)
	}
	if o.WorkDir == "" {
		d, err := os.MkdirTemp("", "vigil-testbed-")
		if err != nil {
			return o, fmt.Errorf("cannot create a work directory: %w", err)
		}
		o.WorkDir = d
	}
	if err := os.MkdirAll(o.WorkDir, 0o755); err != nil {
		return o, fmt.Errorf("cannot create work directory: %w", err)
	}
	return o, nil
}

// Run starts the services, drives load, injects the plan's faults and
// controls at their times, stops everything and returns the ground truth,
// one simulate.Truth per topology (Scenario = topology name). It honours ctx
// cancellation: it stops every process it started, always, also on error,
// and returns the truth so far with the error.
func Run(ctx context.Context, o Options) (truths []simulate.Truth, err error) {
	o, err = o.withDefaults()
	if err != nil {
		return nil, err
	}
	p, err := buildPlan(o)
	if err != nil {
		return nil, err
	}
	e := newEnv(o)
	defer func() { err = errors.Join(err, e.close()) }()
	e.logf("testbed run %s in %s", e.run, o.WorkDir)
	for _, line := range strings.Split(strings.TrimRight(p.String(), "\n"), "\n") {
		e.logf("%s", line)
	}
	if err := e.setup(ctx, p); err != nil {
		return nil, err
	}
	var g sync.WaitGroup
	errs := make([]error, len(p.Topologies))
	for i, tp := range p.Topologies {
		c := newCluster(e, tp.Topology)
		e.mu.Lock()
		e.clusters = append(e.clusters, c)
		e.mu.Unlock()
		g.Go(func() { errs[i] = c.start(ctx) })
	}
	g.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, c := range e.clusters {
		n := 0
		for _, s := range c.t.Services {
			n += s.Replicas
		}
		e.logf("%s: %d replicas of %d services ready", c.t.Name, n, len(c.t.Services))
	}

	loadCtx, stopLoad := context.WithCancel(context.WithoutCancel(ctx))
	e.mu.Lock()
	e.stopLoad = stopLoad
	for i, tp := range p.Topologies {
		lg := newLoadGen(e.clusters[i], tp.Rate, o.Seed)
		e.loads = append(e.loads, lg)
		e.loadWG.Go(func() { lg.run(loadCtx) })
	}
	e.mu.Unlock()
	e.t0 = time.Now()
	e.logf("load started: warmup %s; plan ends at +%s", o.Warmup, p.Duration())
	e.loadWG.Go(func() { e.heartbeat(loadCtx) })

	truths = make([]simulate.Truth, len(p.Topologies))
	for i, tp := range p.Topologies {
		g.Go(func() { truths[i], errs[i] = e.sequence(ctx, e.clusters[i], e.loads[i], tp) })
	}
	g.Wait()
	if err := errors.Join(errs...); err != nil {
		return truths, err
	}
	e.logf("plan done")
	return truths, nil
}

// Topologies lists the topology names.
func Topologies() []string { return topo.Names() }

// Describe returns a human description of a topology: its services, edges,
// faults and controls.
func Describe(name string) (string, error) {
	t, ok := topo.Get(name)
	if !ok {
		return "", fmt.Errorf("invalid topology %q: want one of %s", name, strings.Join(topo.Names(), ", "))
	}
	return describe(t), nil
}
