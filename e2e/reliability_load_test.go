package e2e

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/vigilhq/vigil/testkit/otlpsink"
)

// The steady load of the reliability tests: OTLP/gRPC traces, metrics and
// logs with an identity on every item, sent the way a well-behaved client
// does (a retryable refusal is retried until accepted), plus lines appended
// to a container log file. The ledger records what the agent acknowledged;
// the backends are then checked against it item by item.

const loadService = "loadgen"

// loadRate is items per 100 ms tick.
type loadRate struct {
	Traces    int // traces of spansPerTrace spans; every trace has an error span (the agent profile keeps all of them)
	Series    int // gauge points, one per series
	Logs      int // OTLP log records
	FileLines int // lines appended to a CRI log file (when a file is given)
}

const spansPerTrace = 5

// ledger is what the client saw acknowledged, by item identity.
type ledger struct {
	mu        sync.Mutex
	spans     map[uint64]struct{}
	points    map[pointKey]struct{}
	logs      map[int64]struct{}
	fileLines map[int64]struct{}
	refused   map[string]int64 // by signal and gRPC code: what the client was told to retry
	attempts  atomic.Int64
	lastOK    atomic.Int64 // unix nanos of the last acknowledged request
}

type pointKey struct {
	series int64
	tsMs   int64
}

// counts is one signal's tally against the ledger.
type counts struct {
	Accepted, Received, Distinct, Lost, Duplicates int64
}

func (c counts) String() string {
	return fmt.Sprintf("accepted %d, received %d (distinct %d), lost %d, duplicates %d", c.Accepted, c.Received, c.Distinct, c.Lost, c.Duplicates)
}

type loadgen struct {
	t        *testing.T
	conn     *grpc.ClientConn
	file     string // CRI log file, "" for none
	rate     loadRate
	seq      atomic.Int64
	l        *ledger
	stop     chan struct{}
	wg       sync.WaitGroup
	paused   atomic.Bool
	inflight atomic.Int64
}

// Pause stops sending new requests and waits until none is in flight.
func (g *loadgen) Pause() {
	g.paused.Store(true)
	for g.inflight.Load() > 0 {
		time.Sleep(10 * time.Millisecond)
	}
}

// Resume sends again.
func (g *loadgen) Resume() { g.paused.Store(false) }

func startLoad(t *testing.T, grpcAddr, logFile string, rate loadRate) *loadgen {
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	g := &loadgen{t: t, conn: conn, file: logFile, rate: rate, stop: make(chan struct{}), l: &ledger{
		spans: map[uint64]struct{}{}, points: map[pointKey]struct{}{}, logs: map[int64]struct{}{},
		fileLines: map[int64]struct{}{}, refused: map[string]int64{},
	}}
	if logFile != "" {
		if err := os.MkdirAll(filepath.Dir(logFile), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []func(){g.traces, g.metrics, g.logs, g.fileLog} {
		g.wg.Add(1)
		go func() { defer g.wg.Done(); f() }()
	}
	t.Cleanup(g.Stop)
	return g
}

// Stop ends the load; requests still being retried get up to 60 s to be
// acknowledged (and are left out of the ledger if they are not).
func (g *loadgen) Stop() {
	select {
	case <-g.stop:
		return
	default:
	}
	close(g.stop)
	g.wg.Wait()
	g.conn.Close()
}

func (g *loadgen) every(f func()) {
	tk := time.NewTicker(100 * time.Millisecond)
	defer tk.Stop()
	for {
		select {
		case <-g.stop:
			return
		case <-tk.C:
			if g.paused.Load() {
				continue
			}
			g.inflight.Add(1)
			f()
			g.inflight.Add(-1)
		}
	}
}

// send retries a request while the agent answers with a retryable code
// (or cannot be reached), like an OTLP exporter does; true once acknowledged.
func (g *loadgen) send(signal string, call func(ctx context.Context) error) bool {
	give := time.Time{}
	backoff := 100 * time.Millisecond
	for {
		g.l.attempts.Add(1)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := call(ctx)
		cancel()
		if err == nil {
			g.l.lastOK.Store(time.Now().UnixNano())
			return true
		}
		code := status.Code(err)
		g.l.mu.Lock()
		g.l.refused[signal+"/"+code.String()]++
		g.l.mu.Unlock()
		switch code {
		case codes.Unavailable, codes.ResourceExhausted, codes.DeadlineExceeded, codes.Aborted:
		default:
			g.t.Errorf("%s: non-retryable answer %v", signal, err)
			return false
		}
		select {
		case <-g.stop:
			if give.IsZero() {
				give = time.Now().Add(60 * time.Second)
			}
			if time.Now().After(give) {
				return false
			}
		default:
		}
		time.Sleep(backoff)
		backoff = min(backoff*2, time.Second)
	}
}

func (g *loadgen) traces() {
	client := ptraceotlp.NewGRPCClient(g.conn)
	g.every(func() {
		if g.rate.Traces == 0 {
			return
		}
		td := ptrace.NewTraces()
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", loadService)
		ss := rs.ScopeSpans().AppendEmpty()
		ss.Scope().SetName("vigil-e2e-loadgen")
		now := time.Now()
		var ids []uint64
		for range g.rate.Traces {
			first := g.seq.Add(spansPerTrace) - spansPerTrace + 1
			var tid [16]byte
			binary.BigEndian.PutUint64(tid[8:], uint64(first))
			tid[0] = 0x7e
			for i := range int64(spansPerTrace) {
				sp := ss.Spans().AppendEmpty()
				id := uint64(first + i)
				ids = append(ids, id)
				sp.SetTraceID(tid)
				sp.SetSpanID(spanID(id))
				if i == 0 {
					sp.SetKind(ptrace.SpanKindServer)
					sp.SetName("GET /checkout")
					sp.Status().SetCode(ptrace.StatusCodeError)
				} else {
					sp.SetParentSpanID(spanID(uint64(first)))
					sp.SetKind(ptrace.SpanKindClient)
					sp.SetName("SELECT orders")
					sp.Attributes().PutStr("db.system", "postgresql")
				}
				sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now.Add(-50 * time.Millisecond)))
				sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now))
				sp.Attributes().PutInt("seq", int64(id))
			}
		}
		req := ptraceotlp.NewExportRequestFromTraces(td)
		if g.send("traces", func(ctx context.Context) error { _, err := client.Export(ctx, req); return err }) {
			g.l.mu.Lock()
			for _, id := range ids {
				g.l.spans[id] = struct{}{}
			}
			g.l.mu.Unlock()
		}
	})
}

