// Package grpcgzip replaces gRPC's "gzip" compressor, which the collector's
// OTLP gRPC exporters and receivers use (compression: gzip, their default),
// with github.com/klauspost/compress/gzip: the same format and level, at
// about half the CPU of the standard library's compress/flate, which was
// most of an agent's CPU when it exports logs (benchmarks/RESULTS.md, L1).
//
// Importing the package is enough: its init runs after gRPC's own gzip
// package (imported here for that reason) and registers over it.
package grpcgzip

import (
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"google.golang.org/grpc/encoding"
	grpcgzip "google.golang.org/grpc/encoding/gzip" // registered first, then replaced
)

func init() {
	encoding.RegisterCompressor(newCompressor())
}

// compressor pools writers and readers, as gRPC's own does.
type compressor struct {
	writers sync.Pool
	readers sync.Pool
}

func newCompressor() *compressor {
	c := &compressor{}
	c.writers.New = func() any {
		// gRPC's default level (gzip.DefaultCompression), as before.
		return &writer{Writer: gzip.NewWriter(io.Discard), pool: &c.writers}
	}
	return c
}

// Name is gRPC's: peers negotiate "gzip" as always.
func (c *compressor) Name() string { return grpcgzip.Name }

func (c *compressor) Compress(w io.Writer) (io.WriteCloser, error) {
	z := c.writers.Get().(*writer)
	z.Reset(w)
	return z, nil
}

func (c *compressor) Decompress(r io.Reader) (io.Reader, error) {
	z, ok := c.readers.Get().(*reader)
	if !ok {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, err
		}
		return &reader{Reader: zr, pool: &c.readers}, nil
	}
	if err := z.Reset(r); err != nil {
		c.readers.Put(z)
		return nil, err
	}
	return z, nil
}

type writer struct {
	*gzip.Writer
	pool *sync.Pool
}

// Close ends the stream and returns the writer to the pool.
func (z *writer) Close() error {
	defer z.pool.Put(z)
	return z.Writer.Close()
}

type reader struct {
	*gzip.Reader
	pool *sync.Pool
}

// Close returns the reader to the pool; gRPC closes a decompressor's
// reader once it has read the message.
func (z *reader) Close() error {
	defer z.pool.Put(z)
	return z.Reader.Close()
}
