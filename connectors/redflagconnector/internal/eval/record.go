package eval

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"

	"github.com/vigilhq/vigil/internal/alertevent"
)

// Signal is the kind of telemetry in a recorded frame.
type Signal byte

// The signals a recording holds.
const (
	SignalTraces  Signal = 't'
	SignalMetrics Signal = 'm'
	SignalLogs    Signal = 'l'
)

// Frame is one OTLP export request as it arrived, with its arrival time.
type Frame struct {
	At      time.Time
	Signal  Signal
	Traces  ptrace.Traces
	Metrics pmetric.Metrics
	Logs    plog.Logs
}

// Receiver is an OTLP/gRPC server for a live evaluation: it collects the
// red-flag alert events the agent under test sends (log records named
// vigil.alert) and, when given a writer, records every request it gets, with
// its arrival time, for replaying through the detectors later.
type Receiver struct {
	Addr string
	srv  *grpc.Server

	mu     sync.Mutex
	events []alertevent.Event
	rec    *recordWriter
	err    error
}

// StartReceiver listens on addr (127.0.0.1:0 for any port). record, when
// not nil, receives the recording (zstd-compressed frames); the caller
// closes it after Stop.
func StartReceiver(addr string, record io.Writer) (*Receiver, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cannot listen on %s: %w", addr, err)
	}
	r := &Receiver{Addr: ln.Addr().String(), srv: grpc.NewServer(grpc.MaxRecvMsgSize(64 << 20))}
	if record != nil {
		zw, err := zstd.NewWriter(record, zstd.WithEncoderLevel(zstd.SpeedFastest))
		if err != nil {
			_ = ln.Close()
			return nil, fmt.Errorf("cannot start the recording: %w", err)
		}
		r.rec = &recordWriter{zw: zw}
	}
	ptraceotlp.RegisterGRPCServer(r.srv, &traceServer{r: r})
	pmetricotlp.RegisterGRPCServer(r.srv, &metricServer{r: r})
	plogotlp.RegisterGRPCServer(r.srv, &logServer{r: r})
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

// Stop stops serving and finishes the recording. It returns the first
// error the recording met.
func (r *Receiver) Stop() error {
	r.srv.Stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rec != nil {
		if err := r.rec.zw.Close(); err != nil && r.err == nil {
			r.err = fmt.Errorf("cannot finish the recording: %w", err)
		}
		r.rec = nil
	}
	return r.err
}

// Events returns the alert events received so far, in arrival order.
func (r *Receiver) Events() []alertevent.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]alertevent.Event(nil), r.events...)
}

func (r *Receiver) record(s Signal, b []byte, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rec == nil || r.err != nil {
		return
	}
	if err == nil {
		err = r.rec.write(time.Now(), s, b)
	}
	if err != nil {
		r.err = fmt.Errorf("cannot record: %w", err)
	}
}

type traceServer struct {
	ptraceotlp.UnimplementedGRPCServer
	r *Receiver
}

func (t *traceServer) Export(_ context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	b, err := req.MarshalProto()
	t.r.record(SignalTraces, b, err)
	return ptraceotlp.NewExportResponse(), nil
}

type metricServer struct {
	pmetricotlp.UnimplementedGRPCServer
	r *Receiver
}

func (m *metricServer) Export(_ context.Context, req pmetricotlp.ExportRequest) (pmetricotlp.ExportResponse, error) {
	b, err := req.MarshalProto()
	m.r.record(SignalMetrics, b, err)
	return pmetricotlp.NewExportResponse(), nil
}

type logServer struct {
	plogotlp.UnimplementedGRPCServer
	r *Receiver
}

func (l *logServer) Export(_ context.Context, req plogotlp.ExportRequest) (plogotlp.ExportResponse, error) {
	ld := req.Logs()
	var evs []alertevent.Event
	for _, rl := range ld.ResourceLogs().All() {
		for _, sl := range rl.ScopeLogs().All() {
			for _, lr := range sl.LogRecords().All() {
				if lr.EventName() != alertevent.EventName {
					continue
				}
				if ev, err := alertevent.FromRecord(lr); err == nil {
					evs = append(evs, ev)
				}
			}
		}
	}
	if len(evs) > 0 {
		l.r.mu.Lock()
		l.r.events = append(l.r.events, evs...)
		l.r.mu.Unlock()
		return plogotlp.NewExportResponse(), nil
	}
	b, err := req.MarshalProto()
	l.r.record(SignalLogs, b, err)
	return plogotlp.NewExportResponse(), nil
}

// recordWriter writes frames: arrival time (Unix ns, 8 bytes little
// endian), signal (1 byte), payload length (4 bytes), the OTLP request.
type recordWriter struct {
	zw  *zstd.Encoder
	hdr [13]byte
}

func (w *recordWriter) write(at time.Time, s Signal, b []byte) error {
	binary.LittleEndian.PutUint64(w.hdr[:8], uint64(at.UnixNano()))
	w.hdr[8] = byte(s)
	binary.LittleEndian.PutUint32(w.hdr[9:], uint32(len(b)))
	if _, err := w.zw.Write(w.hdr[:]); err != nil {
		return err
	}
	_, err := w.zw.Write(b)
	return err
}

// maxFrame bounds one recorded request (the receiver's own message limit).
const maxFrame = 64 << 20

// ReadRecording calls fn for every frame of a recording file, in order.
func ReadRecording(path string, fn func(Frame) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("cannot open recording: %w", err)
	}
	defer f.Close()
	zr, err := zstd.NewReader(f)
	if err != nil {
		return fmt.Errorf("cannot read recording %s: %w", path, err)
	}
	defer zr.Close()
	br := bufio.NewReaderSize(zr, 1<<20)
	var hdr [13]byte
	var buf []byte
	for n := 0; ; n++ {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("recording %s: frame %d: cannot read its header: %w", path, n, err)
		}
		size := binary.LittleEndian.Uint32(hdr[9:])
		if size > maxFrame {
			return fmt.Errorf("recording %s: frame %d: %d bytes is more than the %d a frame may hold", path, n, size, maxFrame)
		}
		buf = append(buf[:0], make([]byte, size)...)
		if _, err := io.ReadFull(br, buf); err != nil {
			return fmt.Errorf("recording %s: frame %d: cannot read %d bytes: %w", path, n, size, err)
		}
		fr := Frame{At: time.Unix(0, int64(binary.LittleEndian.Uint64(hdr[:8]))), Signal: Signal(hdr[8])}
		switch fr.Signal {
		case SignalTraces:
			req := ptraceotlp.NewExportRequest()
			if err := req.UnmarshalProto(buf); err != nil {
				return fmt.Errorf("recording %s: frame %d: bad traces: %w", path, n, err)
			}
			fr.Traces = req.Traces()
		case SignalMetrics:
			req := pmetricotlp.NewExportRequest()
			if err := req.UnmarshalProto(buf); err != nil {
				return fmt.Errorf("recording %s: frame %d: bad metrics: %w", path, n, err)
			}
			fr.Metrics = req.Metrics()
		case SignalLogs:
			req := plogotlp.NewExportRequest()
			if err := req.UnmarshalProto(buf); err != nil {
				return fmt.Errorf("recording %s: frame %d: bad logs: %w", path, n, err)
			}
			fr.Logs = req.Logs()
		default:
			return fmt.Errorf("recording %s: frame %d: unknown signal %q", path, n, hdr[8])
		}
		if err := fn(fr); err != nil {
			return err
		}
	}
}
