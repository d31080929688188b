package e2e

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/vigilhq/vigil/testkit/otlpsink"
)

// The container_log receiver in the built binary, reading files laid out as
// the kubelet lays them out (<root>/<namespace>_<pod>_<uid>/<container>/
// <restart>.log), written as containerd and CRI-O (CRI) and Docker's json-file driver
// write them, rotated as the kubelet rotates them, and sent through a
// persistent sending queue to an OTLP sink.

const (
	clUIDCart    = "4f1e2d3c-0000-4a5b-8c9d-0123456789ab"
	clUIDAPI     = "9a8b7c6d-1111-4e5f-9a0b-abcdefabcdef"
	clUIDDNS     = "0c1d2e3f-2222-4a4b-9c8d-fedcba987654"
	clUIDWorker  = "77777777-3333-4c4c-8d8d-000011112222"
	clUIDIngest  = "5e5e5e5e-4444-4d4d-9e9e-333344445555"
	clUIDBatch   = "6f6f6f6f-5555-4e4e-afaf-666677778888"
	clUIDGarbage = "80808080-6666-4f4f-b0b0-99990000aaaa"
)

// clEnv is one test's setup: the pod logs directory (what /var/log/pods is
// on a node), the storage directory that holds both the receiver's offsets
// and the exporter's persistent queue, the sink, and the agent's config.
type clEnv struct {
	root, storage string
	sink          *otlpsink.Sink
	health, tel   int
	config        string
}

// clPersistentQueue is the exporter's sending queue of the node-agent
// example (deploy/examples/node-agent-logs.yaml): kept in file_storage, so
// what the receiver handed on survives a SIGKILL.
const clPersistentQueue = `
    sending_queue:
      enabled: true
      storage: file_storage`

// newCLEnv writes a config of container_log (with receiverExtra, indented
// under it) -> otlp_grpc with a persistent sending queue, retrying forever.
func newCLEnv(t *testing.T, receiverExtra string) *clEnv {
	t.Helper()
	return newCLEnvQueue(t, receiverExtra, clPersistentQueue)
}

// newCLEnvQueue is newCLEnv with the exporter's sending_queue section.
func newCLEnvQueue(t *testing.T, receiverExtra, queue string) *clEnv {
	t.Helper()
	sink, err := otlpsink.Start("127.0.0.1:0", true)
	require.NoError(t, err)
	t.Cleanup(sink.Stop)
	dir := t.TempDir()
	e := &clEnv{
		root: filepath.Join(dir, "pods"), storage: filepath.Join(dir, "storage"),
		sink: sink, health: freePort(t), tel: freePort(t),
	}
	require.NoError(t, os.MkdirAll(e.root, 0o755))
	require.NoError(t, os.MkdirAll(e.storage, 0o755))
	e.config = writeConfig(t, fmt.Sprintf(`
extensions:
  health_check:
    endpoint: 127.0.0.1:%d
  file_storage:
    directory: %s
receivers:
  container_log:
    include: [%s/*/*/*.log, %s/*/*/*.log.*]
    storage: file_storage
    poll_interval: 50ms
    retry_on_failure:
      initial_interval: 50ms
      max_interval: 500ms
      max_elapsed_time: 0
%s
exporters:
  otlp_grpc:
    endpoint: %s
    tls:
      insecure: true%s
    retry_on_failure:
      enabled: true
      initial_interval: 50ms
      max_interval: 500ms
      max_elapsed_time: 0
service:
  extensions: [health_check, file_storage]
  pipelines:
    logs:
      receivers: [container_log]
      exporters: [otlp_grpc]
%s`, e.health, e.storage, e.root, e.root, receiverExtra, sink.Addr, queue, telemetryYAML(e.tel)))
	return e
}

func (e *clEnv) start(t *testing.T) *agent {
	t.Helper()
	return startAgent(t, e.health, "--config", e.config)
}

// metric sums the agent's own metric name over the series matching match.
func (e *clEnv) metric(t *testing.T, text, name string, match map[string]string) float64 {
	t.Helper()
	require.NotEmpty(t, text, "the agent's telemetry endpoint on port %d did not answer", e.tel)
	return metricSum(text, name, match)
}

// clRecord is one log record the sink received.
type clRecord struct {
	ns, pod, uid, container, restart string
	stream, path, body               string
	ts, observed                     pcommon.Timestamp
}

func clRecords(sink *otlpsink.Sink) []clRecord {
	var out []clRecord
	str := func(m pcommon.Map, k string) string {
		if v, ok := m.Get(k); ok {
			return v.AsString()
		}
		return ""
	}
	for _, ld := range sink.Logs() {
		for _, rl := range ld.ResourceLogs().All() {
			res := rl.Resource().Attributes()
			base := clRecord{
				ns: str(res, "k8s.namespace.name"), pod: str(res, "k8s.pod.name"), uid: str(res, "k8s.pod.uid"),
				container: str(res, "k8s.container.name"), restart: str(res, "k8s.container.restart_count"),
			}
			for _, sl := range rl.ScopeLogs().All() {
				for _, lr := range sl.LogRecords().All() {
					r := base
					r.stream, r.path = str(lr.Attributes(), "log.iostream"), str(lr.Attributes(), "log.file.path")
					r.body, r.ts, r.observed = lr.Body().AsString(), lr.Timestamp(), lr.ObservedTimestamp()
					out = append(out, r)
				}
			}
		}
	}
	return out
}

