package testbed

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vigilhq/vigil/benchmarks/testbed/service"
	"github.com/vigilhq/vigil/benchmarks/testbed/topo"
)

// undoFunc reverts an applied fault or control.
type undoFunc func(context.Context) error

// Toxic names the testbed uses on its proxies.
const (
	toxicLatency = "testbed-latency"
	toxicReset   = "testbed-reset"
)

// cpuWindow is how long a CPU fault measures its target's use before it
// sets the quota.
const cpuWindow = 5 * time.Second

// applyFault injects a fault and returns how to undo it, and the fault's
// detail when only the injection knows it (the CPU quota it measured, the
// spinner fallback); "" keeps the planned detail.
func (e *env) applyFault(ctx context.Context, c *cluster, f topo.FaultSpec, size float64) (undoFunc, string, error) {
	switch f.Means {
	case topo.ErrorReturns:
		return e.adminFault(ctx, c, f.Target, service.Fault{ErrorShare: size, ErrorMethod: f.Method})
	case topo.HandlerLatency:
		return e.adminFault(ctx, c, f.Target, service.Fault{DelayMS: size})
	case topo.PoolLeak:
		return e.adminFault(ctx, c, f.Target, service.Fault{LeakSeconds: size})
	case topo.CPUQuota:
		if e.cg == nil {
			undo, _, err := e.adminFault(ctx, c, f.Target, service.Fault{SpinDuty: spinDuty})
			return undo, fmt.Sprintf("cgroups not writable: an in-process goroutine spins %.0f%% of the time instead of a CPU quota", 100*spinDuty), err
		}
		return e.cpuQuota(ctx, c, f.Target, size)
	case topo.LinkLatency:
		return e.eachProxy(ctx, c, f.Target, func(ctx context.Context, p string) error {
			return e.tp.addToxic(ctx, p, toxicLatency, "latency", map[string]any{"latency": int(size), "jitter": int(size / 10)})
		}, func(ctx context.Context, p string) error { return e.tp.removeToxic(ctx, p, toxicLatency) })
	case topo.ProxyDown:
		return e.eachProxy(ctx, c, f.Target, func(ctx context.Context, p string) error { return e.tp.setEnabled(ctx, p, false) },
			func(ctx context.Context, p string) error { return e.tp.setEnabled(ctx, p, true) })
	case topo.ResetPeer:
		return e.eachProxy(ctx, c, f.Target, func(ctx context.Context, p string) error {
			return e.tp.addToxic(ctx, p, toxicReset, "reset_peer", map[string]any{"timeout": 0})
		}, func(ctx context.Context, p string) error { return e.tp.removeToxic(ctx, p, toxicReset) })
	case topo.PGSleep:
		db, ok := topo.DBName(f.Target)
		if !ok || e.pg == nil {
			return nil, "", fmt.Errorf("cannot slow %s: not a database of this run", f.Target)
		}
		undo := func(ctx context.Context) error { return e.pg.setSlow(ctx, db, 0) }
		if err := e.pg.setSlow(ctx, db, size); err != nil {
			return undo, "", err
		}
		return undo, "", nil
	}
	return nil, "", fmt.Errorf("cannot inject %s: unknown means %v", f.Kind, f.Means)
}

func (e *env) adminFault(ctx context.Context, c *cluster, svc string, f service.Fault) (undoFunc, string, error) {
	undo := func(ctx context.Context) error { return c.setFault(ctx, svc, service.Fault{}) }
	return undo, "", c.setFault(ctx, svc, f)
}

// spinDuty is the spinner's share of the time when cgroups are not
// writable.
const spinDuty = 0.9

// minQuota is the smallest quota set, as a share of a CPU.
const minQuota = 0.005

