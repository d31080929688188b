package containerlogreceiver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/vigilhq/vigil/receivers/containerlogreceiver/internal/metadata"
	"github.com/vigilhq/vigil/receivers/containerlogreceiver/internal/parse"
)

// Found in review (each failed before its fix).

func newR(t *testing.T, cfg *Config, sink *consumertest.LogsSink) *logReceiver {
	r, err := newReceiver(receivertest.NewNopSettings(metadata.Type), cfg, sink)
	require.NoError(t, err)
	return r
}

// With multiline on, a line longer than max_log_size arrives whole, in
// pieces (the joiner would cut it).
func TestMultilineKeepsLongLinesWhole(t *testing.T) {
	root := t.TempDir()
	path := filepath.Join(podDir(t, root, "ns", "p", "u", "c"), "0.log")
	long := strings.Repeat("x", 10<<10)
	appendFile(t, path, criLine("stdout", "F", long)+criLine("stdout", "F", "next"))
	cfg := testConfig(root)
	cfg.MaxLogSize = 4 << 10
	cfg.Multiline.LineStartPattern = "^[a-z]"
	sink := &consumertest.LogsSink{}
	r := newR(t, cfg, sink)
	r.poll(context.Background())
	for _, rd := range r.readers {
		r.forget(rd)
	}
	r.send(context.Background())
	got, _ := bodies(sink)
	total := 0
	for _, g := range got {
		total += len(g)
	}
	require.Equal(t, len(long)+len("next"), total, "every byte of the long line arrives")
	require.Equal(t, "next", got[len(got)-1])
	require.Positive(t, r.tel.split.Load())
}

// A file renamed between a poll's listing and its stat is not forgotten
// and read again from its start under its new name.
func TestRenameBetweenListingAndStatIsNotReadAgain(t *testing.T) {
	root := t.TempDir()
	path := filepath.Join(podDir(t, root, "ns", "p", "u", "c"), "0.log")
	for i := range 100 {
		appendFile(t, path, criLine("stdout", "F", fmt.Sprint("l", i)))
	}
	cfg := testConfig(root)
	sink := &consumertest.LogsSink{}
	r := newR(t, cfg, sink)
	ctx := context.Background()
	r.poll(ctx)
	require.NoError(t, os.Rename(path, path+".20261207-100000"))
	inc := cfg.Include
	cfg.Include = inc[:1] // this poll's listing saw the directory before the rename
	r.poll(ctx)
	cfg.Include = inc
	r.poll(ctx)
	got, _ := bodies(sink)
	require.Len(t, got, 100, "each line once")
}

// start_at: end applies to the first start: after a restart, a file that
// appeared while the agent was down is read from its beginning.
func TestStartAtEndAppliesToTheFirstStartOnly(t *testing.T) {
	root := t.TempDir()
	dir := podDir(t, root, "ns", "p", "u", "c")
	appendFile(t, filepath.Join(dir, "0.log"), criLine("stdout", "F", "old"))
	st := &memStorage{kv: map[string][]byte{}}
	cfg := testConfig(root)
	cfg.StartAt = "end"
	sink := &consumertest.LogsSink{}
	r := start(t, cfg, sink, st)
	time.Sleep(200 * time.Millisecond)
	appendFile(t, filepath.Join(dir, "0.log"), criLine("stdout", "F", "seen"))
	waitBodies(t, sink, 1)
	require.NoError(t, r.Shutdown(context.Background()))
	// down: the container restarts, writes 1.log
	appendFile(t, filepath.Join(dir, "1.log"), criLine("stdout", "F", "while down"))
	appendFile(t, filepath.Join(dir, "0.log"), criLine("stdout", "F", "old while down"))
	cfg2 := testConfig(root)
	cfg2.StartAt = "end"
	sink2 := &consumertest.LogsSink{}
	r2 := start(t, cfg2, sink2, st)
	defer func() { require.NoError(t, r2.Shutdown(context.Background())) }()
	got := waitBodies(t, sink2, 2)
	require.ElementsMatch(t, []string{"while down", "old while down"}, got, "a file that appeared while the agent was down is read from its start")
}

// A closed reader's file deleted and its inode given to a new file: the
// new file is read from its start with its own pod identity.
func TestReusedInodeIsANewFile(t *testing.T) {
	root := t.TempDir()
	a := filepath.Join(podDir(t, root, "nsa", "poda", "ua", "c"), "0.log")
	var sb strings.Builder
	for i := range 50 {
		sb.WriteString(criLine("stdout", "F", fmt.Sprint("a", i)))
	}
	appendFile(t, a, sb.String())
	cfg := testConfig(root)
	cfg.MaxOpenFiles = 1
	sink := &consumertest.LogsSink{}
	r := newR(t, cfg, sink)
	ctx := context.Background()
	// a second file so that a's descriptor is closed
	bpath := filepath.Join(podDir(t, root, "nsz", "podz", "uz", "c"), "0.log")
	appendFile(t, bpath, criLine("stdout", "F", "z"))
	r.poll(ctx)
	var ino uint64
	fi, _ := os.Stat(a)
	ino = fi.Sys().(*syscall.Stat_t).Ino
	for _, rd := range r.readers {
		if rd.path == a {
			r.closeFile(rd)
		}
	}
	require.NoError(t, os.Remove(a))
	var sb2 strings.Builder
	for i := range 200 {
		sb2.WriteString(criLine("stdout", "F", fmt.Sprint("b", i)))
	}
	// new file in another pod
	var c string
	for i := range 50 {
		c = filepath.Join(filepath.Dir(a), fmt.Sprint(i+1, ".log"))
		if i%2 == 1 {
			c = filepath.Join(podDir(t, root, "nsb", fmt.Sprint("podb", i), "ub", "c"), "0.log")
		}
		appendFile(t, c, sb2.String())
		fi, _ := os.Stat(c)
		if fi.Sys().(*syscall.Stat_t).Ino == ino {
			break
		}
		require.NoError(t, os.Remove(c))
		c = ""
	}
	if c == "" {
		t.Skip("no inode reuse here")
	}
	n0 := 0
	{
		g, _ := bodies(sink)
		n0 = len(g)
	}
	r.poll(ctx)
	g, _ := bodies(sink)
	var ns string
	for _, ld := range sink.AllLogs()[1:] {
		v, _ := ld.ResourceLogs().At(0).Resource().Attributes().Get("k8s.container.restart_count")
		ns = v.AsString()
	}
	require.Equal(t, 200, len(g)-n0, "the new file is read whole")
	require.Equal(t, "b0", g[n0])
	require.NotEqual(t, "", ns)
}

