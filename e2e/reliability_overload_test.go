package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/vigilhq/vigil/testkit/otlpsink"
)

// memCgroup is a memory cgroup (v2, else v1) that a test runs vigil in, the
// way a container's limit bounds it.
type memCgroup struct {
	dir   string
	v2    bool
	limit int64
}

func newMemCgroup(t *testing.T, limit int64) *memCgroup {
	t.Helper()
	name := fmt.Sprintf("vigil-e2e-%d", os.Getpid())
	c := &memCgroup{limit: limit}
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		c.dir, c.v2 = filepath.Join("/sys/fs/cgroup", name), true
	} else {
		c.dir = filepath.Join("/sys/fs/cgroup/memory", name)
	}
	if err := os.Mkdir(c.dir, 0o755); err != nil && !os.IsExist(err) {
		t.Skipf("cannot create a memory cgroup (%v): the overload test needs root and a writable cgroup fs", err)
	}
	file, val := "memory.limit_in_bytes", strconv.FormatInt(limit, 10)
	if c.v2 {
		file = "memory.max"
	}
	require.NoError(t, os.WriteFile(filepath.Join(c.dir, file), []byte(val), 0o644))
	if !c.v2 {
		// No swap to hide in.
		_ = os.WriteFile(filepath.Join(c.dir, "memory.memsw.limit_in_bytes"), []byte(val), 0o644)
	}
	t.Cleanup(func() {
		for range 50 {
			if os.Remove(c.dir) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	return c
}

// wrap runs a command inside the cgroup.
func (c *memCgroup) wrap() []string {
	return []string{"sh", "-c", `echo $$ > "` + c.dir + `/cgroup.procs" && exec "$@"`, "sh"}
}

func (c *memCgroup) read(file string) string {
	b, _ := os.ReadFile(filepath.Join(c.dir, file))
	return string(b)
}

// peak is the cgroup's highest charged memory (RSS and page cache).
func (c *memCgroup) peak() int64 {
	f := "memory.max_usage_in_bytes"
	if c.v2 {
		f = "memory.peak"
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(c.read(f)), 10, 64)
	return n
}

// oomKills counts processes the kernel killed for the limit.
func (c *memCgroup) oomKills() int64 {
	f := "memory.oom_control"
	if c.v2 {
		f = "memory.events"
	}
	for _, line := range strings.Split(c.read(f), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// rssOf reads a process's resident memory in bytes: all of it (VmRSS, which
// counts mapped file pages such as the binary's text and file_storage's
// mmap, charged to the cgroup once if at all) and the anonymous part
// (RssAnon: heap, stacks, the tail sampler's arena).
func rssOf(pid int) (rss, anon int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	kb := func(v string) int64 {
		n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		return n << 10
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			rss = kb(v)
		}
		if v, ok := strings.CutPrefix(line, "RssAnon:"); ok {
			anon = kb(v)
		}
	}
	return rss, anon
}

// ridMagic marks the 8-byte request ID that the overload client writes into
// a resource attribute of each pre-encoded request.
var ridMagic = []byte{0xf0, 0x0d, 0xfa, 0xce, 0xb0, 0x0c, 0x1a, 0x7e}

// ridSink is an OTLP/gRPC backend that counts items per request ID without
// decoding pdata, so it can keep up with an agent under overload.
type ridSink struct {
	Addr  string
	delay time.Duration // per request: a backend slower than the input
	srv   *grpc.Server
	mu    sync.Mutex
	got   map[uint64]int64
}

type ridCodec struct{}

func (ridCodec) Marshal(any) (mem.BufferSlice, error) { return nil, nil }
func (ridCodec) Name() string                         { return "proto" }
func (ridCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*(v.(*[]byte)) = data.Materialize()
	return nil
}

var _ encoding.CodecV2 = ridCodec{}

func startRidSink(t *testing.T, delay time.Duration) *ridSink {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &ridSink{Addr: ln.Addr().String(), delay: delay, got: map[uint64]int64{}, srv: grpc.NewServer(grpc.MaxRecvMsgSize(64<<20), grpc.ForceServerCodecV2(ridCodec{}))}
	for _, svc := range []string{"opentelemetry.proto.collector.trace.v1.TraceService", "opentelemetry.proto.collector.logs.v1.LogsService", "opentelemetry.proto.collector.metrics.v1.MetricsService"} {
		s.srv.RegisterService(&grpc.ServiceDesc{ServiceName: svc, HandlerType: (*any)(nil), Methods: []grpc.MethodDesc{{
			MethodName: "Export",
			Handler: func(_ any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				var b []byte
				if err := dec(&b); err != nil {
					return nil, err
				}
				time.Sleep(s.delay)
				s.count(b)
				return &[]byte{}, nil
			},
		}}}, nil)
	}
	go func() { _ = s.srv.Serve(ln) }()
	t.Cleanup(s.srv.Stop)
	return s
}

// count walks resource_* (1) > resource (1) for the ID and scope_* (2) >
// items (2) for the count.
func (s *ridSink) count(b []byte) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return
		}
		b = b[n:]
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return
		}
		if num == 1 && typ == protowire.BytesType {
			rs, _ := protowire.ConsumeBytes(b)
			var rid uint64
			var items int64
			walkFields(rs, func(f protowire.Number, v []byte) {
				switch f {
				case 1:
					if i := bytes.Index(v, ridMagic); i >= 0 && i+16 <= len(v) {
						rid = binary.BigEndian.Uint64(v[i+8:])
					}
				case 2:
					walkFields(v, func(g protowire.Number, _ []byte) {
						if g == 2 {
							items++
						}
					})
				}
			})
			s.mu.Lock()
			s.got[rid] += items
			s.mu.Unlock()
		}
		b = b[m:]
	}
}

