// Package rwsink is a Prometheus remote-write receiver that decodes what
// arrives (snappy or zstd, remote write 1.0 or 2.0 protobuf) and counts the
// series, samples and histograms, without storing them. The benchmark harness
// uses it as the backend behind the agent under test.
package rwsink

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// Limits on untrusted input: a request body and what it may decompress to.
const (
	maxBodyBytes    = 64 << 20
	maxDecodedBytes = 256 << 20
)

// Counts is what a set of requests carried.
type Counts struct {
	// Series is the number of time series in the requests.
	Series int64
	// Samples is the number of float samples.
	Samples int64
	// Histograms is the number of native histogram samples.
	Histograms int64
}

// Sink is a running remote-write endpoint. Its counters are safe to read at
// any time.
type Sink struct {
	// URL is the remote-write URL to configure senders with.
	URL string

	// Series, Samples and Histograms count what the accepted requests held.
	Series, Samples, Histograms atomic.Int64
	// Requests counts requests decoded; Errors those rejected.
	Requests, Errors atomic.Int64

	srv *http.Server
	dec *zstd.Decoder
}

// Start listens on addr ("127.0.0.1:0" for a free port) and serves
// POST /api/v1/write.
func Start(addr string) (*Sink, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cannot listen on %s: %w", addr, err)
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderMaxMemory(maxDecodedBytes), zstd.WithDecoderConcurrency(1))
	if err != nil {
		ln.Close()
		return nil, err
	}
	s := &Sink{URL: "http://" + ln.Addr().String() + "/api/v1/write", dec: dec}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/write", s.handle)
	s.srv = &http.Server{Handler: mux, MaxHeaderBytes: 1 << 16}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Stop closes the listener and every connection.
func (s *Sink) Stop() {
	_ = s.srv.Close()
	s.dec.Close()
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1<<20); return &b }}

func (s *Sink) handle(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	body, err := readAll((*bp)[:0], http.MaxBytesReader(w, r.Body, maxBodyBytes))
	*bp = body
	if err != nil {
		s.Errors.Add(1)
		http.Error(w, "cannot read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	c, err := s.decode(body, r.Header.Get("Content-Encoding"), r.Header.Get("Content-Type"))
	if err != nil {
		s.Errors.Add(1)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.Requests.Add(1)
	s.Series.Add(c.Series)
	s.Samples.Add(c.Samples)
	s.Histograms.Add(c.Histograms)
	w.WriteHeader(http.StatusNoContent)
}

func readAll(dst []byte, r io.Reader) ([]byte, error) {
	for {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)]
		}
		n, err := r.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if errors.Is(err, io.EOF) {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}

// decode decompresses and decodes one request body.
func (s *Sink) decode(body []byte, encoding, contentType string) (Counts, error) {
	var raw []byte
	switch strings.ToLower(encoding) {
	case "", "snappy":
		n, err := snappy.DecodedLen(body)
		if err != nil {
			return Counts{}, fmt.Errorf("cannot decode snappy body: %w", err)
		}
		if n > maxDecodedBytes {
			return Counts{}, fmt.Errorf("cannot decode snappy body: %d bytes decoded exceeds the limit of %d", n, maxDecodedBytes)
		}
		if raw, err = snappy.Decode(nil, body); err != nil {
			return Counts{}, fmt.Errorf("cannot decode snappy body: %w", err)
		}
	case "zstd":
		var err error
		if raw, err = s.dec.DecodeAll(body, nil); err != nil {
			return Counts{}, fmt.Errorf("cannot decode zstd body: %w", err)
		}
	default:
		return Counts{}, fmt.Errorf("cannot decode body: unsupported Content-Encoding %q", encoding)
	}
	return Decode(raw, contentType)
}

// Decode counts what an uncompressed remote-write body holds. The content type
// picks the protobuf message: remote write 2.0's io.prometheus.write.v2.Request
// when it says so, 1.0's prometheus.WriteRequest otherwise.
func Decode(raw []byte, contentType string) (Counts, error) {
	var c Counts
	if isV2(contentType) {
		var req writev2.Request
		if err := req.Unmarshal(raw); err != nil {
			return c, fmt.Errorf("cannot unmarshal remote write 2.0 request: %w", err)
		}
		for i := range req.Timeseries {
			c.Series++
			c.Samples += int64(len(req.Timeseries[i].Samples))
			c.Histograms += int64(len(req.Timeseries[i].Histograms))
		}
		return c, nil
	}
	var req prompb.WriteRequest
	if err := req.Unmarshal(raw); err != nil {
		return c, fmt.Errorf("cannot unmarshal remote write 1.0 request: %w", err)
	}
	for i := range req.Timeseries {
		c.Series++
		c.Samples += int64(len(req.Timeseries[i].Samples))
		c.Histograms += int64(len(req.Timeseries[i].Histograms))
	}
	return c, nil
}

func isV2(contentType string) bool {
	_, params, err := mime.ParseMediaType(contentType)
	return err == nil && params["proto"] == "io.prometheus.write.v2.Request"
}
