// Package traces is the OTLP/gRPC trace load generator of the benchmark
// harness. It builds a few requests of realistic traces once (HTTP, gRPC, DB
// and messaging spans, with both old and new semantic convention names, error
// and slow traces, a spread of trace durations, late spans), marshals them, and
// then only patches trace IDs into a reused buffer before each send, so that
// every trace has a unique ID and one core produces several times what an agent
// on another core can take.
package traces

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/gzip"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
)

// exportMethod is the OTLP trace service's only RPC.
const exportMethod = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

// Config says what traffic to generate. Zero fields take the defaults of
// DefaultConfig.
type Config struct {
	// Endpoint is the OTLP/gRPC host:port to send to.
	Endpoint string
	// SpansPerTrace is the number of spans of every trace (10).
	SpansPerTrace int
	// SpansPerRequest is about how many spans one request carries (512, an
	// SDK batch span processor's default).
	SpansPerRequest int
	// Templates is how many distinct requests are built and cycled (16).
	Templates int
	// ErrorRatio is the fraction of traces with a failed span (0.01).
	ErrorRatio float64
	// SlowRatio is the fraction of traces longer than SlowThreshold (0.01).
	SlowRatio float64
	// SlowThreshold is the duration slow traces exceed (500 ms); the others
	// stay under 90% of it.
	SlowThreshold time.Duration
	// LateRatio is the fraction of traces followed by one more span sent
	// LateDelay after the trace itself (0.01; negative for none).
	LateRatio float64
	// LateDelay is how long after its trace a late span is sent (7 s, past a
	// 5 s decision wait).
	LateDelay time.Duration
	// Gzip compresses requests (gRPC "gzip"; the fastest level, so the
	// generator stays cheap). Off by default, as in the OpenTelemetry Go SDK.
	Gzip bool
	// Rate is the target spans per second; 0 sends as fast as the receiver
	// accepts (saturation).
	Rate float64
	// Concurrency is the number of requests in flight (4).
	Concurrency int
	// Seed makes the templates reproducible.
	Seed uint64
}

// DefaultConfig returns the traffic of the reference figures: 10-span traces,
// about 250 bytes per span, 1% error and 1% slow traces.
func DefaultConfig() Config {
	return Config{
		SpansPerTrace:   10,
		SpansPerRequest: 512,
		Templates:       16,
		ErrorRatio:      0.01,
		SlowRatio:       0.01,
		SlowThreshold:   500 * time.Millisecond,
		LateRatio:       0.01,
		LateDelay:       7 * time.Second,
		Concurrency:     4,
		Seed:            1,
	}
}

func (c *Config) applyDefaults() {
	d := DefaultConfig()
	if c.SpansPerTrace <= 0 {
		c.SpansPerTrace = d.SpansPerTrace
	}
	if c.SpansPerRequest <= 0 {
		c.SpansPerRequest = d.SpansPerRequest
	}
	if c.Templates <= 0 {
		c.Templates = d.Templates
	}
	if c.SlowThreshold <= 0 {
		c.SlowThreshold = d.SlowThreshold
	}
	if c.LateRatio == 0 {
		c.LateRatio = d.LateRatio
	}
	if c.LateDelay <= 0 {
		c.LateDelay = d.LateDelay
	}
	if c.Concurrency <= 0 {
		c.Concurrency = d.Concurrency
	}
}

// template is one marshaled request and where its trace IDs are.
type template struct {
	raw     []byte
	spans   int
	nTraces int      // slots [0, nTraces) are whole traces, the rest late spans
	offsets []int    // byte offset of every span's trace_id value
	slots   []uint32 // the trace slot of each offset, relative to the template
	nSlots  int
}

// Stats are the generator's counters; all are totals since Run started.
type Stats struct {
	// Spans and Requests count what the receiver accepted.
	Spans, Requests int64
	// Errors counts failed requests (refused, unavailable, timed out).
	Errors int64
	// Bytes counts uncompressed request bytes accepted.
	Bytes int64
}

