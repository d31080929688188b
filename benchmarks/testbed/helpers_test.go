package testbed

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigilhq/vigil/benchmarks/testbed/service"
	"github.com/vigilhq/vigil/benchmarks/testbed/topo"
	"github.com/vigilhq/vigil/testkit/otlpsink"
)

// TestMain makes the test binary the testbed binary too: the orchestrator
// re-executes it as `<test binary> serve <flags>` for every replica.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		err := service.Main(ctx, os.Args[2:], os.Stderr)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, "serve:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// toxiproxyBin finds toxiproxy-server (scripts/test-deps.sh builds it into
// .cache/bin) or skips the test.
func toxiproxyBin(t *testing.T) string {
	t.Helper()
	if p, err := filepath.Abs(filepath.Join("..", "..", ".cache", "bin", "toxiproxy-server")); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("toxiproxy-server"); err == nil {
		return p
	}
	t.Skip("toxiproxy-server not found in .cache/bin or PATH: run scripts/test-deps.sh")
	return ""
}

// needPG skips the test when PostgreSQL is not installed.
func needPG(t *testing.T) {
	t.Helper()
	if err := checkPG(DefaultPGBin); err != nil {
		t.Skipf("PostgreSQL not available: %v", err)
	}
}

// workDir is a scratch directory the postgres OS user can reach
// (t.TempDir's parent is private to root).
func workDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "testbed-test-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(d, 0o755))
	t.Cleanup(func() { _ = os.RemoveAll(d) })
	return d
}

// syncBuffer collects progress lines; the test prints them if it fails.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testEnv is a running env with one topology's cluster, exporting to an
// in-test OTLP receiver.
type testEnv struct {
	e    *env
	c    *cluster
	sink *otlpsink.Sink
}

func startTopology(t *testing.T, name string) *testEnv {
	t.Helper()
	tox := toxiproxyBin(t)
	tp, _ := topo.Get(name)
	if len(tp.Databases) > 0 {
		needPG(t)
	}
	sink, err := otlpsink.Start("127.0.0.1:0", true)
	require.NoError(t, err)
	t.Cleanup(sink.Stop)
	log := &syncBuffer{}
	o, err := Options{Bin: os.Args[0], Endpoint: sink.Addr, Toxiproxy: tox, WorkDir: workDir(t), Plan: PlanShort,
		Topologies: []string{name}, Log: log, MetricsInterval: time.Second}.withDefaults()
	require.NoError(t, err)
	p, err := buildPlan(o)
	require.NoError(t, err)
	e := newEnv(o)
	t.Cleanup(func() {
		require.NoError(t, e.close())
		logs, _ := filepath.Glob(filepath.Join(o.WorkDir, "logs", name, "*.log"))
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			for _, bad := range []string{"DATA RACE", "panic:"} {
				assert.NotContains(t, string(b), bad, filepath.Base(l))
			}
		}
		if t.Failed() {
			t.Log(log.String())
		}
	})
	ctx := context.Background()
	require.NoError(t, e.setup(ctx, p))
	c := newCluster(e, tp)
	e.clusters = append(e.clusters, c)
	require.NoError(t, c.start(ctx))
	return &testEnv{e: e, c: c, sink: sink}
}

// front sends one request to a replica of the topology's front door (or of
// svc when set) and returns the status code.
func (te *testEnv) request(t *testing.T, svc, route, id string) int {
	t.Helper()
	code, err := te.tryRequest(svc, route, id)
	require.NoError(t, err)
	return code
}

// tryRequest is request for goroutines other than the test's.
func (te *testEnv) tryRequest(svc, route, id string) (int, error) {
	r := te.c.replicas(svc)[0]
	method, path := topo.SplitRoute(route)
	url := "http://" + net.JoinHostPort(r.ip, strconv.Itoa(topo.HTTPPort)) + topo.FillPath(path, id)
	var body io.Reader
	if method == http.MethodPost {
		body = strings.NewReader(`{"id":"` + id + `"}`)
	} else if !strings.Contains(path, "{") {
		url += "?id=" + id
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return 0, err
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// span is a received span, flattened.
type span struct {
	service string
	res     pcommon.Map
	s       ptrace.Span
}

func (s span) attr(k string) (string, bool) {
	v, ok := s.s.Attributes().Get(k)
	if !ok {
		return "", false
	}
	return v.AsString(), true
}

func spans(sink *otlpsink.Sink) []span {
	var out []span
	for _, td := range sink.Traces() {
		rss := td.ResourceSpans()
		for i := range rss.Len() {
			rs := rss.At(i)
			svc, _ := rs.Resource().Attributes().Get("service.name")
			for j := range rs.ScopeSpans().Len() {
				ss := rs.ScopeSpans().At(j).Spans()
				for k := range ss.Len() {
					out = append(out, span{service: svc.AsString(), res: rs.Resource().Attributes(), s: ss.At(k)})
				}
			}
		}
	}
	return out
}

// find returns the spans of a service with a name and kind.
func find(all []span, svc, name string, kind ptrace.SpanKind) []span {
	var out []span
	for _, s := range all {
		if s.service == svc && s.s.Name() == name && s.s.Kind() == kind {
			out = append(out, s)
		}
	}
	return out
}

// waitSpans polls the sink until cond holds on its spans.
func waitSpans(t *testing.T, sink *otlpsink.Sink, what string, cond func([]span) bool) []span {
	t.Helper()
	var all []span
	ok := otlpsink.WaitFor(20*time.Second, func() bool {
		all = spans(sink)
		return cond(all)
	})
	require.True(t, ok, "timed out waiting for %s (%d spans received)", what, len(all))
	return all
}

// ips returns the IPs of a service's replicas.
func (te *testEnv) ips(svc string) []string {
	var out []string
	for _, r := range te.c.replicas(svc) {
		out = append(out, r.ip)
	}
	return out
}
