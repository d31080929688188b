package containerlogreceiver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/vigilhq/vigil/receivers/containerlogreceiver/internal/metadata"
)

// podDir makes /var/log/pods/<ns>_<pod>_<uid>/<container> under root.
func podDir(t testing.TB, root, ns, pod, uid, container string) string {
	t.Helper()
	d := filepath.Join(root, "var", "log", "pods", ns+"_"+pod+"_"+uid, container)
	require.NoError(t, os.MkdirAll(d, 0o755))
	return d
}

func criLine(stream, tag, content string) string {
	return "2026-12-07T10:00:00.123456789Z " + stream + " " + tag + " " + content + "\n"
}

func appendFile(t testing.TB, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	require.NoError(t, err)
	_, err = f.WriteString(s)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

func testConfig(root string) *Config {
	cfg := createDefaultConfig().(*Config)
	cfg.Include = []string{root + "/var/log/pods/*/*/*.log", root + "/var/log/pods/*/*/*.log.*"}
	cfg.PollInterval = 20 * time.Millisecond
	cfg.RetryOnFailure.InitialInterval = 10 * time.Millisecond
	cfg.RetryOnFailure.MaxInterval = 50 * time.Millisecond
	return cfg
}

// memStorage is a storage extension holding its values in memory, shared
// by the receivers a test starts one after the other (a restart).
type memStorage struct {
	mu sync.Mutex
	kv map[string][]byte
	// failSets: that many writes fail (a full disk), then they succeed.
	failSets int
}

func (m *memStorage) Start(context.Context, component.Host) error { return nil }
func (m *memStorage) Shutdown(context.Context) error              { return nil }
func (m *memStorage) GetClient(context.Context, component.Kind, component.ID, string) (storage.Client, error) {
	return m, nil
}
func (m *memStorage) Get(_ context.Context, k string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]byte(nil), m.kv[k]...), nil
}
func (m *memStorage) Set(_ context.Context, k string, v []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failSets > 0 {
		m.failSets--
		return errors.New("write /var/lib/vigil/storage: no space left on device")
	}
	m.kv[k] = append([]byte(nil), v...)
	return nil
}
func (m *memStorage) Delete(_ context.Context, k string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.kv, k)
	return nil
}
func (m *memStorage) Batch(context.Context, ...*storage.Operation) error {
	return errors.New("not used")
}
func (m *memStorage) Close(context.Context) error { return nil }

type hostWith struct {
	component.Host
	exts map[component.ID]component.Component
}

func (h hostWith) GetExtensions() map[component.ID]component.Component { return h.exts }

var storageID = component.MustNewID("file_storage")

func start(t *testing.T, cfg *Config, next consumer.Logs, st *memStorage) *logReceiver {
	t.Helper()
	set := receivertest.NewNopSettings(metadata.Type)
	r, err := newReceiver(set, cfg, next)
	require.NoError(t, err)
	host := component.Host(componenttest.NewNopHost())
	if st != nil {
		cfg.Storage = &storageID
		host = hostWith{Host: host, exts: map[component.ID]component.Component{storageID: extension.Extension(st)}}
	}
	require.NoError(t, r.Start(context.Background(), host))
	return r
}

// bodies lists every record's body and its resource's pod, in order.
func bodies(sink *consumertest.LogsSink) (out []string, pods map[string]string) {
	pods = map[string]string{}
	for _, ld := range sink.AllLogs() {
		for _, rl := range ld.ResourceLogs().All() {
			rl.Resource().Attributes().Range(func(k string, v pcommon.Value) bool {
				pods[k] = v.AsString()
				return true
			})
			for _, sl := range rl.ScopeLogs().All() {
				for _, rec := range sl.LogRecords().All() {
					out = append(out, rec.Body().AsString())
				}
			}
		}
	}
	return out, pods
}

func waitBodies(t *testing.T, sink *consumertest.LogsSink, n int) []string {
	t.Helper()
	var got []string
	require.Eventually(t, func() bool {
		got, _ = bodies(sink)
		return len(got) >= n
	}, 10*time.Second, 10*time.Millisecond, "wanted %d records", n)
	return got
}

