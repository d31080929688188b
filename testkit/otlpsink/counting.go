package otlpsink

import (
	"context"
	"fmt"
	"net"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
)

// StartCounting is Start for load tests that only need counts: it reads the
// items' count off the protobuf wire format without building pdata, which
// costs a fraction of a full decode, so the sink takes little of the CPU it
// shares with the load generator. Traces, Metrics and Logs return nothing;
// SetFailure works as with Start.
func StartCounting(addr string) (*Sink, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Sink{Addr: ln.Addr().String()}
	s.srv = grpc.NewServer(grpc.MaxRecvMsgSize(64<<20), grpc.ForceServerCodecV2(countCodec{}))
	for _, sd := range []struct {
		service string
		kind    itemKind
	}{
		{"opentelemetry.proto.collector.trace.v1.TraceService", spans},
		{"opentelemetry.proto.collector.metrics.v1.MetricsService", points},
		{"opentelemetry.proto.collector.logs.v1.LogsService", records},
	} {
		kind := sd.kind
		s.srv.RegisterService(&grpc.ServiceDesc{
			ServiceName: sd.service,
			HandlerType: (*any)(nil),
			Methods: []grpc.MethodDesc{{MethodName: "Export", Handler: func(_ any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				if err := s.failure(); err != nil {
					return nil, err
				}
				req := countedRequest{kind: kind}
				if err := dec(&req); err != nil {
					return nil, err
				}
				s.Requests.Add(1)
				switch kind {
				case spans:
					s.Spans.Add(req.n)
				case points:
					s.DataPoints.Add(req.n)
				default:
					s.LogRecords.Add(req.n)
				}
				return emptyResponse{}, nil
			}}},
		}, nil)
	}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

type itemKind int

const (
	spans itemKind = iota
	points
	records
)

// countedRequest is what countCodec decodes an export request into.
type countedRequest struct {
	kind itemKind
	n    int64
}

type emptyResponse struct{}

// countCodec decodes requests into their item counts and encodes the empty
// export response (all of whose fields are unset: zero bytes).
type countCodec struct{}

var countBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1<<20); return &b }}

func (countCodec) Marshal(any) (mem.BufferSlice, error) { return nil, nil }

func (countCodec) Name() string { return "proto" }

func (countCodec) Unmarshal(data mem.BufferSlice, v any) error {
	req, ok := v.(*countedRequest)
	if !ok {
		return fmt.Errorf("otlpsink: cannot decode into %T", v)
	}
	bp := countBufs.Get().(*[]byte)
	defer countBufs.Put(bp)
	b := (*bp)[:0]
	for _, buf := range data {
		b = append(b, buf.ReadOnlyData()...)
	}
	*bp = b
	n, err := CountItems(b, req.kind == spans, req.kind == points)
	req.n = n
	return err
}

// CountItems counts the spans (traces), data points (metrics) or log records
// (neither) in a serialized OTLP export request, walking the wire format.
func CountItems(b []byte, traces, metrics bool) (int64, error) {
	// resource_* = 1 > scope_* = 2 > spans / metrics / log_records = 2
	path := []protowire.Number{1, 2}
	if !metrics {
		var n int64
		err := walk(b, path, func(num protowire.Number, _ []byte) error {
			if num == 2 {
				n++
			}
			return nil
		})
		return n, err
	}
	var n int64
	err := walk(b, path, func(num protowire.Number, metric []byte) error {
		if num != 2 {
			return nil
		}
		// Metric: gauge 5, sum 7, histogram 9, exponential_histogram 10,
		// summary 11; each holds data_points = 1.
		return walk(metric, nil, func(f protowire.Number, data []byte) error {
			switch f {
			case 5, 7, 9, 10, 11:
				return walk(data, nil, func(g protowire.Number, _ []byte) error {
					if g == 1 {
						n++
					}
					return nil
				})
			}
			return nil
		})
	})
	return n, err
}

// walk descends into the length-delimited fields named by path and calls leaf
// for every length-delimited field at the end of it.
func walk(b []byte, path []protowire.Number, leaf func(protowire.Number, []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("otlpsink: cannot decode request: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if typ != protowire.BytesType {
			m := protowire.ConsumeFieldValue(num, typ, b)
			if m < 0 {
				return fmt.Errorf("otlpsink: cannot decode request: %w", protowire.ParseError(m))
			}
			b = b[m:]
			continue
		}
		v, m := protowire.ConsumeBytes(b)
		if m < 0 {
			return fmt.Errorf("otlpsink: cannot decode request: %w", protowire.ParseError(m))
		}
		b = b[m:]
		var err error
		switch {
		case len(path) == 0:
			err = leaf(num, v)
		case num == path[0]:
			err = walk(v, path[1:], leaf)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
