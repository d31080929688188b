package testbed

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// cgroupMount is where the cgroup v1 cpu controller is mounted.
const cgroupMount = "/sys/fs/cgroup/cpu"

// cfsPeriod is the CFS period the quotas are a share of, in microseconds.
const cfsPeriod = 100_000

// cgroups puts replicas into CPU-limited cgroup v1 groups under
// /sys/fs/cgroup/cpu/vigil-testbed-<run>/<pod> and takes them out again.
// Safe for concurrent use.
type cgroups struct {
	root  string
	mu    sync.Mutex
	moved map[int]string // pid -> its original cgroup directory
}

// newCgroups creates the run's parent group; it fails where cgroups are not
// writable (not root, cgroup v2 only, a read-only mount).
func newCgroups(run string) (*cgroups, error) {
	if _, err := os.Stat(filepath.Join(cgroupMount, "cpu.cfs_quota_us")); err != nil {
		return nil, fmt.Errorf("cannot find the cgroup v1 cpu controller at %s: %w", cgroupMount, err)
	}
	root := filepath.Join(cgroupMount, "vigil-testbed-"+run)
	if err := os.Mkdir(root, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create cgroup %s: %w", root, err)
	}
	return &cgroups{root: root, moved: map[int]string{}}, nil
}

// limit moves pid into the group name, limited to quota (a share of one
// CPU).
func (c *cgroups) limit(name string, pid int, quota float64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	dir := filepath.Join(c.root, name)
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("cannot create cgroup %s: %w", dir, err)
	}
	orig, err := cgroupOf(pid)
	if err != nil {
		return err
	}
	us := max(int(quota*cfsPeriod), 1000)
	for _, w := range [][2]string{
		{"cpu.cfs_period_us", strconv.Itoa(cfsPeriod)},
		{"cpu.cfs_quota_us", strconv.Itoa(us)},
		{"cgroup.procs", strconv.Itoa(pid)},
	} {
		if err := os.WriteFile(filepath.Join(dir, w[0]), []byte(w[1]), 0); err != nil {
			return fmt.Errorf("cannot write %s of cgroup %s: %w", w[0], dir, err)
		}
	}
	if _, ok := c.moved[pid]; !ok {
		c.moved[pid] = orig
	}
	return nil
}

// quota returns the group's cpu.cfs_quota_us (-1: unlimited).
func (c *cgroups) quota(name string) (int, error) {
	b, err := os.ReadFile(filepath.Join(c.root, name, "cpu.cfs_quota_us"))
	if err != nil {
		return 0, fmt.Errorf("cannot read quota of %s: %w", name, err)
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// unlimit moves pid back to its original group and removes the group name.
func (c *cgroups) unlimit(name string, pid int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	if orig, ok := c.moved[pid]; ok {
		if err := os.WriteFile(filepath.Join(orig, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil && !errors.Is(err, os.ErrNotExist) && !strings.Contains(err.Error(), "no such process") {
			errs = append(errs, fmt.Errorf("cannot move pid %d back to %s: %w", pid, orig, err))
		}
		delete(c.moved, pid)
	}
	if err := os.Remove(filepath.Join(c.root, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("cannot remove cgroup %s: %w", name, err))
	}
	return errors.Join(errs...)
}

// cleanup moves every process left in the run's groups to the root group
// and removes the groups.
func (c *cgroups) cleanup() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	entries, err := os.ReadDir(c.root)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("cannot list %s: %w", c.root, err)
	}
	var errs []error
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(c.root, e.Name())
		if b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs")); err == nil {
			for _, pid := range strings.Fields(string(b)) {
				_ = os.WriteFile(filepath.Join(cgroupMount, "cgroup.procs"), []byte(pid), 0)
			}
		}
		if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("cannot remove cgroup %s: %w", dir, err))
		}
	}
	if err := os.Remove(c.root); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("cannot remove cgroup %s: %w", c.root, err))
	}
	return errors.Join(errs...)
}

// cgroupOf returns the directory of pid's cpu cgroup.
func cgroupOf(pid int) (string, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return "", fmt.Errorf("cannot read cgroups of pid %d: %w", pid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, ctl := range strings.Split(parts[1], ",") {
			if ctl == "cpu" {
				return filepath.Join(cgroupMount, parts[2]), nil
			}
		}
	}
	return "", fmt.Errorf("cannot find the cpu cgroup of pid %d", pid)
}