func TestReadsCRIWithPartialLinesAndPodIdentity(t *testing.T) {
	root := t.TempDir()
	dir := podDir(t, root, "shop", "cart-7d9", "0b9e5f0c-1d2e-4f3a-9b8c-7d6e5f4a3b2c", "app")
	appendFile(t, filepath.Join(dir, "0.log"),
		criLine("stdout", "F", "first")+
			criLine("stdout", "P", "a long ")+criLine("stderr", "F", "an error")+criLine("stdout", "F", "line merged")+
			criLine("stdout", "F", ""))
	sink := &consumertest.LogsSink{}
	r := start(t, testConfig(root), sink, nil)
	defer func() { require.NoError(t, r.Shutdown(context.Background())) }()
	got := waitBodies(t, sink, 4)
	require.Equal(t, []string{"first", "an error", "a long line merged", ""}, got)
	_, attrs := bodies(sink)
	require.Equal(t, "shop", attrs["k8s.namespace.name"])
	require.Equal(t, "cart-7d9", attrs["k8s.pod.name"])
	require.Equal(t, "0b9e5f0c-1d2e-4f3a-9b8c-7d6e5f4a3b2c", attrs["k8s.pod.uid"])
	require.Equal(t, "app", attrs["k8s.container.name"])
	require.Equal(t, "0", attrs["k8s.container.restart_count"])
	rec := sink.AllLogs()[0].ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0)
	stream, _ := rec.Attributes().Get("log.iostream")
	require.Equal(t, "stdout", stream.AsString())
	require.Equal(t, int64(1796637600123456789), rec.Timestamp().AsTime().UnixNano())
}

