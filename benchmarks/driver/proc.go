package driver

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// clockTicks is USER_HZ, the unit of /proc CPU times; 100 on every Linux
// architecture Go supports.
const clockTicks = 100

// procCPU returns a process's user+system CPU seconds (all threads, from
// /proc/<pid>/stat fields 14 and 15).
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(b)
}

// parseStatCPU reads utime and stime from a /proc/<pid>/stat line. The command
// name (field 2) may hold spaces and parentheses, so fields count from the last ')'.
func parseStatCPU(b []byte) (float64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("cannot parse /proc stat: no ')'")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime is field 14, stime 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("cannot parse /proc stat: %d fields", len(f)+2)
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("cannot parse /proc stat: utime %q stime %q", f[11], f[12])
	}
	return float64(u+s) / clockTicks, nil
}

// procMem returns VmRSS and VmHWM (peak RSS) of a process in bytes.
func procMem(pid int) (rss, hwm float64, err error) {
	rss, hwm, _, err = procMemAnon(pid)
	return rss, hwm, err
}

// procMemAnon also returns RssAnon: the resident memory that is the
// process's own (heap, stacks), without the binary's file-backed pages,
// which are most of an idle agent's RSS and say nothing about a workload.
func procMemAnon(pid int) (rss, hwm, anon float64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		var dst *float64
		switch {
		case strings.HasPrefix(line, "VmRSS:"):
			dst = &rss
		case strings.HasPrefix(line, "VmHWM:"):
			dst = &hwm
		case strings.HasPrefix(line, "RssAnon:"):
			dst = &anon
		default:
			continue
		}
		fs := strings.Fields(line)
		if len(fs) >= 2 {
			kb, err := strconv.ParseFloat(fs[1], 64)
			if err == nil {
				*dst = kb * 1024
			}
		}
	}
	if rss == 0 && hwm == 0 {
		return 0, 0, 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
	}
	return rss, hwm, anon, sc.Err()
}

// cpuBusy returns the busy seconds of one CPU from /proc/stat: every state but
// idle and iowait (guest time is already inside user).
func cpuBusy(cpu int) (float64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	return parseCPUBusy(b, cpu)
}

func parseCPUBusy(b []byte, cpu int) (float64, error) {
	prefix := "cpu" + strconv.Itoa(cpu) + " "
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		f := strings.Fields(line)[1:]
		if len(f) < 4 {
			return 0, fmt.Errorf("cannot parse /proc/stat line %q", line)
		}
		var busy uint64
		for i, v := range f {
			if i == 3 || i == 4 || i >= 8 { // idle, iowait; guest, guest_nice are in user
				continue
			}
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("cannot parse /proc/stat line %q: %w", line, err)
			}
			busy += n
		}
		return float64(busy) / clockTicks, nil
	}
	return 0, fmt.Errorf("no %q in /proc/stat", strings.TrimSpace(prefix))
}

// PinSelf binds every thread of this process to one CPU (threads created later
// inherit it) and sets GOMAXPROCS to 1, so the generators and sinks stay off
// the agent's CPU.
func PinSelf(cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	tasks, err := filepath.Glob("/proc/self/task/*")
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(filepath.Base(t))
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, &set); err != nil {
			return fmt.Errorf("cannot pin thread %d to CPU %d: %w", tid, cpu, err)
		}
	}
	runtime.GOMAXPROCS(1)
	return nil
}

// RaisePriority gives this process's autogroup (its session: the driver and
// the agents it starts) a higher CPU weight. Under autogroup scheduling,
// nice(1) only orders threads inside one group, so it does nothing against
// other sessions' builds; the group's own nice value does. Needs root.
func RaisePriority(nice int) (string, error) {
	if err := os.WriteFile("/proc/self/autogroup", []byte(strconv.Itoa(nice)), 0); err != nil {
		return "", fmt.Errorf("cannot raise priority (write /proc/self/autogroup; needs root): %w", err)
	}
	b, err := os.ReadFile("/proc/self/autogroup")
	return strings.TrimSpace(string(b)), err
}

// Machine describes this machine for the report: CPU model, CPU count,
// memory and kernel.
func Machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				if i := strings.IndexByte(line, ':'); i >= 0 {
					model = strings.TrimSpace(line[i+1:])
				}
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
		if len(f) >= 2 {
			if kb, err := strconv.ParseFloat(f[1], 64); err == nil {
				mem = fmt.Sprintf(", %.0f GiB memory", kb/(1<<20))
			}
		}
	}
	var u unix.Utsname
	kernel := ""
	if unix.Uname(&u) == nil {
		kernel = ", Linux " + unix.ByteSliceToString(u.Release[:])
	}
	return fmt.Sprintf("%s, %d CPUs%s%s", model, runtime.NumCPU(), mem, kernel)
}

// LoadAvg is /proc/loadavg's three load averages.
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