func walkFields(b []byte, f func(protowire.Number, []byte)) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return
		}
		b = b[n:]
		if typ != protowire.BytesType {
			m := protowire.ConsumeFieldValue(num, typ, b)
			if m < 0 {
				return
			}
			b = b[m:]
			continue
		}
		v, m := protowire.ConsumeBytes(b)
		if m < 0 {
			return
		}
		f(num, v)
		b = b[m:]
	}
}

func (s *ridSink) snapshot() map[uint64]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[uint64]int64, len(s.got))
	for k, v := range s.got {
		out[k] = v
	}
	return out
}

// template is a pre-encoded export request with a patchable request ID.
type template struct {
	method string
	body   []byte
	at     int   // offset of the ID
	marks  []int // offsets of traceMark in trace IDs
	items  int64
}

func findAll(b, sub []byte) []int {
	var out []int
	for i := 0; ; {
		j := bytes.Index(b[i:], sub)
		if j < 0 {
			return out
		}
		out = append(out, i+j)
		i += j + len(sub)
	}
}

// with writes the request ID into buf (a copy of the template's body, reused
// by one worker). Every trace ID carries the request ID too, so each request
// brings new traces.
func (tp template) with(buf []byte, rid uint64) []byte {
	for _, at := range tp.marks {
		binary.BigEndian.PutUint64(buf[at:], rid)
	}
	binary.BigEndian.PutUint64(buf[tp.at+8:], rid)
	return buf
}

// traceMark is the placeholder for the request ID in the template's trace IDs.
var traceMark = []byte{0x5e, 0xed, 0x7a, 0xce, 0x1d, 0x0f, 0xbe, 0xef}

func overloadTemplates(t *testing.T) []template {
	rid := append(bytes.Clone(ridMagic), make([]byte, 8)...)
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "overload")
	rl.Resource().Attributes().PutEmptyBytes("rid").FromRaw(rid)
	sl := rl.ScopeLogs().AppendEmpty()
	for i := range 1000 {
		lr := sl.LogRecords().AppendEmpty()
		lr.SetTimestamp(pcommon.NewTimestampFromTime(time.Now()))
		lr.Body().SetStr(fmt.Sprintf("GET /api/orders/%d 200 12ms user-agent=Mozilla/5.0 request_id=%032x", i, i))
		lr.Attributes().PutStr("http.route", "/api/orders/{id}")
	}
	lb, err := plogotlp.NewExportRequestFromLogs(ld).MarshalProto()
	require.NoError(t, err)

	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "overload")
	rs.Resource().Attributes().PutEmptyBytes("rid").FromRaw(rid)
	ss := rs.ScopeSpans().AppendEmpty()
	now := time.Now()
	for i := range 500 {
		// 100 traces of 5 spans: a root and its children.
		sp := ss.Spans().AppendEmpty()
		var tid pcommon.TraceID
		copy(tid[:], traceMark)
		binary.BigEndian.PutUint64(tid[8:], uint64(i/5))
		sp.SetTraceID(tid)
		sp.SetSpanID(pcommon.SpanID{byte(i), byte(i >> 8), 1, 2, 3, 4, 5, 6})
		if i%5 != 0 {
			sp.SetParentSpanID(pcommon.SpanID{byte(i - i%5), byte((i - i%5) >> 8), 1, 2, 3, 4, 5, 6})
		}
		sp.SetName("POST /checkout")
		sp.Status().SetCode(ptrace.StatusCodeError) // kept by the profile's tail sampler
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Millisecond)))
		sp.Attributes().PutStr("http.request.method", "POST")
	}
	tb, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	require.NoError(t, err)
	return []template{
		{method: "/opentelemetry.proto.collector.logs.v1.LogsService/Export", body: lb, at: bytes.Index(lb, ridMagic), items: 1000},
		{method: "/opentelemetry.proto.collector.trace.v1.TraceService/Export", body: tb, at: bytes.Index(tb, ridMagic), marks: findAll(tb, traceMark), items: 500},
	}
}