func spanID(n uint64) pcommon.SpanID {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], n)
	return b
}

func (g *loadgen) metrics() {
	client := pmetricotlp.NewGRPCClient(g.conn)
	g.every(func() {
		if g.rate.Series == 0 {
			return
		}
		md := pmetric.NewMetrics()
		rm := md.ResourceMetrics().AppendEmpty()
		rm.Resource().Attributes().PutStr("service.name", loadService)
		m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
		m.SetName("vigil_loadgen_gauge")
		gauge := m.SetEmptyGauge()
		ts := time.Now().Truncate(time.Millisecond)
		var keys []pointKey
		for s := range int64(g.rate.Series) {
			dp := gauge.DataPoints().AppendEmpty()
			dp.Attributes().PutInt("series", s)
			dp.SetTimestamp(pcommon.NewTimestampFromTime(ts))
			dp.SetIntValue(g.seq.Add(1))
			keys = append(keys, pointKey{s, ts.UnixMilli()})
		}
		req := pmetricotlp.NewExportRequestFromMetrics(md)
		if g.send("metrics", func(ctx context.Context) error { _, err := client.Export(ctx, req); return err }) {
			g.l.mu.Lock()
			for _, k := range keys {
				g.l.points[k] = struct{}{}
			}
			g.l.mu.Unlock()
		}
	})
}

func (g *loadgen) logs() {
	client := plogotlp.NewGRPCClient(g.conn)
	g.every(func() {
		if g.rate.Logs == 0 {
			return
		}
		ld := plog.NewLogs()
		rl := ld.ResourceLogs().AppendEmpty()
		rl.Resource().Attributes().PutStr("service.name", loadService)
		sl := rl.ScopeLogs().AppendEmpty()
		var seqs []int64
		now := pcommon.NewTimestampFromTime(time.Now())
		for range g.rate.Logs {
			n := g.seq.Add(1)
			lr := sl.LogRecords().AppendEmpty()
			lr.SetTimestamp(now)
			lr.SetSeverityNumber(plog.SeverityNumberInfo)
			lr.Body().SetStr(fmt.Sprintf("order %d shipped", n))
			lr.Attributes().PutInt("seq", n)
			seqs = append(seqs, n)
		}
		req := plogotlp.NewExportRequestFromLogs(ld)
		if g.send("logs", func(ctx context.Context) error { _, err := client.Export(ctx, req); return err }) {
			g.l.mu.Lock()
			for _, n := range seqs {
				g.l.logs[n] = struct{}{}
			}
			g.l.mu.Unlock()
		}
	})
}

// fileLog appends CRI lines; a line written is a line the agent must deliver
// (the file is the durable hand-over).
func (g *loadgen) fileLog() {
	if g.file == "" || g.rate.FileLines == 0 {
		return
	}
	g.every(func() {
		f, err := os.OpenFile(g.file, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			g.t.Error(err)
			return
		}
		var b strings.Builder
		var seqs []int64
		ts := time.Now().UTC().Format(time.RFC3339Nano)
		for range g.rate.FileLines {
			n := g.seq.Add(1)
			fmt.Fprintf(&b, "%s stdout F file line %d level=info\n", ts, n)
			seqs = append(seqs, n)
		}
		_, err = f.WriteString(b.String())
		f.Close()
		if err != nil {
			g.t.Error(err)
			return
		}
		g.l.mu.Lock()
		for _, n := range seqs {
			g.l.fileLines[n] = struct{}{}
		}
		g.l.mu.Unlock()
	})
}