// clContainer is one container's log file in the kubelet's layout.
type clContainer struct {
	ns, pod, uid, name, restart string
	docker                      bool
	// crio writes times as CRI-O does (nine digits, the node's offset)
	// where containerd trims trailing zeros and writes UTC.
	crio bool
	dir  string
}

func newCLContainer(t *testing.T, root, ns, pod, uid, name, restart string, docker bool) *clContainer {
	t.Helper()
	c := &clContainer{ns: ns, pod: pod, uid: uid, name: name, restart: restart, docker: docker,
		dir: filepath.Join(root, ns+"_"+pod+"_"+uid, name)}
	require.NoError(t, os.MkdirAll(c.dir, 0o755))
	return c
}

func (c *clContainer) path() string { return filepath.Join(c.dir, c.restart+".log") }

// clLine is one line a container wrote, as the runtime cut it: every piece
// but the last is written as a partial line (CRI tag P, a Docker "log"
// without its '\n').
type clLine struct {
	stream string
	ts     time.Time
	pieces []string
}

func (l clLine) body() string { return strings.Join(l.pieces, "") }

// encode appends piece i of l as the runtime writes it. The runtime stamps
// every piece when it reads it: piece i is stamped i µs after the first,
// whose time the record must carry.
func (c *clContainer) encode(dst []byte, l clLine, i int) []byte {
	ts := l.ts.Add(time.Duration(i) * time.Microsecond).UTC().Format(time.RFC3339Nano)
	if c.crio {
		ts = l.ts.Add(time.Duration(i) * time.Microsecond).In(clCRIOZone).Format("2006-01-02T15:04:05.000000000Z07:00")
	}
	last := i == len(l.pieces)-1
	if c.docker {
		log := l.pieces[i]
		if last {
			log += "\n"
		}
		b, err := json.Marshal(struct {
			Log    string `json:"log"`
			Stream string `json:"stream"`
			Time   string `json:"time"`
		}{log, l.stream, ts})
		if err != nil {
			panic(err) // strings only
		}
		return append(append(dst, b...), '\n')
	}
	tag := "P"
	if last {
		tag = "F"
	}
	return fmt.Appendf(dst, "%s %s %s %s\n", ts, l.stream, tag, l.pieces[i])
}

// encodeAll appends every piece of l.
func (c *clContainer) encodeAll(dst []byte, l clLine) []byte {
	for i := range l.pieces {
		dst = c.encode(dst, l, i)
	}
	return dst
}

// clCRIOZone is the node's zone in CRI-O's times.
var clCRIOZone = time.FixedZone("CET", 3600)

// chunk is the longest piece the runtime writes: 16 KiB for containerd and
// dockerd, 8 KiB for CRI-O.
func (c *clContainer) chunk() int {
	if c.crio {
		return 8 << 10
	}
	return 16 << 10
}

// clWant is what a record of one logical line must say.
type clWant struct {
	ns, pod, uid, container, restart, stream, path string
	ts                                             time.Time
}

func (c *clContainer) want(l clLine) clWant {
	return clWant{ns: c.ns, pod: c.pod, uid: c.uid, container: c.name, restart: c.restart, stream: l.stream, path: c.path(), ts: l.ts}
}

// clSplit cuts s into pieces of at most n bytes, as containerd and dockerd
// cut a line longer than their 16 KiB buffer.
func clSplit(s string, n int) []string {
	var out []string
	for len(s) > n {
		out = append(out, s[:n])
		s = s[n:]
	}
	return append(out, s)
}

// clFiller is n bytes of text that differ from line to line.
func clFiller(n, seed int) string {
	var b strings.Builder
	for b.Len() < n {
		fmt.Fprintf(&b, "%x-", seed*7919+b.Len())
	}
	return b.String()[:n]
}

// clWaitFor waits until every body of want arrived at least once.
func clWaitFor(t *testing.T, sink *otlpsink.Sink, timeout time.Duration, want map[string]clWant) {
	t.Helper()
	var missing []string
	ok := otlpsink.WaitFor(timeout, func() bool {
		got := map[string]bool{}
		for _, r := range clRecords(sink) {
			got[r.body] = true
		}
		missing = missing[:0]
		for b := range want {
			if !got[b] {
				missing = append(missing, clShort(b))
			}
		}
		return len(missing) == 0
	})
	if !ok {
		slices.Sort(missing)
		t.Fatalf("after %s, %d of %d lines have not arrived, e.g. %q", timeout, len(missing), len(want), missing[:min(5, len(missing))])
	}
}

func clShort(s string) string {
	if len(s) > 80 {
		return s[:80] + fmt.Sprintf("...(%d bytes)", len(s))
	}
	return s
}