// Generator sends trace requests. Build one with New, run it with Run.
type Generator struct {
	cfg       Config
	templates []template
	idSeed    uint64
	idNext    atomic.Uint64

	spans, requests, errs, bytes atomic.Int64

	lateMu sync.Mutex
	late   []lateID // FIFO of sent trace IDs waiting to become late
}

type lateID struct {
	at time.Time
	id [16]byte
}

// New builds the templates. It does not connect.
func New(cfg Config) (*Generator, error) {
	cfg.applyDefaults()
	if cfg.Endpoint == "" {
		return nil, errors.New("traces: no endpoint")
	}
	if cfg.ErrorRatio < 0 || cfg.ErrorRatio > 1 || cfg.SlowRatio < 0 || cfg.SlowRatio > 1 || cfg.LateRatio > 1 {
		return nil, fmt.Errorf("traces: ratios must be within [0, 1]: error %v, slow %v, late %v", cfg.ErrorRatio, cfg.SlowRatio, cfg.LateRatio)
	}
	g := &Generator{cfg: cfg, idSeed: cfg.Seed*0x9e3779b97f4a7c15 + uint64(time.Now().UnixNano())}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5eed))
	tracesPerReq := max(cfg.SpansPerRequest/cfg.SpansPerTrace, 1)
	lateAcc := 0.0
	var m ptrace.ProtoMarshaler
	for i := 0; i < cfg.Templates; i++ {
		lateAcc += max(cfg.LateRatio, 0) * float64(tracesPerReq)
		nLate := int(lateAcc)
		lateAcc -= float64(nLate)
		td := buildTemplate(rng, &cfg, 0, tracesPerReq, nLate)
		raw, err := m.MarshalTraces(td)
		if err != nil {
			return nil, fmt.Errorf("traces: cannot marshal template: %w", err)
		}
		t := template{raw: raw, spans: td.SpanCount(), nTraces: tracesPerReq, nSlots: tracesPerReq + nLate}
		if err := t.index(); err != nil {
			return nil, err
		}
		g.templates = append(g.templates, t)
	}
	return g, nil
}

// BytesPerSpan is the average uncompressed size of a span on the wire,
// resource and scope overhead included.
func (g *Generator) BytesPerSpan() float64 {
	var b, s int
	for _, t := range g.templates {
		b += len(t.raw)
		s += t.spans
	}
	return float64(b) / float64(s)
}

// SpansPerRequest is the average number of spans in a request.
func (g *Generator) SpansPerRequest() float64 {
	var s int
	for _, t := range g.templates {
		s += t.spans
	}
	return float64(s) / float64(len(g.templates))
}

// Stats returns the counters so far.
func (g *Generator) Stats() Stats {
	return Stats{Spans: g.spans.Load(), Requests: g.requests.Load(), Errors: g.errs.Load(), Bytes: g.bytes.Load()}
}

// index walks the marshaled request (TracesData, wire-identical to
// ExportTraceServiceRequest) and records every span's trace_id offset.
func (t *template) index() error {
	// resource_spans=1 > scope_spans=2 > spans=2 > trace_id=1
	path := []protowire.Number{1, 2, 2}
	var walk func(b []byte, base, depth int) error
	walk = func(b []byte, base, depth int) error {
		for pos := 0; pos < len(b); {
			num, typ, n := protowire.ConsumeTag(b[pos:])
			if n < 0 {
				return fmt.Errorf("traces: bad template at byte %d", base+pos)
			}
			pos += n
			if typ != protowire.BytesType {
				m := protowire.ConsumeFieldValue(num, typ, b[pos:])
				if m < 0 {
					return fmt.Errorf("traces: bad template at byte %d", base+pos)
				}
				pos += m
				continue
			}
			v, m := protowire.ConsumeBytes(b[pos:])
			if m < 0 {
				return fmt.Errorf("traces: bad template at byte %d", base+pos)
			}
			start := pos + m - len(v)
			switch {
			case depth < len(path) && num == path[depth]:
				if err := walk(v, base+start, depth+1); err != nil {
					return err
				}
			case depth == len(path) && num == 1:
				if len(v) != 16 || binary.BigEndian.Uint64(v[:8]) != templateMagic {
					return fmt.Errorf("traces: unexpected trace id at byte %d", base+start)
				}
				t.offsets = append(t.offsets, base+start)
				t.slots = append(t.slots, uint32(binary.BigEndian.Uint64(v[8:])))
			}
			pos += m
		}
		return nil
	}
	if err := walk(t.raw, 0, 0); err != nil {
		return err
	}
	if len(t.offsets) != t.spans {
		return fmt.Errorf("traces: found %d trace ids for %d spans", len(t.offsets), t.spans)
	}
	return nil
}