// One long line (a 900 KiB line in containerd's 16 KiB partials, and one
// longer than any runtime writes) does not pin its size in the file's
// buffers once it is sent: they go back to at most keepCap.
func TestLongLineBuffersAreNotKept(t *testing.T) {
	root := t.TempDir()
	path := filepath.Join(podDir(t, root, "ns", "p", "u", "c"), "0.log")
	piece := strings.Repeat("y", 16<<10)
	var b strings.Builder
	for range 56 {
		b.WriteString(criLine("stdout", "P", piece))
	}
	b.WriteString(criLine("stdout", "F", "end"))
	b.WriteString(criLine("stderr", "F", strings.Repeat("z", 300<<10)))
	b.WriteString(criLine("stdout", "F", "short"))
	appendFile(t, path, b.String())
	cfg := testConfig(root)
	cfg.Multiline.LineStartPattern = "^[a-z]"
	sink := &consumertest.LogsSink{}
	r := newR(t, cfg, sink)
	r.poll(context.Background())
	for _, rd := range r.readers {
		for i := range rd.streams {
			r.flushStream(rd, parse.Stream(i), rd.offset)
		}
		r.send(context.Background())
		assert.LessOrEqual(t, cap(rd.carry), keepCap, "carry")
		for i, s := range rd.streams {
			assert.LessOrEqual(t, cap(s.partial), keepCap, "stream %d partial", i)
		}
	}
	got, _ := bodies(sink)
	total := 0
	for _, g := range got {
		total += len(g)
	}
	assert.Equal(t, 56*len(piece)+len("end")+300<<10+len("short"), total)
}

// openCounter records how many files the receiver holds open whenever it
// sends, which it does while a poll is reading.
type openCounter struct {
	consumertest.LogsSink
	r   *logReceiver
	max int
}

func (c *openCounter) ConsumeLogs(ctx context.Context, ld plog.Logs) error {
	c.r.mu.Lock()
	c.max = max(c.max, c.r.open)
	c.r.mu.Unlock()
	return c.LogsSink.ConsumeLogs(ctx, ld)
}

// max_open_files holds within a poll: twelve files with lines to read, a
// cap of three, every line read, never more than three open while reading.
func TestMaxOpenFilesHoldsWithinAPoll(t *testing.T) {
	root := t.TempDir()
	want := 0
	for i := range 12 {
		path := filepath.Join(podDir(t, root, "ns", fmt.Sprintf("p%d", i), "u", "c"), "0.log")
		var b strings.Builder
		for j := range 50 {
			b.WriteString(criLine("stdout", "F", fmt.Sprintf("file %d line %d", i, j)))
			want++
		}
		appendFile(t, path, b.String())
	}
	cfg := testConfig(root)
	cfg.MaxOpenFiles = 3
	cfg.BatchSize = 256 // a send every few lines, while files are open
	next := &openCounter{}
	r := newR(t, cfg, nil)
	r.next, next.r = next, r
	for range 6 {
		r.poll(context.Background())
	}
	got, _ := bodies(&next.LogsSink)
	assert.Len(t, got, want, "every line of every file")
	assert.LessOrEqual(t, next.max, 3, "files open while reading")
	assert.LessOrEqual(t, r.open, 3, "files open after the polls")
}

// Under max_open_files, a new file is read even while the open ones grow
// at every poll (found in review: the smallest backlog went first, so a
// new one-line file waited behind busy files that could not be closed).
func TestMaxOpenFilesDoesNotStarveANewFile(t *testing.T) {
	root := t.TempDir()
	var busy []string
	for i := range 2 {
		busy = append(busy, filepath.Join(podDir(t, root, "ns", fmt.Sprintf("busy%d", i), "u", "c"), "0.log"))
	}
	cfg := testConfig(root)
	cfg.MaxOpenFiles = 2
	sink := &consumertest.LogsSink{}
	r := newR(t, cfg, sink)
	grow := func(n int) {
		for _, p := range busy {
			var b strings.Builder
			for k := range 20 {
				b.WriteString(criLine("stdout", "F", fmt.Sprintf("%s %d.%d", filepath.Base(filepath.Dir(filepath.Dir(p))), n, k)))
			}
			appendFile(t, p, b.String())
		}
	}
	for n := range 3 {
		grow(n)
		r.poll(context.Background())
	}
	quiet := filepath.Join(podDir(t, root, "ns", "quiet", "u", "c"), "0.log")
	appendFile(t, quiet, criLine("stdout", "F", "the only line"))
	for n := 3; n < 8; n++ {
		grow(n)
		r.poll(context.Background())
	}
	got, _ := bodies(sink)
	assert.Contains(t, got, "the only line")
	assert.Len(t, got, 2*8*20+1)
	assert.LessOrEqual(t, r.open, 2)
}
