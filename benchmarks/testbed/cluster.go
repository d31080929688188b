package testbed

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/vigilhq/vigil/benchmarks/testbed/service"
	"github.com/vigilhq/vigil/benchmarks/testbed/topo"
)

// replica is one running `testbed serve` process.
type replica struct {
	svc, ip, pod, version string
	slot                  int
	proc                  *proc
	proxy                 string // its toxiproxy proxy; "" for workers
}

// cluster is one topology's running replicas: its "namespace". Safe for
// concurrent use.
type cluster struct {
	env  *env
	t    *topo.Topology
	http *http.Client
	mu   sync.Mutex
	reps map[string][]*replica
}

func newCluster(e *env, t *topo.Topology) *cluster {
	return &cluster{env: e, t: t, http: &http.Client{Timeout: 5 * time.Second}, reps: map[string][]*replica{}}
}

// start allocates an IP for every replica, then starts them all (each knows
// every other's IP from the start) and waits until they are ready.
func (c *cluster) start(ctx context.Context) error {
	var all []*replica
	for _, s := range c.t.Services {
		for i := range s.Replicas {
			ip, err := podIPs.take()
			if err != nil {
				return err
			}
			r := &replica{svc: s.Name, ip: ip, pod: podName(s.Name, s.Version, i), version: s.Version, slot: i}
			c.reps[s.Name] = append(c.reps[s.Name], r)
			all = append(all, r)
		}
	}
	peers := c.peers()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(6)
	for _, r := range all {
		g.Go(func() error { return c.launch(gctx, r, peers) })
	}
	return g.Wait()
}

// podName is <svc>-<template hash>-<slot>, the hash standing for the
// ReplicaSet's pod-template hash (it changes with the version).
func podName(svc, version string, slot int) string {
	const alphabet = "bcdfghjklmnpqrstvwxz2456789"
	h := fnv.New64a()
	_, _ = h.Write([]byte(svc + "@" + version))
	n := h.Sum64()
	var b [10]byte
	for i := range b {
		b[i] = alphabet[n%uint64(len(alphabet))]
		n /= uint64(len(alphabet))
	}
	return svc + "-" + string(b[:]) + "-" + strconv.Itoa(slot)
}

// launch creates the replica's proxy, starts its process and waits until
// its admin endpoint says ready.
func (c *cluster) launch(ctx context.Context, r *replica, peers map[string][]string) error {
	s, _ := c.t.Service(r.svc)
	switch s.Protocol {
	case topo.GRPC, topo.HTTP:
		pub, port := topo.GRPCPort, topo.GRPCServicePort
		if s.Protocol == topo.HTTP {
			pub, port = topo.HTTPPort, topo.HTTPServicePort
		}
		r.proxy = c.t.Name + "." + r.pod
		if err := c.env.tp.createProxy(ctx, r.proxy, net.JoinHostPort(r.ip, strconv.Itoa(pub)), net.JoinHostPort(r.ip, strconv.Itoa(port))); err != nil {
			return err
		}
	}
	cfg := service.Config{
		Topology: c.t.Name, Service: r.svc, IP: r.ip, Pod: r.pod, Version: r.version, OTLP: c.env.o.Endpoint,
		Seed: c.env.o.Seed, DBUser: "postgres", Peers: peers, MetricsInterval: c.env.o.MetricsInterval,
	}
	if s.DB != nil {
		cfg.DBAddr = c.env.dbAddr[s.DB.Database]
	}
	flags, err := cfg.Flags()
	if err != nil {
		return err
	}
	logPath := filepath.Join(c.env.o.WorkDir, "logs", c.t.Name, r.pod+".log")
	p, err := startProc(r.pod, logPath, c.env.o.Bin, append([]string{"serve"}, flags...),
		[]string{"GOMAXPROCS=1", runEnvVar + "=" + c.env.run})
	if err != nil {
		return err
	}
	r.proc = p
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := c.admin(ctx, r, http.MethodGet, service.PathReady, nil, nil); err == nil {
			return nil
		}
		if p.exited() || time.Now().After(deadline) || ctx.Err() != nil {
			b, _ := os.ReadFile(logPath)
			return fmt.Errorf("cannot start %s/%s on %s: not ready: %s", c.t.Name, r.pod, r.ip, tail(b))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// peers maps every service to its replicas' IPs.
func (c *cluster) peers() map[string][]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string][]string, len(c.reps))
	for svc, rs := range c.reps {
		for _, r := range rs {
			out[svc] = append(out[svc], r.ip)
		}
	}
	return out
}

// replicas returns a service's current replicas.
func (c *cluster) replicas(svc string) []*replica {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*replica(nil), c.reps[svc]...)
}

func (c *cluster) all() []*replica {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*replica
	for _, s := range c.t.Services {
		out = append(out, c.reps[s.Name]...)
	}
	return out
}

// pushPeers sends the current peers to every replica.
func (c *cluster) pushPeers(ctx context.Context) error {
	peers := c.peers()
	var g errgroup.Group
	for _, r := range c.all() {
		g.Go(func() error { return c.admin(ctx, r, http.MethodPost, service.PathPeers, peers, nil) })
	}
	return g.Wait()
}

