// Package promrw decodes Prometheus remote-write requests (1.0 and 2.0) and
// translates them to OTLP metrics following the OpenTelemetry/Prometheus
// compatibility specification, and cuts the exporter's series into encoded
// remote-write 1.0 batches (encode.go). It is the one place of Vigil that
// imports github.com/prometheus/prometheus, whose v0.x API churns.
//
// Untrusted input is bounded before it is expanded: the snappy length header
// is checked against a limit before anything is decompressed, and native
// histogram bucket expansion is budgeted per request.
package promrw

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// Version is a remote-write protocol version.
type Version uint8

const (
	// V1 is remote write 1.0: prometheus.WriteRequest.
	V1 Version = 1
	// V2 is remote write 2.0: io.prometheus.write.v2.Request.
	V2 Version = 2
)

// String returns "1.0" or "2.0".
func (v Version) String() string {
	switch v {
	case V1:
		return "1.0"
	case V2:
		return "2.0"
	}
	return "unknown"
}

const (
	protoContentType = "application/x-protobuf"
	v1Message        = "prometheus.WriteRequest"
	v2Message        = "io.prometheus.write.v2.Request"
)

// Errors a caller maps to HTTP status codes. Every error returned by this
// package wraps exactly one of them.
var (
	// ErrUnsupportedMediaType means the Content-Type or Content-Encoding is not
	// one this receiver speaks (HTTP 415).
	ErrUnsupportedMediaType = errors.New("unsupported media type")
	// ErrTooLarge means the body, compressed or decoded, exceeds a limit (HTTP 413).
	ErrTooLarge = errors.New("request too large")
	// ErrMalformed means the body cannot be decompressed or decoded (HTTP 400).
	ErrMalformed = errors.New("malformed request")
)

// ParseContentType negotiates the protocol version from a Content-Type header
// as Prometheus does: a missing header and a bare application/x-protobuf mean
// 1.0, the proto parameter selects the message.
func ParseContentType(ct string) (Version, error) {
	ct = strings.TrimSpace(ct)
	if ct == "" {
		return V1, nil
	}
	media, params, _ := strings.Cut(ct, ";")
	if !strings.EqualFold(strings.TrimSpace(media), protoContentType) {
		return 0, fmt.Errorf("%w: content type %q, want %s", ErrUnsupportedMediaType, ct, protoContentType)
	}
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok {
			return 0, fmt.Errorf("%w: content type %q: parameter %q is not key=value", ErrUnsupportedMediaType, ct, p)
		}
		if strings.TrimSpace(k) != "proto" {
			continue
		}
		switch strings.Trim(strings.TrimSpace(v), `"`) {
		case v1Message:
			return V1, nil
		case v2Message:
			return V2, nil
		default:
			return 0, fmt.Errorf("%w: content type %q: unknown proto %q, want %s or %s", ErrUnsupportedMediaType, ct, v, v1Message, v2Message)
		}
	}
	return V1, nil
}

// ContentType returns the Content-Type a client sends for version v.
func ContentType(v Version) string {
	if v == V2 {
		return protoContentType + ";proto=" + v2Message
	}
	return protoContentType
}

// CheckEncoding accepts the Content-Encoding values remote write uses: snappy,
// or none (Prometheus decodes snappy in both cases).
func CheckEncoding(enc string) error {
	if enc == "" || strings.EqualFold(enc, "snappy") {
		return nil
	}
	return fmt.Errorf("%w: content encoding %q, only snappy is accepted", ErrUnsupportedMediaType, enc)
}

// Decompress decodes a snappy block into dst (reusing its capacity) after
// checking the decoded length in the block header against limit, so a small
// compressed bomb is refused before any memory is committed to it.
func Decompress(dst, src []byte, limit int) ([]byte, error) {
	n, err := snappy.DecodedLen(src)
	if err != nil {
		return dst[:0], fmt.Errorf("%w: cannot read snappy length header: %w", ErrMalformed, err)
	}
	if n > limit {
		return dst[:0], fmt.Errorf("%w: decoded size %d bytes exceeds max_decompressed_size %d", ErrTooLarge, n, limit)
	}
	out, err := snappy.Decode(dst[:cap(dst)], src)
	if err != nil {
		return dst[:0], fmt.Errorf("%w: cannot decompress snappy body: %w", ErrMalformed, err)
	}
	return out, nil
}

// Request is one decoded remote-write request of either version. Get one from
// GetRequest, Decode into it, translate it, and hand it back with PutRequest;
// it must not be used after that. Strings decoded into it are fresh copies,
// so pdata built from it stays valid after PutRequest.
type Request struct {
	Version Version
	V1      prompb.WriteRequest
	V2      writev2.Request
}

var requestPool = sync.Pool{New: func() any { return new(Request) }}

// GetRequest returns an empty Request from a pool.
func GetRequest() *Request { return requestPool.Get().(*Request) }

// PutRequest resets r and returns it to the pool.
func PutRequest(r *Request) {
	r.reset()
	requestPool.Put(r)
}

// maxPooledSeries keeps a single huge request from pinning its slices in the
// pool forever.
const maxPooledSeries = 1 << 16

func (r *Request) reset() {
	// Zero the used elements so pooled slices hold no strings of old requests;
	// the generated Unmarshal appends zero values, so capacity is reused.
	clear(r.V1.Timeseries)
	clear(r.V1.Metadata)
	clear(r.V2.Symbols)
	clear(r.V2.Timeseries)
	r.V1.Timeseries, r.V1.Metadata = r.V1.Timeseries[:0], r.V1.Metadata[:0]
	r.V2.Symbols, r.V2.Timeseries = r.V2.Symbols[:0], r.V2.Timeseries[:0]
	if cap(r.V1.Timeseries) > maxPooledSeries {
		r.V1.Timeseries = nil
	}
	if cap(r.V2.Timeseries) > maxPooledSeries {
		r.V2.Timeseries = nil
	}
	r.V1.XXX_unrecognized, r.V2.XXX_unrecognized = nil, nil
}

// Decode unmarshals a decompressed protobuf body of version v into r.
func (r *Request) Decode(v Version, body []byte) error {
	r.reset()
	r.Version = v
	var err error
	switch v {
	case V1:
		err = r.V1.Unmarshal(body)
	case V2:
		err = r.V2.Unmarshal(body)
	default:
		return fmt.Errorf("%w: unknown protocol version %d", ErrUnsupportedMediaType, v)
	}
	if err != nil {
		return fmt.Errorf("%w: cannot decode %s protobuf: %w", ErrMalformed, v, err)
	}
	// A message of the other version decodes as an empty one with unknown
	// fields; say so rather than accept nothing silently.
	if v == V1 && len(r.V1.Timeseries) == 0 && len(r.V1.Metadata) == 0 && len(r.V1.XXX_unrecognized) > 0 {
		return fmt.Errorf("%w: body has no 1.0 timeseries or metadata, only unknown fields (a 2.0 request sent as Content-Type %s?)", ErrMalformed, protoContentType)
	}
	if v == V2 && len(r.V2.Timeseries) == 0 && len(r.V2.Symbols) == 0 && len(r.V2.XXX_unrecognized) > 0 {
		return fmt.Errorf("%w: body has no 2.0 timeseries or symbols, only unknown fields (a 1.0 request sent as 2.0?)", ErrMalformed)
	}
	return nil
}