// cpuQuota measures the CPU each replica of svc uses for cpuWindow, then
// puts it into its own cgroup with a quota of factor times that.
func (e *env) cpuQuota(ctx context.Context, c *cluster, svc string, factor float64) (undoFunc, string, error) {
	reps := c.replicas(svc)
	used, err := measureCPU(ctx, reps, cpuWindow)
	if err != nil {
		return nil, "", err
	}
	undo := func(context.Context) error {
		var errs []error
		for _, r := range reps {
			errs = append(errs, e.cg.unlimit(c.t.Name+"."+r.pod, r.proc.pid()))
		}
		return errors.Join(errs...)
	}
	var quotas, uses []string
	for i, r := range reps {
		q := max(used[i]*factor, minQuota)
		if err := e.cg.limit(c.t.Name+"."+r.pod, r.proc.pid(), q); err != nil {
			return undo, "", err
		}
		quotas = append(quotas, fmt.Sprintf("%.1f%%", 100*q))
		uses = append(uses, fmt.Sprintf("%.1f%%", 100*used[i]))
	}
	return undo, fmt.Sprintf("CPU limited to %s of a core per replica (cgroup cpu.cfs_quota_us), %.2fx the %s it used just before",
		strings.Join(quotas, ", "), factor, strings.Join(uses, ", ")), nil
}

// measureCPU returns the share of a CPU each replica used over window.
func measureCPU(ctx context.Context, reps []*replica, window time.Duration) ([]float64, error) {
	before := make([]time.Duration, len(reps))
	for i, r := range reps {
		d, err := procCPU(r.proc.pid())
		if err != nil {
			return nil, err
		}
		before[i] = d
	}
	start := time.Now()
	if err := sleepCtx(ctx, window); err != nil {
		return nil, err
	}
	el := time.Since(start)
	out := make([]float64, len(reps))
	for i, r := range reps {
		d, err := procCPU(r.proc.pid())
		if err != nil {
			return nil, err
		}
		out[i] = float64(d-before[i]) / float64(el)
	}
	return out, nil
}

// procCPU is the CPU time a process's threads have run, from their
// schedstat (nanoseconds; /proc/<pid>/stat counts in 10 ms ticks).
func procCPU(pid int) (time.Duration, error) {
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("cannot list threads of pid %d: %w", pid, err)
	}
	var sum time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, t.Name(), "schedstat"))
		if err != nil {
			continue // the thread ended
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			continue
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("cannot parse schedstat of pid %d: %w", pid, err)
		}
		sum += time.Duration(ns)
	}
	return sum, nil
}

// eachProxy applies do to every proxy into target: its replicas', or the
// database's.
func (e *env) eachProxy(ctx context.Context, c *cluster, target string, do, undo func(context.Context, string) error) (undoFunc, string, error) {
	var proxies []string
	if db, ok := topo.DBName(target); ok {
		p, found := e.dbProxy[db]
		if !found {
			return nil, "", fmt.Errorf("cannot find the proxy of database %s", db)
		}
		proxies = append(proxies, p)
	} else {
		for _, r := range c.replicas(target) {
			proxies = append(proxies, r.proxy)
		}
	}
	u := func(ctx context.Context) error {
		var errs []error
		for _, p := range proxies {
			errs = append(errs, undo(ctx, p))
		}
		return errors.Join(errs...)
	}
	for _, p := range proxies {
		if err := do(ctx, p); err != nil {
			return u, "", err
		}
	}
	return u, "", nil
}

// applyControl starts a surge or a flood of invalid requests; a rolling
// deploy runs to its end here, and its undo is a no-op.
func (e *env) applyControl(ctx context.Context, c *cluster, lg *loadGen, ctl topo.ControlSpec, size float64) (undoFunc, error) {
	switch ctl.Kind {
	case topo.ControlSurge:
		lg.setMult(size)
		return func(context.Context) error { lg.setMult(1); return nil }, nil
	case topo.ControlFlood4xx:
		lg.setFlood(size * lg.rate)
		return func(context.Context) error { lg.setFlood(0); return nil }, nil
	case topo.ControlDeploy:
		_, err := c.rollingDeploy(ctx, ctl.Target, e.deployPause(), e.logf)
		return func(context.Context) error { return nil }, err
	}
	return nil, fmt.Errorf("cannot run control %s: unknown kind", ctl.Kind)
}

// deployPause is the wait between two replicas of a rolling deploy.
func (e *env) deployPause() time.Duration { return min(20*time.Second, e.o.FaultFor/6) }