// nextID returns a trace ID never returned before by this generator: both
// halves are bijective mixes of a counter, so they look random to samplers
// that hash or threshold the ID.
func (g *Generator) nextID(dst *[16]byte) {
	n := g.idNext.Add(1)
	binary.BigEndian.PutUint64(dst[:8], splitmix(n^g.idSeed))
	binary.BigEndian.PutUint64(dst[8:], splitmix(n+g.idSeed))
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// lateOrNew returns the ID of a trace sent at least LateDelay ago, or a new one
// while none is old enough.
func (g *Generator) lateOrNew(dst *[16]byte, now time.Time) {
	g.lateMu.Lock()
	if len(g.late) > 0 && now.Sub(g.late[0].at) >= g.cfg.LateDelay {
		*dst = g.late[0].id
		g.late = g.late[1:]
		g.lateMu.Unlock()
		return
	}
	g.lateMu.Unlock()
	g.nextID(dst)
}

func (g *Generator) remember(id [16]byte, now time.Time) {
	g.lateMu.Lock()
	if len(g.late) < 1<<16 {
		g.late = append(g.late, lateID{at: now, id: id})
	}
	g.lateMu.Unlock()
}

// Run connects and sends until ctx is done, then returns nil; it returns an
// error only if it cannot start.
func (g *Generator) Run(ctx context.Context) error {
	if g.cfg.Gzip {
		registerFastGzip()
	}
	conn, err := grpc.NewClient(g.cfg.Endpoint,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{})),
		grpc.WithInitialWindowSize(4<<20), grpc.WithInitialConnWindowSize(16<<20),
	)
	if err != nil {
		return fmt.Errorf("traces: cannot connect to %s: %w", g.cfg.Endpoint, err)
	}
	defer conn.Close()
	var pace *pacer
	if g.cfg.Rate > 0 {
		pace = &pacer{interval: time.Duration(float64(time.Second) * g.SpansPerRequest() / g.cfg.Rate), next: time.Now()}
	}
	var wg sync.WaitGroup
	for w := 0; w < g.cfg.Concurrency; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			g.worker(ctx, conn, w, pace)
		}(w)
	}
	wg.Wait()
	return nil
}