func TestFollowsRotationAndTruncation(t *testing.T) {
	root := t.TempDir()
	dir := podDir(t, root, "shop", "cart", "uid-1", "app")
	live := filepath.Join(dir, "0.log")
	var want []string
	write := func(from, to int) {
		var b strings.Builder
		for i := from; i < to; i++ {
			fmt.Fprint(&b, criLine("stdout", "F", fmt.Sprintf("line %d", i)))
			want = append(want, fmt.Sprintf("line %d", i))
		}
		appendFile(t, live, b.String())
	}
	write(0, 100)
	sink := &consumertest.LogsSink{}
	r := start(t, testConfig(root), sink, nil)
	defer func() { require.NoError(t, r.Shutdown(context.Background())) }()
	waitBodies(t, sink, 100)

	// As the kubelet rotates: the runtime still writes to the renamed file
	// until it reopens, then a new file takes the name.
	rotated := live + ".20261207-100000"
	require.NoError(t, os.Rename(live, rotated))
	f, err := os.OpenFile(rotated, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString(criLine("stdout", "F", "line 100"))
	require.NoError(t, err)
	require.NoError(t, f.Close())
	want = append(want, "line 100")
	write(101, 200)
	got := waitBodies(t, sink, 200)
	require.ElementsMatch(t, want, got)

	// copytruncate-style: the file is cut to zero and written again.
	require.NoError(t, os.Truncate(live, 0))
	write(200, 210)
	got = waitBodies(t, sink, 210)
	require.ElementsMatch(t, want, got)
	require.Equal(t, int64(1), r.tel.truncated.Load())
}

// A restart resumes at the checkpoint: nothing is read twice or skipped.
func TestRestartResumesAtCheckpoint(t *testing.T) {
	root := t.TempDir()
	path := filepath.Join(podDir(t, root, "shop", "cart", "uid-1", "app"), "0.log")
	for i := range 50 {
		appendFile(t, path, criLine("stdout", "F", fmt.Sprintf("a %d", i)))
	}
	st := &memStorage{kv: map[string][]byte{}}
	sink := &consumertest.LogsSink{}
	r := start(t, testConfig(root), sink, st)
	waitBodies(t, sink, 50)
	require.NoError(t, r.Shutdown(context.Background()))

	for i := range 30 {
		appendFile(t, path, criLine("stdout", "F", fmt.Sprintf("b %d", i)))
	}
	sink2 := &consumertest.LogsSink{}
	r2 := start(t, testConfig(root), sink2, st)
	defer func() { require.NoError(t, r2.Shutdown(context.Background())) }()
	got := waitBodies(t, sink2, 30)
	time.Sleep(100 * time.Millisecond)
	got, _ = bodies(sink2)
	require.Len(t, got, 30)
	require.Equal(t, "b 0", got[0])
}

// refusing fails its first n calls, then behaves as its sink.
type refusing struct {
	consumertest.LogsSink
	fails atomic.Int32
}

func (r *refusing) ConsumeLogs(ctx context.Context, ld plog.Logs) error {
	if r.fails.Add(-1) >= 0 {
		return errors.New("memory_limiter: data refused")
	}
	return r.LogsSink.ConsumeLogs(ctx, ld)
}

// A refused batch is sent again and its offsets wait for it; a restart
// before it is taken reads it again.
func TestRefusedBatchIsRetriedAndNotCheckpointed(t *testing.T) {
	root := t.TempDir()
	path := filepath.Join(podDir(t, root, "shop", "cart", "uid-1", "app"), "0.log")
	appendFile(t, path, criLine("stdout", "F", "one")+criLine("stdout", "F", "two"))
	st := &memStorage{kv: map[string][]byte{}}
	next := &refusing{}
	next.fails.Store(1 << 20) // refuse until told otherwise
	r := start(t, testConfig(root), next, st)
	require.Eventually(t, func() bool { return r.tel.retries.Load() >= 3 }, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, r.Shutdown(context.Background()))
	cps, err := decodeCheckpoints(st.kv[checkpointKey])
	require.NoError(t, err)
	for _, cp := range cps {
		require.Zero(t, cp.offset, "checkpointed past lines the pipeline never took")
	}

	next2 := &refusing{}
	next2.fails.Store(2)
	r2 := start(t, testConfig(root), next2, st)
	defer func() { require.NoError(t, r2.Shutdown(context.Background())) }()
	got := waitBodies(t, &next2.LogsSink, 2)
	require.Equal(t, []string{"one", "two"}, got)
}

func TestDockerJSONFileAndJSONBodies(t *testing.T) {
	root := t.TempDir()
	path := filepath.Join(podDir(t, root, "shop", "api", "uid-2", "srv"), "0.log")
	appendFile(t, path,
		`{"log":"{\"level\":\"error\",\"msg\":\"payment failed\",\"order\":42}\n","stream":"stderr","time":"2026-12-07T10:00:00.5Z"}`+"\n"+
			`{"log":"plain text\n","stream":"stdout","time":"2026-12-07T10:00:01Z"}`+"\n")
	cfg := testConfig(root)
	cfg.JSON.Enabled = true
	sink := &consumertest.LogsSink{}
	r := start(t, cfg, sink, nil)
	defer func() { require.NoError(t, r.Shutdown(context.Background())) }()
	got := waitBodies(t, sink, 2)
	require.Equal(t, []string{"payment failed", "plain text"}, got)
	rec := sink.AllLogs()[0].ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0)
	require.Equal(t, "error", rec.SeverityText())
	order, ok := rec.Attributes().Get("order")
	require.True(t, ok)
	require.Equal(t, int64(42), order.Int())
}

// A directory the agent cannot list is named in a warning: the glob alone
// would match nothing, silently.
func TestWarnsWhenTheLogDirectoryCannotBeListed(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "var", "log", "pods")
	require.NoError(t, os.MkdirAll(filepath.Dir(dir), 0o755))
	if os.Geteuid() == 0 {
		// Root lists any directory: something it cannot list either.
		require.NoError(t, os.WriteFile(dir, nil, 0o644))
	} else {
		require.NoError(t, os.Mkdir(dir, 0o300)) // no read permission
		t.Cleanup(func() { _ = os.Chmod(dir, 0o755) })
	}
	core, logs := observer.New(zap.WarnLevel)
	set := receivertest.NewNopSettings(metadata.Type)
	set.Logger = zap.New(core)
	r, err := newReceiver(set, testConfig(root), &consumertest.LogsSink{})
	require.NoError(t, err)
	r.poll(context.Background())
	require.Equal(t, 2, logs.FilterMessageSnippet("Cannot list the directory").Len(), "one per include glob: %v", logs.All())
	require.Contains(t, fmt.Sprint(logs.All()[0].ContextMap()["directory"]), filepath.Join(root, "var", "log", "pods"))
}
