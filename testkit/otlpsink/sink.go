// Package otlpsink is an OTLP/gRPC server that receives traces, metrics and
// logs and counts (and optionally keeps) what arrives. End-to-end tests and the
// benchmark harness use it as the backend behind the agent under test.
package otlpsink

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	// Registers the zstd and snappy gRPC codecs the collector's exporters may use.
	_ "go.opentelemetry.io/collector/config/configgrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// Sink is a running OTLP/gRPC server. Its methods are safe for concurrent use.
type Sink struct {
	// Addr is the host:port the sink listens on.
	Addr string

	keep   bool
	srv    *grpc.Server
	failMu sync.RWMutex
	fail   error

	Spans      atomic.Int64
	DataPoints atomic.Int64
	LogRecords atomic.Int64
	Requests   atomic.Int64
	mu         sync.Mutex
	traces     []ptrace.Traces
	metrics    []pmetric.Metrics
	logs       []plog.Logs
}

// Start listens on addr ("127.0.0.1:0" for a free port). With keep set, every
// request's data is retained for Traces, Metrics and Logs; otherwise it is only
// counted, which is what a load test wants.
func Start(addr string, keep bool) (*Sink, error) {
	return start(addr, keep)
}

// StartTLS is Start over TLS with cfg; set cfg.ClientCAs and ClientAuth to
// require client certificates (mTLS).
func StartTLS(addr string, keep bool, cfg *tls.Config) (*Sink, error) {
	return start(addr, keep, grpc.Creds(credentials.NewTLS(cfg)))
}

func start(addr string, keep bool, opts ...grpc.ServerOption) (*Sink, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Sink{Addr: ln.Addr().String(), keep: keep, srv: grpc.NewServer(append(opts, grpc.MaxRecvMsgSize(64<<20))...)}
	ptraceotlp.RegisterGRPCServer(s.srv, &traceServer{s: s})
	pmetricotlp.RegisterGRPCServer(s.srv, &metricServer{s: s})
	plogotlp.RegisterGRPCServer(s.srv, &logServer{s: s})
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Stop closes the listener and every connection at once.
func (s *Sink) Stop() { s.srv.Stop() }

// SetFailure makes every request fail with err until called with nil; use a
// gRPC status error (codes.Unavailable) to simulate a backend outage.
func (s *Sink) SetFailure(err error) {
	s.failMu.Lock()
	s.fail = err
	s.failMu.Unlock()
}

func (s *Sink) failure() error {
	s.failMu.RLock()
	defer s.failMu.RUnlock()
	return s.fail
}

// Traces returns the kept trace requests, in arrival order.
func (s *Sink) Traces() []ptrace.Traces {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]ptrace.Traces(nil), s.traces...)
}

// Metrics returns the kept metric requests, in arrival order.
func (s *Sink) Metrics() []pmetric.Metrics {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]pmetric.Metrics(nil), s.metrics...)
}

// Logs returns the kept log requests, in arrival order.
func (s *Sink) Logs() []plog.Logs {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]plog.Logs(nil), s.logs...)
}

// WaitFor polls cond every 50 ms until it holds or timeout passes, and reports
// whether it held.
func WaitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type traceServer struct {
	ptraceotlp.UnimplementedGRPCServer
	s *Sink
}

func (t traceServer) Export(_ context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	if err := t.s.failure(); err != nil {
		return ptraceotlp.NewExportResponse(), err
	}
	td := req.Traces()
	t.s.Requests.Add(1)
	if t.s.keep {
		c := ptrace.NewTraces()
		td.CopyTo(c)
		t.s.mu.Lock()
		t.s.traces = append(t.s.traces, c)
		t.s.mu.Unlock()
	}
	t.s.Spans.Add(int64(td.SpanCount()))
	return ptraceotlp.NewExportResponse(), nil
}

type metricServer struct {
	pmetricotlp.UnimplementedGRPCServer
	s *Sink
}

func (m metricServer) Export(_ context.Context, req pmetricotlp.ExportRequest) (pmetricotlp.ExportResponse, error) {
	if err := m.s.failure(); err != nil {
		return pmetricotlp.NewExportResponse(), err
	}
	md := req.Metrics()
	m.s.Requests.Add(1)
	if m.s.keep {
		c := pmetric.NewMetrics()
		md.CopyTo(c)
		m.s.mu.Lock()
		m.s.metrics = append(m.s.metrics, c)
		m.s.mu.Unlock()
	}
	m.s.DataPoints.Add(int64(md.DataPointCount()))
	return pmetricotlp.NewExportResponse(), nil
}

type logServer struct {
	plogotlp.UnimplementedGRPCServer
	s *Sink
}

func (l logServer) Export(_ context.Context, req plogotlp.ExportRequest) (plogotlp.ExportResponse, error) {
	if err := l.s.failure(); err != nil {
		return plogotlp.NewExportResponse(), err
	}
	ld := req.Logs()
	l.s.Requests.Add(1)
	if l.s.keep {
		c := plog.NewLogs()
		ld.CopyTo(c)
		l.s.mu.Lock()
		l.s.logs = append(l.s.logs, c)
		l.s.mu.Unlock()
	}
	l.s.LogRecords.Add(int64(ld.LogRecordCount()))
	return plogotlp.NewExportResponse(), nil
}

// Unavailable is a gRPC error an OTLP exporter treats as retryable.
var Unavailable = status.Error(codes.Unavailable, "sink is down")