// clCheckOnce checks that every wanted line arrived exactly once, with the
// identity of its file (its path too, with checkPath), its stream and its
// time, and that nothing else arrived.
func clCheckOnce(t *testing.T, recs []clRecord, want map[string]clWant, checkPath bool) {
	t.Helper()
	seen := map[string]int{}
	var extra []string
	bad := 0
	for _, r := range recs {
		w, ok := want[r.body]
		if !ok {
			extra = append(extra, fmt.Sprintf("%s: %.60q", filepath.Base(r.path), r.body))
			continue
		}
		seen[r.body]++
		got := clWant{ns: r.ns, pod: r.pod, uid: r.uid, container: r.container, restart: r.restart, stream: r.stream, path: r.path, ts: r.ts.AsTime()}
		if !checkPath {
			got.path = w.path
		}
		if !got.ts.Equal(w.ts) || got.ns != w.ns || got.pod != w.pod || got.uid != w.uid || got.container != w.container ||
			got.restart != w.restart || got.stream != w.stream || got.path != w.path {
			if bad++; bad <= 5 {
				t.Errorf("line %q arrived as %+v, want %+v", clShort(r.body), got, w)
			}
		}
	}
	dups := 0
	for b, n := range seen {
		if n != 1 {
			if dups++; dups <= 5 {
				t.Errorf("line %q arrived %d times", clShort(b), n)
			}
		}
	}
	assert.Zero(t, bad, "lines with a wrong identity, stream or time")
	assert.Zero(t, dups, "lines that arrived more than once")
	assert.Len(t, seen, len(want), "distinct wanted lines received")
	if len(extra) > 0 {
		t.Errorf("%d records of no line written, e.g. %q", len(extra), extra[:min(3, len(extra))])
	}
}

// Every line of several pods' CRI (containerd and CRI-O) and Docker
// json-file logs arrives once, with its pod's identity, its stream and the
// runtime's time: partial lines merged (across polls, and with the other
// stream's lines between their pieces), 40 KiB lines cut into 16 KiB (CRI-O:
// 8 KiB) pieces put back together, writes cut anywhere, a file found at the
// first poll and one created later.
func TestContainerLogFormats(t *testing.T) {
	e := newCLEnv(t, "")
	rng := rand.New(rand.NewPCG(1, 2))
	crio := newCLContainer(t, e.root, "ingest", "ingest-0", clUIDIngest, "ingest", "3", false)
	crio.crio = true
	cs := []*clContainer{
		newCLContainer(t, e.root, "shop", "cart-7f9c6d5b8-x2x9q", clUIDCart, "cart", "0", false),
		newCLContainer(t, e.root, "shop", "cart-7f9c6d5b8-x2x9q", clUIDCart, "istio-proxy", "0", false),
		newCLContainer(t, e.root, "payments", "api-0", clUIDAPI, "api", "2", true),
		newCLContainer(t, e.root, "kube-system", "coredns-5d78c9869d-abcde", clUIDDNS, "coredns", "0", true),
		crio,
		// Appears once the agent runs: a new file, read from its beginning.
		newCLContainer(t, e.root, "shop", "worker-6b7c", clUIDWorker, "worker", "1", false),
	}
	want := map[string]clWant{}
	data := make([][]byte, len(cs))
	for ci, c := range cs {
		base := time.Date(2026, 12, 7, 10, ci, 0, 0, time.UTC)
		var q [2][][]byte // the physical lines of stdout and stderr
		for i := range 120 {
			stream, s := "stdout", 0
			if i%3 == 1 {
				stream, s = "stderr", 1
			}
			id := fmt.Sprintf("%s/%s %s #%d", c.pod, c.name, stream, i)
			l := clLine{stream: stream, ts: base.Add(time.Duration(i)*1500*time.Microsecond + 789)}
			switch i % 20 {
			case 7:
				l.pieces = clSplit(id+" "+clFiller(40<<10-len(id)-1, ci*1000+i), c.chunk())
			case 13:
				l.pieces = []string{id + " part-a,", " part-b,", ` part-c "quoted" <tag> \back\slash é✓`}
			default:
				l.pieces = []string{fmt.Sprintf(`%s level=info msg="request served" path=/api/v1/items?id=%d`, id, i)}
			}
			want[l.body()] = c.want(l)
			for p := range l.pieces {
				q[s] = append(q[s], c.encode(nil, l, p))
			}
		}
		// The runtime copies stdout and stderr in two goroutines: their
		// physical lines interleave, a partial line's pieces with the
		// other stream's lines between them.
		for len(q[0])+len(q[1]) > 0 {
			s := rng.IntN(2)
			if len(q[s]) == 0 {
				s = 1 - s
			}
			data[ci] = append(data[ci], q[s][0]...)
			q[s] = q[s][1:]
		}
	}
	files := make([]*os.File, len(cs))
	open := func(i int) {
		f, err := os.OpenFile(cs[i].path(), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		require.NoError(t, err)
		t.Cleanup(func() { _ = f.Close() })
		files[i] = f
	}
	write := func(i, n int) {
		n = min(n, len(data[i]))
		_, err := files[i].Write(data[i][:n])
		require.NoError(t, err)
		data[i] = data[i][n:]
	}
	// 40% of every file but the late one before the start, cut mid-line.
	for i := range cs[:len(cs)-1] {
		open(i)
		write(i, len(data[i])*2/5)
	}
	t0 := time.Now()
	e.start(t)
	// The rest in writes of up to 12 KiB every 15 ms: polls see physical
	// lines without their newline and partial lines without their end.
	for round := 0; ; round++ {
		if round == 5 {
			open(len(cs) - 1)
		}
		left := 0
		for i := range cs {
			if files[i] != nil && len(data[i]) > 0 {
				write(i, 1+rng.IntN(12<<10))
				left += len(data[i])
			}
		}
		if left == 0 && round >= 5 {
			break
		}
		time.Sleep(15 * time.Millisecond)
	}
	clWaitFor(t, e.sink, 20*time.Second, want)
	took := time.Since(t0)
	time.Sleep(500 * time.Millisecond) // room for a duplicate to show
	recs := clRecords(e.sink)
	clCheckOnce(t, recs, want, true)
	t.Logf("%d lines of %d files (CRI and Docker, %d records) arrived once each, %s after the start", len(want), len(cs), len(recs), took.Round(time.Millisecond))
}

// clRuntime writes one container's log as containerd does while the kubelet
// rotates it: an O_APPEND descriptor held open, and after the kubelet
// renamed the file a few more lines into the renamed file before the
// runtime reopens <restart>.log (the kubelet's ReopenContainerLog call,
// served between two writes).
type clRuntime struct {
	t *testing.T
	c *clContainer

	mu       sync.Mutex
	f        *os.File
	lines    []clLine // every line written, in order
	reopenIn int      // lines to write into the renamed file before reopening
	renamed  int      // lines written into a renamed file
}

func newCLRuntime(t *testing.T, c *clContainer) *clRuntime {
	t.Helper()
	r := &clRuntime{t: t, c: c}
	r.reopen()
	t.Cleanup(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		_ = r.f.Close()
	})
	return r
}