// overloadClient sends pre-encoded requests and keeps a ledger by request ID.
type overloadClient struct {
	conns    []*grpc.ClientConn
	tpls     []template
	next     atomic.Uint64
	mu       sync.Mutex
	accepted map[uint64]int64 // rid -> items
	codes    map[codes.Code]int64
	sent     atomic.Int64 // items offered
}

func (c *overloadClient) send(i int, bufs [][]byte) error {
	k := i % len(c.tpls)
	tp := c.tpls[k]
	rid := c.next.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.sent.Add(tp.items)
	err := c.conns[i%len(c.conns)].Invoke(ctx, tp.method, tp.with(bufs[k], rid), new([]byte), grpc.ForceCodec(rawCodec{}))
	c.mu.Lock()
	defer c.mu.Unlock()
	c.codes[status.Code(err)]++
	if err == nil {
		c.accepted[rid] = tp.items
	}
	return err
}

// run sends with n workers back to back until the deadline. Polite workers
// back off for 200 ms after a refusal, as an OTLP exporter does (what the
// agent sustains); the others send again at once (overload).
func (c *overloadClient) run(workers int, d time.Duration, polite bool) {
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bufs := make([][]byte, len(c.tpls))
			for k, tp := range c.tpls {
				bufs[k] = bytes.Clone(tp.body)
			}
			for i := w; time.Now().Before(deadline); i += workers {
				if err := c.send(i, bufs); err != nil && polite {
					time.Sleep(200 * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
}

func (c *overloadClient) acceptedItems() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var n int64
	for _, v := range c.accepted {
		n += v
	}
	return n
}

// TestOverload: the agent profile in a 512 MiB memory cgroup (a container's
// limit), in front of a backend that takes a second per request, first gets
// what it sustains (2 closed-loop clients that back off when refused), then
// ten times that and more from 256 clients that do not. RSS stays under the limit with no
// OOM kill, the receivers refuse with retryable codes that the clients see
// and the agent counts, and every request it acknowledged is delivered whole.
func TestOverload(t *testing.T) {
	const limit = 512 << 20
	cg := newMemCgroup(t, limit)
	// The backend takes a second per request: the agent sustains what its
	// exporters' consumers can push through that.
	sink := startRidSink(t, time.Second)
	dir := t.TempDir()
	health, grpcPort, httpPort, rw, promPort, tel := freePort(t), freePort(t), freePort(t), freePort(t), freePort(t), freePort(t)
	t.Setenv("VIGIL_OTLP_ENDPOINT", sink.Addr)
	t.Setenv("VIGIL_OTLP_INSECURE", "true")
	t.Setenv("VIGIL_STORAGE_DIR", filepath.Join(dir, "storage"))
	t.Setenv("VIGIL_HOST_ROOT", filepath.Join(dir, "host"))
	// As the profile's header says: GOMEMLIMIT at about 60% of the limit.
	t.Setenv("GOMEMLIMIT", strconv.Itoa(limit*6/10))
	// Smaller queues than the profile's 256 MiB, so they fill (and drain)
	// within the test.
	t.Setenv("VIGIL_QUEUE_BYTES", strconv.Itoa(64<<20))
	override := fmt.Sprintf(`
extensions:
  health_check: {endpoint: 127.0.0.1:%d}
receivers:
  otlp:
    protocols:
      grpc: {endpoint: 127.0.0.1:%d}
      http: {endpoint: 127.0.0.1:%d}
  prometheus_remote_write: {endpoint: 127.0.0.1:%d}
exporters:
  prometheus: {endpoint: 127.0.0.1:%d}
service:
  telemetry:
    metrics:
      readers:
        - pull: {exporter: {prometheus: {host: 127.0.0.1, port: %d}}}
`, health, grpcPort, httpPort, rw, promPort, tel)
	a := &agent{t: t, args: []string{"--config", "vigil:agent", "--config", writeConfig(t, override)}, log: &syncBuffer{}, HealthPort: health, wrap: cg.wrap()}
	a.start()
	t.Cleanup(a.Stop)
	a.waitHealthy(60 * time.Second)
	keepAgentLog(t, a)
	pid := a.cmd.Process.Pid
	budget := metricSum(scrape(tel), "otelcol_processor_tail_sampling_memory_budget_bytes", nil)
	t.Logf("agent pid %d in %s, limit %d MiB; tail sampler budget %.0f MiB", pid, cg.dir, limit>>20, budget/(1<<20))
	require.InDelta(t, float64(limit/4), budget, 1, "the tail sampler's budget must be a quarter of the cgroup's limit")

	var conns []*grpc.ClientConn
	for range 4 {
		conn, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", grpcPort), grpc.WithTransportCredentials(insecure.NewCredentials()))
		require.NoError(t, err)
		t.Cleanup(func() { conn.Close() })
		conns = append(conns, conn)
	}
	client := &overloadClient{conns: conns, tpls: overloadTemplates(t), accepted: map[uint64]int64{}, codes: map[codes.Code]int64{}}

	var maxRSS, maxAnon atomic.Int64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			rss, anon := rssOf(pid)
			maxRSS.Store(max(maxRSS.Load(), rss))
			maxAnon.Store(max(maxAnon.Load(), anon))
			select {
			case <-stopSampling:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()

	// What it sustains: two clients, back to back.
	const calib = 8 * time.Second
	delivered := func() int64 {
		var n int64
		for _, v := range sink.snapshot() {
			n += v
		}
		return n
	}
	d0 := delivered()
	client.run(2, calib, true)
	// What it sustains is what reaches the backend: accepting into the
	// queue can run ahead of that only until the queue is full.
	sustained := float64(delivered()-d0) / calib.Seconds()
	t.Logf("sustained: %.0f items/s delivered (2 closed-loop clients backing off on refusal, %d requests: %v)", sustained, client.next.Load(), client.codes)

	// Overload.
	const over = 15 * time.Second
	sentBefore, accBefore := client.sent.Load(), client.acceptedItems()
	client.run(256, over, false)
	offered := float64(client.sent.Load()-sentBefore) / over.Seconds()
	acceptedRate := float64(client.acceptedItems()-accBefore) / over.Seconds()
	close(stopSampling)
	<-sampled
	t.Logf("overload: offered %.0f items/s (%.1fx sustained), accepted %.0f items/s; answers %v", offered, offered/sustained, acceptedRate, client.codes)
	t.Logf("memory: cgroup peak %d MiB (what the limit counts, page cache included), max RSS %d MiB (anonymous %d MiB; the rest is mapped files), limit %d MiB, OOM kills %d",
		cg.peak()>>20, maxRSS.Load()>>20, maxAnon.Load()>>20, limit>>20, cg.oomKills())

	select {
	case <-a.done:
		t.Fatalf("vigil died under overload:\n%s", tail(a.log.String(), 3000))
	default:
	}
	require.Zero(t, cg.oomKills(), "OOM-killed")
	// The cgroup's charge includes file_storage's page cache, which the
	// kernel reclaims at the limit; what cannot be reclaimed is anonymous.
	require.Less(t, maxAnon.Load(), int64(limit))
	require.GreaterOrEqual(t, offered/sustained, 10.0, "the test did not reach 10x what the agent sustains")
	client.mu.Lock()
	for code, n := range client.codes {
		if code != codes.OK {
			require.Containsf(t, []codes.Code{codes.Unavailable, codes.ResourceExhausted, codes.DeadlineExceeded}, code, "non-retryable answer %v (%d times)", code, n)
		}
	}
	refusedSeen := client.codes[codes.Unavailable] + client.codes[codes.ResourceExhausted]
	client.mu.Unlock()
	require.Positive(t, refusedSeen, "no client saw backpressure")
	text := scrape(tel)
	refused := metricSum(text, "otelcol_receiver_refused_log_records", map[string]string{"receiver": "otlp"}) +
		metricSum(text, "otelcol_receiver_refused_spans", map[string]string{"receiver": "otlp"})
	t.Logf("agent's own metrics: %.0f items refused by the receivers", refused)
	require.Positive(t, refused, "refusals not visible in the agent's metrics")

	// Every acknowledged request arrives whole.
	want := func() (lost, dup, extra int64) {
		got := sink.snapshot()
		client.mu.Lock()
		defer client.mu.Unlock()
		for rid, n := range client.accepted {
			switch g := got[rid]; {
			case g < n:
				lost += n - g
			case g > n:
				dup += g - n
			}
		}
		for rid, g := range got {
			if _, ok := client.accepted[rid]; !ok && rid != 0 {
				extra += g // the agent took it though the client gave up waiting
			}
		}
		return
	}
	var lost, dup, extra int64
	drained := otlpsink.WaitFor(3*time.Minute, func() bool { lost, dup, extra = want(); return lost == 0 })
	t.Logf("delivered: %d items acknowledged, %d lost, %d duplicates, %d more that the agent took after the client gave up",
		client.acceptedItems(), lost, dup, extra)
	require.True(t, drained, "acknowledged items lost: %d", lost)
}