// admin calls a replica's admin endpoint.
func (c *cluster) admin(ctx context.Context, r *replica, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("cannot encode admin request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+net.JoinHostPort(r.ip, strconv.Itoa(topo.AdminPort))+path, rd)
	if err != nil {
		return fmt.Errorf("cannot build admin request: %w", err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot call admin %s %s of %s: %w", method, path, r.pod, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 300 {
		return fmt.Errorf("cannot call admin %s %s of %s: %s: %s", method, path, r.pod, resp.Status, strings.TrimSpace(string(b)))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("cannot decode admin %s of %s: %w", path, r.pod, err)
		}
	}
	return nil
}

// setFault puts f on every replica of svc (the zero Fault clears).
func (c *cluster) setFault(ctx context.Context, svc string, f service.Fault) error {
	var g errgroup.Group
	for _, r := range c.replicas(svc) {
		g.Go(func() error {
			if f == (service.Fault{}) {
				return c.admin(ctx, r, http.MethodDelete, service.PathFault, nil, nil)
			}
			return c.admin(ctx, r, http.MethodPut, service.PathFault, f, nil)
		})
	}
	return g.Wait()
}

// stats sums the counters of a service's replicas.
func (c *cluster) stats(ctx context.Context, svc string) (service.Stats, error) {
	var sum service.Stats
	for _, r := range c.replicas(svc) {
		var s service.Stats
		if err := c.admin(ctx, r, http.MethodGet, service.PathStats, nil, &s); err != nil {
			return sum, err
		}
		sum.Requests += s.Requests
		sum.Failed += s.Failed
		sum.Cancelled += s.Cancelled
		sum.Rejected += s.Rejected
		sum.Injected += s.Injected
		sum.Fallbacks += s.Fallbacks
		sum.Jobs += s.Jobs
		sum.JobsFailed += s.JobsFailed
		sum.Leaked += s.Leaked
		sum.LatencyMicros += s.LatencyMicros
	}
	return sum, nil
}

// retire stops a replica gracefully (SIGTERM: it drains in-flight requests)
// and removes its proxy and address.
func (c *cluster) retire(ctx context.Context, r *replica) error {
	var errs []error
	if r.proc != nil {
		errs = append(errs, r.proc.stop(syscall.SIGTERM, 15*time.Second))
		r.proc.killGroup()
	}
	if r.proxy != "" {
		errs = append(errs, c.env.tp.deleteProxy(ctx, r.proxy))
	}
	podIPs.release(r.ip)
	return errors.Join(errs...)
}

// stop retires every replica at once.
func (c *cluster) stop(ctx context.Context) error {
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, r := range c.all() {
		wg.Go(func() {
			if err := c.retire(ctx, r); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	c.mu.Lock()
	c.reps = map[string][]*replica{}
	c.mu.Unlock()
	return errors.Join(errs...)
}

// rollingDeploy restarts svc's replicas one at a time into a new version,
// each on a new IP, the way a Deployment's rolling update with maxSurge 1
// and maxUnavailable 0 does: start the new pod, add it to the endpoints once
// ready, remove the old one, then SIGTERM it (it drains).
func (c *cluster) rollingDeploy(ctx context.Context, svc string, pause time.Duration, logf func(string, ...any)) (string, error) {
	olds := c.replicas(svc)
	if len(olds) == 0 {
		return "", fmt.Errorf("cannot deploy %s: no replicas", svc)
	}
	version := nextVersion(olds[0].version)
	for i, old := range olds {
		ip, err := podIPs.take()
		if err != nil {
			return version, err
		}
		r := &replica{svc: svc, ip: ip, pod: podName(svc, version, old.slot), version: version, slot: old.slot}
		if err := c.launch(ctx, r, c.peers()); err != nil {
			_ = c.retire(context.WithoutCancel(ctx), r)
			return version, err
		}
		c.mu.Lock()
		c.reps[svc] = append(c.reps[svc], r)
		c.mu.Unlock()
		if err := c.pushPeers(ctx); err != nil {
			return version, err
		}
		c.mu.Lock()
		rs := c.reps[svc]
		for j := range rs {
			if rs[j] == old {
				c.reps[svc] = append(rs[:j:j], rs[j+1:]...)
				break
			}
		}
		c.mu.Unlock()
		if err := c.pushPeers(ctx); err != nil {
			return version, err
		}
		if err := c.retire(ctx, old); err != nil {
			logf("%s: %v", c.t.Name, err)
		}
		logf("%s: rolling deploy of %s: %s (%s) replaced %s (%s)", c.t.Name, svc, r.pod, r.ip, old.pod, old.ip)
		if i < len(olds)-1 {
			if err := sleepCtx(ctx, pause); err != nil {
				return version, err
			}
		}
	}
	return version, nil
}

// nextVersion bumps the minor version: 1.12.0 -> 1.13.0.
func nextVersion(v string) string {
	parts := strings.Split(v, ".")
	if len(parts) < 2 {
		return v + "-1"
	}
	n, err := strconv.Atoi(parts[1])
	if err != nil {
		return v + "-1"
	}
	return parts[0] + "." + strconv.Itoa(n+1) + ".0"
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