func (r *clRuntime) reopen() {
	if r.f != nil {
		_ = r.f.Close()
	}
	f, err := os.OpenFile(r.c.path(), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		r.t.Errorf("runtime cannot reopen %s: %v", r.c.path(), err)
		return
	}
	r.f = f
}

// write appends one line (all its pieces in one write).
func (r *clRuntime) write(l clLine) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writeLocked(r.c.encodeAll(nil, l))
	r.lines = append(r.lines, l)
}

func (r *clRuntime) writeLocked(b []byte) {
	if _, err := r.f.Write(b); err != nil {
		r.t.Errorf("runtime cannot write %s: %v", r.c.path(), err)
	}
	if r.reopenIn > 0 {
		r.renamed++
		if r.reopenIn--; r.reopenIn == 0 {
			r.reopen()
		}
	}
}

// line makes line seq of the runtime's steady stream: stderr every fourth,
// a line in three pieces every 25th.
func (r *clRuntime) line(prefix string, seq int) clLine {
	stream := "stdout"
	if seq%4 == 3 {
		stream = "stderr"
	}
	id := fmt.Sprintf("%s %s/%s #%d", prefix, r.c.pod, r.c.name, seq)
	l := clLine{stream: stream, ts: time.Now().UTC()}
	if seq%25 == 24 {
		l.pieces = []string{id + " a,", " b,", " c"}
	} else {
		l.pieces = []string{id + ` level=info msg="steady" ` + clFiller(60, seq)}
	}
	return l
}

// run writes a line every tick until stop is closed.
func (r *clRuntime) run(prefix string, tick time.Duration, stop <-chan struct{}, wg *sync.WaitGroup) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		tk := time.NewTicker(tick)
		defer tk.Stop()
		for seq := 0; ; seq++ {
			select {
			case <-stop:
				return
			case <-tk.C:
			}
			r.write(r.line(prefix, seq))
		}
	}()
}

func (r *clRuntime) snapshot() []clLine {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.lines)
}

// rotate does what the kubelet's container log manager does when the log
// passed containerLogMaxSize: compress the rotated files not compressed
// yet, rename <restart>.log to <restart>.log.<YYYYMMDD-hhmmss>, and have
// the runtime reopen (after a few more lines into the renamed file).
func (r *clRuntime) rotate(t *testing.T, stamp time.Time, compressFor time.Duration) {
	t.Helper()
	clKubeletCompress(t, r.c.path(), compressFor)
	r.mu.Lock()
	defer r.mu.Unlock()
	require.NoError(t, os.Rename(r.c.path(), r.c.path()+"."+stamp.Format("20060102-150405")))
	r.reopenIn = 5
}