func (g *Generator) worker(ctx context.Context, conn *grpc.ClientConn, w int, pace *pacer) {
	var opts []grpc.CallOption
	if g.cfg.Gzip {
		opts = append(opts, grpc.UseCompressor("gzip"))
	}
	maxLen := 0
	for _, t := range g.templates {
		maxLen = max(maxLen, len(t.raw))
	}
	// The worker's own buffer: patched in place, owned by this goroutine, and
	// free again when Invoke returns (unary calls send before they return).
	buf := make([]byte, 0, maxLen)
	ids := make([][16]byte, 0, 256)
	for i := w; ctx.Err() == nil; i++ {
		if pace != nil && !pace.wait(ctx) {
			return
		}
		t := &g.templates[i%len(g.templates)]
		buf = append(buf[:0], t.raw...)
		now := time.Now()
		ids = ids[:0]
		for s := 0; s < t.nSlots; s++ {
			var id [16]byte
			if s < t.nTraces {
				g.nextID(&id)
			} else {
				g.lateOrNew(&id, now)
			}
			ids = append(ids, id)
		}
		for k, off := range t.offsets {
			copy(buf[off:off+16], ids[t.slots[k]][:])
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := conn.Invoke(cctx, exportMethod, &buf, new(struct{}), opts...)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			g.errs.Add(1)
			// A refusing agent is not hammered; clients back off too.
			select {
			case <-ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		if g.cfg.LateRatio > 0 {
			g.remember(ids[0], now)
		}
		g.spans.Add(int64(t.spans))
		g.requests.Add(1)
		g.bytes.Add(int64(len(buf)))
	}
}

// pacer hands out send times interval apart; a sender that falls more than
// a second behind starts again from now instead of bursting.
type pacer struct {
	mu       sync.Mutex
	interval time.Duration
	next     time.Time
}

func (p *pacer) wait(ctx context.Context) bool {
	p.mu.Lock()
	now := time.Now()
	if now.Sub(p.next) > time.Second {
		p.next = now
	}
	at := p.next
	p.next = p.next.Add(p.interval)
	p.mu.Unlock()
	if d := time.Until(at); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return ctx.Err() == nil
}

// rawCodec sends a *[]byte as it is and discards the response body: the
// request is already protobuf, and the response of a successful OTLP export
// only matters for partial success, which the agents do not use here.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("rawCodec: cannot marshal %T", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(*b)}, nil
}

func (rawCodec) Unmarshal(_ mem.BufferSlice, _ any) error { return nil }

func (rawCodec) Name() string { return "proto" }

var gzipOnce sync.Once

// registerFastGzip replaces gRPC's "gzip" compressor in this process with
// klauspost's at its fastest level: the wire format is the same, and the
// generator then compresses several times faster than with the standard
// library. It is process-wide; decompression (the sink's) is unaffected.
func registerFastGzip() {
	gzipOnce.Do(func() { encoding.RegisterCompressor(&fastGzip{}) })
}

type fastGzip struct {
	writers sync.Pool
	readers sync.Pool
}

func (c *fastGzip) Name() string { return "gzip" }

func (c *fastGzip) Compress(w io.Writer) (io.WriteCloser, error) {
	if z, ok := c.writers.Get().(*gzip.Writer); ok {
		z.Reset(w)
		return &pooledWriter{Writer: z, pool: &c.writers}, nil
	}
	z, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	return &pooledWriter{Writer: z, pool: &c.writers}, nil
}

type pooledWriter struct {
	*gzip.Writer
	pool *sync.Pool
}

func (w *pooledWriter) Close() error {
	err := w.Writer.Close()
	w.pool.Put(w.Writer)
	return err
}

func (c *fastGzip) Decompress(r io.Reader) (io.Reader, error) {
	if z, ok := c.readers.Get().(*gzip.Reader); ok {
		if err := z.Reset(r); err != nil {
			c.readers.Put(z)
			return nil, err
		}
		return &pooledReader{z: z, pool: &c.readers}, nil
	}
	z, err := gzip.NewReader(r)
	if err != nil {
		return nil, err
	}
	return &pooledReader{z: z, pool: &c.readers}, nil
}

// pooledReader returns its gzip.Reader to the pool at EOF, once: a caller
// that reads again after EOF gets EOF, not a reader another stream now owns.
type pooledReader struct {
	z    *gzip.Reader
	pool *sync.Pool
}

func (r *pooledReader) Read(p []byte) (int, error) {
	if r.z == nil {
		return 0, io.EOF
	}
	n, err := r.z.Read(p)
	if errors.Is(err, io.EOF) {
		r.pool.Put(r.z)
		r.z = nil
	}
	return n, err
}
