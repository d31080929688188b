package testbed

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vigilhq/vigil/benchmarks/testbed/topo"
	"github.com/vigilhq/vigil/internal/simulate"
	"github.com/vigilhq/vigil/testkit/otlpsink"
)

var runIDLine = regexp.MustCompile(`testbed run ([0-9a-f]+) in`)

// strays lists the processes still running with the run's marker in their
// environment, or the work directory in their command line (PostgreSQL).
func strays(t *testing.T, run, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	require.NoError(t, err)
	var out []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if strings.Contains(string(env), runEnvVar+"="+run) || strings.Contains(string(cmd), dir) {
			out = append(out, e.Name()+": "+strings.ReplaceAll(string(cmd), "\x00", " "))
		}
	}
	return out
}

func runOptions(t *testing.T, log *syncBuffer) Options {
	t.Helper()
	sink, err := otlpsink.StartCounting("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(sink.Stop)
	return Options{Bin: os.Args[0], Endpoint: sink.Addr, Toxiproxy: toxiproxyBin(t), WorkDir: workDir(t), Plan: PlanShort, Log: log}
}

func checkStopped(t *testing.T, log *syncBuffer, dir string) {
	t.Helper()
	m := runIDLine.FindStringSubmatch(log.String())
	require.NotNil(t, m, "no run id in the log")
	assert.Empty(t, strays(t, m[1], dir), "every process stopped")
	_, err := os.Stat(filepath.Join(cgroupMount, "vigil-testbed-"+m[1]))
	assert.True(t, os.IsNotExist(err), "cgroups removed")
}

// TestRunShort runs the short plan of fulfil (PostgreSQL, the queue) with
// short timings, and checks the truth and that everything stopped.
func TestRunShort(t *testing.T) {
	t.Parallel()
	needPG(t)
	log := &syncBuffer{}
	o := runOptions(t, log)
	o.Topologies, o.Seed = []string{"fulfil"}, 2
	o.Warmup, o.FaultFor, o.Gap = 3*time.Second, 5*time.Second, 2*time.Second
	start := time.Now()
	truths, err := Run(context.Background(), o)
	require.NoError(t, err, log.String())
	require.Len(t, truths, 1)
	tr := truths[0]
	assert.Equal(t, "fulfil", tr.Scenario)
	assert.Equal(t, int64(2), tr.Seed)
	require.Len(t, tr.Faults, 2)
	for i, f := range tr.Faults {
		assert.True(t, f.Start.After(start) && f.End.After(f.Start), "fault %d times", i)
		assert.InDelta(t, o.FaultFor.Seconds(), f.End.Sub(f.Start).Seconds(), 1)
		assert.NotEmpty(t, f.Affected)
		assert.Len(t, f.Expect, 2)
	}
	assert.False(t, topo.LatencyOnly(tr.Faults[0].Kind))
	assert.Equal(t, topo.KindSlowQuery, tr.Faults[1].Kind)
	assert.Equal(t, "postgresql/fulfil", tr.Faults[1].Origin)
	assert.True(t, tr.Faults[1].Start.After(tr.Faults[0].End))
	assert.Contains(t, log.String(), "ended slow-query")
	checkStopped(t, log, o.WorkDir)
}

// TestRunCancel cancels a run during its CPU fault: Run returns, having
// stopped every process and removed the cgroups.
func TestRunCancel(t *testing.T) {
	t.Parallel()
	log := &syncBuffer{}
	o := runOptions(t, log)
	o.Topologies = []string{"ledger"}
	o.Warmup, o.FaultFor, o.Gap = time.Second, 3*time.Second, time.Second
	// A seed whose short plan's second fault is CPU contention.
	for o.Seed = 1; ; o.Seed++ {
		p := planFor(t, o)
		if p.Topologies[0].Items[1].Fault.Means == topo.CPUQuota {
			break
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var truths [][]simulate.Truth
	go func() {
		tr, err := Run(ctx, o)
		truths = append(truths, tr)
		done <- err
	}()
	require.Eventually(t, func() bool { return strings.Contains(log.String(), "fault cpu at postings") }, 60*time.Second, 50*time.Millisecond, log.String())
	m := runIDLine.FindStringSubmatch(log.String())
	require.NotNil(t, m)
	if strings.Contains(log.String(), "CPU limited to") {
		entries, err := os.ReadDir(filepath.Join(cgroupMount, "vigil-testbed-"+m[1]))
		require.NoError(t, err)
		assert.NotEmpty(t, entries, "the postings replicas are in their cgroups")
	}
	cancel()
	select {
	case err := <-done:
		require.True(t, errors.Is(err, context.Canceled), "got %v", err)
	case <-time.After(time.Minute):
		t.Fatal("Run did not return after cancel")
	}
	require.Len(t, truths, 1)
	require.Len(t, truths[0], 1)
	assert.Len(t, truths[0][0].Faults, 2, "the cancelled fault is in the truth, ended at the cancel")
	checkStopped(t, log, o.WorkDir)
}