// Accepted returns how many items of each signal the client saw acknowledged.
func (g *loadgen) Accepted() (spans, points, logs, fileLines int) {
	g.l.mu.Lock()
	defer g.l.mu.Unlock()
	return len(g.l.spans), len(g.l.points), len(g.l.logs), len(g.l.fileLines)
}

// Refused returns the retryable answers the client got, by signal/code.
func (g *loadgen) Refused() map[string]int64 {
	g.l.mu.Lock()
	defer g.l.mu.Unlock()
	out := map[string]int64{}
	for k, v := range g.l.refused {
		out[k] = v
	}
	return out
}

var fileLineRe = regexp.MustCompile(`^file line (\d+) `)

// tally compares what the sinks received from the load with the ledger.
func (g *loadgen) tally(sinks []*otlpsink.Sink) (spans, points, logs, fileLines counts) {
	gotSpans := map[uint64]int64{}
	gotPoints := map[pointKey]int64{}
	gotLogs := map[int64]int64{}
	gotLines := map[int64]int64{}
	for _, s := range sinks {
		for _, td := range s.Traces() {
			for _, rs := range td.ResourceSpans().All() {
				if v, _ := rs.Resource().Attributes().Get("service.name"); v.Str() != loadService {
					continue
				}
				for _, ss := range rs.ScopeSpans().All() {
					for _, sp := range ss.Spans().All() {
						id := sp.SpanID()
						gotSpans[binary.BigEndian.Uint64(id[:])]++
					}
				}
			}
		}
		for _, md := range s.Metrics() {
			for _, rm := range md.ResourceMetrics().All() {
				if v, _ := rm.Resource().Attributes().Get("service.name"); v.Str() != loadService {
					continue
				}
				for _, sm := range rm.ScopeMetrics().All() {
					for _, m := range sm.Metrics().All() {
						if m.Name() != "vigil_loadgen_gauge" {
							continue
						}
						for _, dp := range m.Gauge().DataPoints().All() {
							s, _ := dp.Attributes().Get("series")
							gotPoints[pointKey{s.Int(), dp.Timestamp().AsTime().UnixMilli()}]++
						}
					}
				}
			}
		}
		for _, ld := range s.Logs() {
			for _, rl := range ld.ResourceLogs().All() {
				svc, _ := rl.Resource().Attributes().Get("service.name")
				pod, _ := rl.Resource().Attributes().Get("k8s.pod.name")
				for _, sl := range rl.ScopeLogs().All() {
					for _, lr := range sl.LogRecords().All() {
						switch {
						case svc.Str() == loadService:
							n, _ := lr.Attributes().Get("seq")
							gotLogs[n.Int()]++
						case pod.Str() == loadPod:
							if m := fileLineRe.FindStringSubmatch(lr.Body().AsString()); m != nil {
								n, _ := strconv.ParseInt(m[1], 10, 64)
								gotLines[n]++
							}
						}
					}
				}
			}
		}
	}
	g.l.mu.Lock()
	defer g.l.mu.Unlock()
	return compare(g.l.spans, gotSpans), compare(g.l.points, gotPoints), compare(g.l.logs, gotLogs), compare(g.l.fileLines, gotLines)
}

func compare[K comparable](want map[K]struct{}, got map[K]int64) counts {
	c := counts{Accepted: int64(len(want)), Distinct: int64(len(got))}
	for _, n := range got {
		c.Received += n
		c.Duplicates += n - 1
	}
	for k := range want {
		if got[k] == 0 {
			c.Lost++
		}
	}
	return c
}

// loadPod names the pod whose log file the load writes.
const loadPod = "loadgen-0"

// loadLogFile is the CRI log file of loadPod under root.
func loadLogFile(root string) string {
	return filepath.Join(root, "var", "log", "pods", "shop_"+loadPod+"_0c0ffee0-0000-4000-8000-000000000001", "app", "0.log")
}

var metricLineRe = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? ([0-9.eE+-]+|NaN|\+Inf|-Inf)`)

// metricSum sums the samples of a metric (with or without the _total
// suffix) in Prometheus text whose labels include every pair in match.
func metricSum(text, name string, match map[string]string) float64 {
	var sum float64
	for _, line := range strings.Split(text, "\n") {
		m := metricLineRe.FindStringSubmatch(line)
		if m == nil || (m[1] != name && m[1] != name+"_total") {
			continue
		}
		ok := true
		for k, v := range match {
			if !strings.Contains(m[2], k+`="`+v+`"`) {
				ok = false
			}
		}
		if ok {
			f, _ := strconv.ParseFloat(m[3], 64)
			sum += f
		}
	}
	return sum
}

// scrape returns the agent's own metrics (Prometheus text), or "" when it
// does not answer.
func scrape(port int) string {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
