// Package cputime reads the CPU time of the whole process, for benchmarks
// that must count the work of every goroutine (decision loops, background
// appliers), not only the benchmark's own.
package cputime

import (
	"syscall"
	"time"
)

// Self returns the process's user plus system CPU time so far.
func Self() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}