// clKubeletCompress compresses the rotated files of log as the kubelet's
// compressLog does: gzip into <file>.tmp, rename it to <file>.gz, remove
// <file>. compressFor is how long the .tmp exists before its rename: the
// kubelet takes that long for a large log (10 MiB, containerLogMaxSize's
// default, takes it a few hundred ms on a busy node).
func clKubeletCompress(t *testing.T, log string, compressFor time.Duration) {
	t.Helper()
	rotated, err := filepath.Glob(log + ".*")
	require.NoError(t, err)
	for _, p := range rotated {
		if strings.HasSuffix(p, ".gz") || strings.HasSuffix(p, ".tmp") {
			continue
		}
		in, err := os.Open(p)
		require.NoError(t, err)
		out, err := os.OpenFile(p+".tmp", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		require.NoError(t, err)
		w := gzip.NewWriter(out)
		_, err = io.Copy(w, in)
		require.NoError(t, err)
		require.NoError(t, w.Close())
		require.NoError(t, out.Close())
		_ = in.Close()
		time.Sleep(compressFor)
		require.NoError(t, os.Rename(p+".tmp", p+".gz"))
		require.NoError(t, os.Remove(p))
	}
}

// Rotation as the kubelet does it, while two runtimes (CRI and Docker)
// write at a steady rate: rename to <restart>.log.<timestamp>, lines still
// written into the renamed file until the runtime reopens, a new
// <restart>.log, and at the next rotation the renamed file gzipped and
// removed. Every line arrives once; nothing is read from the .gz files or
// the kubelet's .tmp files.
func TestContainerLogRotation(t *testing.T) {
	e := newCLEnv(t, "")
	rts := []*clRuntime{
		newCLRuntime(t, newCLContainer(t, e.root, "shop", "cart-7f9c6d5b8-x2x9q", clUIDCart, "cart", "0", false)),
		newCLRuntime(t, newCLContainer(t, e.root, "payments", "api-0", clUIDAPI, "api", "0", true)),
	}
	a := e.start(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, r := range rts {
		r.run("rot", 2*time.Millisecond, stop, &wg)
	}
	const rotations = 4
	stamp := time.Date(2026, 12, 7, 11, 0, 0, 0, time.UTC)
	for k := range rotations {
		time.Sleep(500 * time.Millisecond)
		for _, r := range rts {
			r.rotate(t, stamp.Add(time.Duration(k)*time.Minute), 150*time.Millisecond)
		}
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	// The kubelet's next rotation compresses the last renamed file.
	for _, r := range rts {
		clKubeletCompress(t, r.c.path(), 150*time.Millisecond)
	}
	want := map[string]clWant{}
	renamed := 0
	for _, r := range rts {
		for _, l := range r.snapshot() {
			want[l.body()] = r.c.want(l)
		}
		renamed += r.renamed
	}
	clWaitFor(t, e.sink, 20*time.Second, want)
	time.Sleep(500 * time.Millisecond)
	recs := clRecords(e.sink)
	fromArchives := map[string]int{} // records per .gz or .tmp file
	var logRecs []clRecord
	for _, r := range recs {
		if strings.HasSuffix(r.path, ".gz") || strings.HasSuffix(r.path, ".tmp") {
			fromArchives[filepath.Base(filepath.Dir(r.path))+"/"+filepath.Base(r.path)]++
		} else {
			logRecs = append(logRecs, r)
		}
	}
	assert.Empty(t, fromArchives, "records read from the kubelet's compressed files or their .tmp while it compressed them")
	clCheckOnce(t, logRecs, want, false)

	text := scrape(e.tel)
	rotated := e.metric(t, text, "otelcol_receiver_container_log_rotations", map[string]string{"kind": "rotated"})
	parseFailed := e.metric(t, text, "otelcol_receiver_container_log_lines", map[string]string{"outcome": "parse_failed"})
	assert.GreaterOrEqual(t, rotated, float64(rotations*len(rts)), "rotations counted")
	assert.Zero(t, parseFailed, "lines of neither format")
	select {
	case <-a.done:
		t.Fatalf("the agent exited:\n%s", tail(a.log.String(), 4000))
	default:
	}
	t.Logf("%d lines (%d written into a renamed file before the reopen), %d rotations of each of %d files; %d records of archives; rotations{kind=rotated}=%.0f, lines{parse_failed}=%.0f",
		len(want), renamed, rotations, len(rts), len(recs)-len(logRecs), rotated, parseFailed)
}

// copytruncate: the file is cut to zero under the runtime's O_APPEND
// descriptor while it writes. The first cut comes once every line written
// so far arrived, the second while the runtime writes on. Every line
// written after a cut arrives once; none arrives twice; only lines written
// in the moment before the second cut may be lost (they are in the copy,
// as with any copytruncate).
func TestContainerLogTruncation(t *testing.T) {
	e := newCLEnv(t, "")
	r := newCLRuntime(t, newCLContainer(t, e.root, "batch", "report-28713", clUIDBatch, "report", "0", false))
	e.start(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	r.run("trunc", 2*time.Millisecond, stop, &wg)
	wantOf := func(lines []clLine) map[string]clWant {
		m := map[string]clWant{}
		for _, l := range lines {
			m[l.body()] = r.c.want(l)
		}
		return m
	}
	var cuts []int // index of the first line after each cut
	cut := func(settle bool) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if settle {
			clWaitFor(t, e.sink, 10*time.Second, wantOf(r.lines))
		}
		require.NoError(t, os.Truncate(r.c.path(), 0))
		cuts = append(cuts, len(r.lines))
	}
	time.Sleep(800 * time.Millisecond)
	cut(true)
	time.Sleep(800 * time.Millisecond)
	cut(false)
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	lines := r.snapshot()
	sure, between := wantOf(lines[:cuts[0]]), wantOf(lines[cuts[0]:cuts[1]])
	for b, w := range wantOf(lines[cuts[1]:]) {
		sure[b] = w
	}
	clWaitFor(t, e.sink, 20*time.Second, sure)
	time.Sleep(500 * time.Millisecond)
	recs := clRecords(e.sink)
	var sureRecs []clRecord
	betweenSeen := map[string]int{}
	for _, rec := range recs {
		if _, ok := between[rec.body]; ok {
			betweenSeen[rec.body]++
		} else {
			sureRecs = append(sureRecs, rec)
		}
	}
	clCheckOnce(t, sureRecs, sure, true)
	for b, n := range betweenSeen {
		assert.Equalf(t, 1, n, "line %q arrived %d times", clShort(b), n)
	}
	lost := len(between) - len(betweenSeen)
	assert.Less(t, lost, len(between)/4, "lines between the cuts lost: more than the moment before the second cut")
	text := scrape(e.tel)
	truncated := e.metric(t, text, "otelcol_receiver_container_log_rotations", map[string]string{"kind": "truncated"})
	assert.GreaterOrEqual(t, truncated, float64(len(cuts)), "truncations counted")
	t.Logf("%d lines, 2 cuts: all once but %d written just before the second cut (not read yet, lost with copytruncate); rotations{kind=truncated}=%.0f",
		len(lines), lost, truncated)
}

// SIGKILL while the receiver works through a backlog, with the runtimes
// writing on while the agent is down: after the restart on the same storage
// every line arrives, and the receiver reads again at most the batch it had
// handed on but not checkpointed. With the persistent sending queue the
// exporter also sends again the requests its consumers had in flight; with
// wait_for_result (the receiver's hand-off waits for the backend) nothing
// else is duplicated.
func TestContainerLogKill(t *testing.T) {
	for _, v := range []struct {
		name, queue string
		inFlight    int // requests the exporter may send again after a restart
	}{
		{"persistent_queue", clPersistentQueue, 10}, // num_consumers
		{"wait_for_result", "\n    sending_queue:\n      enabled: true\n      wait_for_result: true", 0},
	} {
		t.Run(v.name, func(t *testing.T) { clKillRestart(t, v.queue, v.inFlight) })
	}
}

func clKillRestart(t *testing.T, queue string, inFlight int) {
	const batchSize, readBuffer, maxLogSize = 64 << 10, 64 << 10, 64 << 10
	e := newCLEnvQueue(t, fmt.Sprintf("    batch_size: %d\n    read_buffer_size: %d\n    max_log_size: %d", batchSize, readBuffer, maxLogSize), queue)
	rts := []*clRuntime{
		newCLRuntime(t, newCLContainer(t, e.root, "shop", "cart-7f9c6d5b8-x2x9q", clUIDCart, "cart", "0", false)),
		newCLRuntime(t, newCLContainer(t, e.root, "shop", "cart-7f9c6d5b8-x2x9q", clUIDCart, "istio-proxy", "0", false)),
		newCLRuntime(t, newCLContainer(t, e.root, "ingest", "ingest-0", clUIDIngest, "ingest", "0", false)),
		newCLRuntime(t, newCLContainer(t, e.root, "payments", "api-0", clUIDAPI, "api", "1", true)),
	}
	a := e.start(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, r := range rts {
		r.run("kill", time.Millisecond, stop, &wg)
	}
	time.Sleep(time.Second)
	// A backlog of 4 MiB in one write (a burst of a chatty container), so
	// the kill lands while the receiver sends batch after batch.
	burst := rts[2]
	burst.mu.Lock()
	var b []byte
	for i := 0; len(b) < 4<<20; i++ {
		l := burst.line("burst", i)
		b = burst.c.encodeAll(b, l)
		burst.lines = append(burst.lines, l)
	}
	burst.writeLocked(b)
	burst.mu.Unlock()
	time.Sleep(150 * time.Millisecond)
	atKill := e.sink.LogRecords.Load()
	a.Kill()
	killedAt := time.Now()
	// The runtimes write on, and the kubelet rotates one log: its
	// checkpoint follows the file to its new name.
	time.Sleep(300 * time.Millisecond)
	rts[0].rotate(t, time.Date(2026, 12, 7, 13, 0, 0, 0, time.UTC), 0)
	time.Sleep(400 * time.Millisecond)
	a.Restart()
	downFor := time.Since(killedAt)
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()

	want := map[string]clWant{}
	for _, r := range rts {
		for _, l := range r.snapshot() {
			want[l.body()] = r.c.want(l)
		}
	}
	clWaitFor(t, e.sink, 30*time.Second, want)
	time.Sleep(time.Second)
	recs := clRecords(e.sink)
	// A record read again after the restart has its own observed time; one
	// the exporter's queue sent again is the same record, same observed time.
	copies := map[string]map[pcommon.Timestamp]int{}
	for _, r := range recs {
		_, ok := want[r.body]
		require.Truef(t, ok, "a record of no line written: %s: %q", r.path, clShort(r.body))
		if copies[r.body] == nil {
			copies[r.body] = map[pcommon.Timestamp]int{}
		}
		copies[r.body][r.observed]++
	}
	var reread, resent, rereadBytes int
	for body, byObs := range copies {
		reread += len(byObs) - 1
		rereadBytes += (len(byObs) - 1) * len(body)
		for _, n := range byObs {
			resent += n - 1
		}
	}
	require.Len(t, copies, len(want), "every line arrives")
	largest, largestBytes := 0, 0 // records and body bytes of one request
	for _, ld := range e.sink.Logs() {
		n := 0
		for _, rl := range ld.ResourceLogs().All() {
			for _, sl := range rl.ScopeLogs().All() {
				for _, lr := range sl.LogRecords().All() {
					n += len(lr.Body().AsString())
				}
			}
		}
		if n > largestBytes {
			largest, largestBytes = ld.LogRecordCount(), n
		}
	}
	// One batch: batch_size, overshot by at most one read (the check comes
	// after a read) and the line that read ended in.
	assert.LessOrEqual(t, rereadBytes, batchSize+readBuffer+maxLogSize,
		"bytes of lines read again after the restart (%d lines): more than one batch", reread)
	// The exporter sends again what its queue's consumers had in flight,
	// each request at most one of the receiver's batches.
	minBody := maxLogSize
	for b := range want {
		minBody = min(minBody, len(b))
	}
	perBatch := (batchSize + readBuffer + maxLogSize) / minBody
	assert.LessOrEqual(t, resent, inFlight*perBatch, "records the exporter sent again: more than %d batches", inFlight)
	t.Logf("%d lines, %d records; killed with %d records at the sink, down %s; duplicates: %d lines read again after the restart (%d bytes, bound %d), %d records sent again by the exporter; largest request %d records, %d bytes of bodies",
		len(want), len(recs), atKill, downFor.Round(time.Millisecond), reread, rereadBytes, batchSize+readBuffer+maxLogSize, resent, largest, largestBytes)
}

// Bad input does not stop the agent and costs nothing but itself: a file of
// random bytes (NULs included), a 10 MiB line with its newline long after,
// a pod's directory removed while its file is read and written, a file
// outside the kubelet's layout. The good files' lines arrive once, the
// 10 MiB line arrives whole in pieces of at most max_log_size, and the
// receiver's counters say what happened.
func TestContainerLogBadInput(t *testing.T) {
	e := newCLEnv(t, "    max_log_size: 1MiB")
	rng := rand.New(rand.NewPCG(3, 4))
	good := []*clRuntime{
		newCLRuntime(t, newCLContainer(t, e.root, "shop", "cart-7f9c6d5b8-x2x9q", clUIDCart, "cart", "0", false)),
		newCLRuntime(t, newCLContainer(t, e.root, "payments", "api-0", clUIDAPI, "api", "0", true)),
	}
	doomed := newCLRuntime(t, newCLContainer(t, e.root, "batch", "report-28713", clUIDBatch, "report", "0", false))
	big := newCLContainer(t, e.root, "ingest", "ingest-0", clUIDIngest, "ingest", "0", false)
	garbage := newCLContainer(t, e.root, "junk", "junk-0", clUIDGarbage, "junk", "0", false)
	// Matched by the include glob, but not the kubelet's layout: read, with
	// no pod identity.
	stray := &clContainer{name: "x", restart: "0", dir: filepath.Join(e.root, "not-a-pod", "x")}
	require.NoError(t, os.MkdirAll(stray.dir, 0o755))

	junk := make([]byte, 512<<10)
	for i := range junk {
		junk[i] = byte(rng.IntN(256))
	}
	require.NoError(t, os.WriteFile(garbage.path(), junk, 0o644))
	strayWant := map[string]bool{}
	var strayData []byte
	for i := range 20 {
		l := clLine{stream: "stdout", ts: time.Now().UTC(), pieces: []string{fmt.Sprintf("stray line %d", i)}}
		strayData = stray.encodeAll(strayData, l)
		strayWant[l.body()] = true
	}
	require.NoError(t, os.WriteFile(stray.path(), strayData, 0o644))

	a := e.start(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, r := range good {
		r.run("good", 2*time.Millisecond, stop, &wg)
	}
	stopDoomed := make(chan struct{})
	var wgDoomed sync.WaitGroup
	doomed.run("doomed", time.Millisecond, stopDoomed, &wgDoomed)

	// The 10 MiB line: its CRI header, then 1 MiB writes 30 ms apart, its
	// newline, then a line of normal size. Its content is 16-byte tokens
	// "<15 hex digits>|", so every piece is found in it.
	var content strings.Builder
	for i := 0; content.Len() < 10<<20; i++ {
		fmt.Fprintf(&content, "%015x|", i)
	}
	bigContent := content.String()
	bigTS := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	bf, err := os.OpenFile(big.path(), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	require.NoError(t, err)
	defer bf.Close()
	_, err = fmt.Fprintf(bf, "%s stdout F ", bigTS.Format(time.RFC3339Nano))
	require.NoError(t, err)
	for rest := bigContent; rest != ""; {
		n := min(1<<20, len(rest))
		_, err = bf.WriteString(rest[:n])
		require.NoError(t, err)
		rest = rest[n:]
		time.Sleep(30 * time.Millisecond)
	}
	after := clLine{stream: "stderr", ts: bigTS.Add(time.Second), pieces: []string{"the line after the 10 MiB one"}}
	_, err = bf.Write(append([]byte("\n"), big.encodeAll(nil, after)...))
	require.NoError(t, err)

	// The pod is deleted: its log directory removed while the runtime still
	// writes (to the unlinked file) and the agent reads a 2 MiB backlog.
	doomed.mu.Lock()
	var burst []byte
	for i := 0; len(burst) < 2<<20; i++ {
		l := doomed.line("doomed-burst", i)
		burst = doomed.c.encodeAll(burst, l)
		doomed.lines = append(doomed.lines, l)
	}
	doomed.writeLocked(burst)
	doomed.mu.Unlock()
	time.Sleep(60 * time.Millisecond)
	doomed.mu.Lock()
	require.NoError(t, os.RemoveAll(filepath.Dir(doomed.c.dir)))
	beforeRemoval := len(doomed.lines)
	doomed.mu.Unlock()
	time.Sleep(200 * time.Millisecond)
	close(stopDoomed)
	wgDoomed.Wait()

	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()

	want := map[string]clWant{after.body(): big.want(after)}
	for _, r := range good {
		for _, l := range r.snapshot() {
			want[l.body()] = r.c.want(l)
		}
	}
	clWaitFor(t, e.sink, 30*time.Second, want)
	require.True(t, otlpsink.WaitFor(20*time.Second, func() bool {
		n := 0
		for _, r := range clRecords(e.sink) {
			if r.path == big.path() && r.body != after.body() {
				n += len(r.body)
			}
		}
		return n >= len(bigContent)
	}), "the 10 MiB line has not arrived whole")
	time.Sleep(500 * time.Millisecond)

	recs := clRecords(e.sink)
	var goodRecs, bigPieces []clRecord
	doomedSeen := map[string]int{}
	strayGot := map[string]int{}
	junkRecs := 0
	for _, r := range recs {
		switch {
		case r.path == big.path() && r.body != after.body():
			bigPieces = append(bigPieces, r)
		case r.path == garbage.path():
			junkRecs++
		case r.path == stray.path():
			strayGot[r.body]++
			assert.Empty(t, r.ns+r.pod+r.uid+r.container+r.restart, "pod identity of a file outside the layout")
		case strings.HasPrefix(r.path, doomed.c.dir):
			doomedSeen[r.body]++
		default:
			goodRecs = append(goodRecs, r)
		}
	}
	clCheckOnce(t, goodRecs, want, true)

	// The 10 MiB line: pieces of at most max_log_size that tile it.
	type piece struct{ at, n int }
	var pieces []piece
	sizes := map[int]int{}
	attributed := 0 // pieces with the line's stream and time
	for _, r := range bigPieces {
		if r.stream == "stdout" && r.ts.AsTime().Equal(bigTS) {
			attributed++
		}
		at := strings.Index(bigContent, r.body)
		require.GreaterOrEqualf(t, at, 0, "a piece of the 10 MiB line (%d bytes) is not part of it: %q", len(r.body), clShort(r.body))
		assert.LessOrEqual(t, len(r.body), 1<<20, "a piece longer than max_log_size")
		pieces = append(pieces, piece{at, len(r.body)})
		sizes[len(r.body)]++
	}
	slices.SortFunc(pieces, func(x, y piece) int { return x.at - y.at })
	end := 0
	for _, p := range pieces {
		require.Equalf(t, end, p.at, "the 10 MiB line's pieces do not tile it (sizes %v)", sizes)
		end += p.n
	}
	require.Equal(t, len(bigContent), end, "the 10 MiB line's pieces cover it")

	// The removed pod: lines written before the removal all arrive (the
	// agent holds the file open), none twice, and what arrives of the lines
	// written after it is a prefix of them.
	doomedLines := doomed.snapshot()
	arrived := 0
	for i, l := range doomedLines {
		n := doomedSeen[l.body()]
		assert.LessOrEqualf(t, n, 1, "line %q of the removed pod arrived %d times", clShort(l.body()), n)
		if i < beforeRemoval {
			assert.Equalf(t, 1, n, "line %d of %d written before the removal did not arrive", i, beforeRemoval)
		}
		if n > 0 {
			assert.Equalf(t, i, arrived, "lines of the removed pod arrived with a gap before line %d", i)
			arrived++
		}
	}
	for b := range strayWant {
		assert.Equalf(t, 1, strayGot[b], "line %q of the file outside the layout", b)
	}

	// Still running and healthy.
	select {
	case <-a.done:
		t.Fatalf("the agent exited:\n%s", tail(a.log.String(), 4000))
	default:
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", e.health))
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "health check")

	text := scrape(e.tel)
	lines := func(outcome string) float64 {
		return e.metric(t, text, "otelcol_receiver_container_log_lines", map[string]string{"outcome": outcome})
	}
	rotations := func(kind string) float64 {
		return e.metric(t, text, "otelcol_receiver_container_log_rotations", map[string]string{"kind": kind})
	}
	assert.Positive(t, lines("parse_failed"), "lines of neither format (the random bytes)")
	assert.GreaterOrEqual(t, lines("split"), float64(len(bigContent)/(1<<20)-1), "cuts of the 10 MiB line")
	assert.Positive(t, lines("delivered"), "delivered")
	t.Logf("random bytes: %d records; 10 MiB line: %d pieces (%d with its stream and time), sizes %v; removed pod: %d of %d lines arrived (%d written before the removal); lines{delivered=%.0f split=%.0f parse_failed=%.0f skipped=%.0f dropped=%.0f} rotations{rotated=%.0f truncated=%.0f removed=%.0f}",
		junkRecs, len(pieces), attributed, sizes, arrived, len(doomedLines), beforeRemoval,
		lines("delivered"), lines("split"), lines("parse_failed"), lines("skipped"), lines("dropped"),
		rotations("rotated"), rotations("truncated"), rotations("removed"))
}
