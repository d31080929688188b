package grpcgzip

import (
	"bytes"
	stdgzip "compress/gzip"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/encoding"
)

// The registered "gzip" compressor is this one, and what it writes is gzip
// any reader takes, and it reads what the standard library writes.
func TestReplacesGRPCGzip(t *testing.T) {
	c := encoding.GetCompressor("gzip")
	require.IsType(t, &compressor{}, c)
	msg := []byte(strings.Repeat(`{"level":"info","msg":"request served"} `, 1000))

	for range 3 { // pooled writers and readers are reused cleanly
		var buf bytes.Buffer
		w, err := c.Compress(&buf)
		require.NoError(t, err)
		_, err = w.Write(msg)
		require.NoError(t, err)
		require.NoError(t, w.Close())
		require.Less(t, buf.Len(), len(msg)/10)

		std, err := stdgzip.NewReader(bytes.NewReader(buf.Bytes()))
		require.NoError(t, err)
		got, err := io.ReadAll(std)
		require.NoError(t, err)
		require.Equal(t, msg, got)

		var sbuf bytes.Buffer
		sw := stdgzip.NewWriter(&sbuf)
		_, err = sw.Write(msg)
		require.NoError(t, err)
		require.NoError(t, sw.Close())
		r, err := c.Decompress(&sbuf)
		require.NoError(t, err)
		got, err = io.ReadAll(r)
		require.NoError(t, err)
		require.Equal(t, msg, got)
		require.NoError(t, r.(io.Closer).Close())
	}
	_, err := c.Decompress(strings.NewReader("not gzip"))
	require.Error(t, err)
}

// BenchmarkCompress: this compressor against gRPC's own (the standard
// library's), on OTLP-like log JSON.
func BenchmarkCompress(b *testing.B) {
	msg := []byte(strings.Repeat(`{"resource":{"k8s.pod.name":"cart-7d9"},"body":"{\"level\":\"info\",\"msg\":\"request served\",\"route\":\"/api/cart\",\"status\":200}","ts":1796637600123456789} `, 5000))
	for name, c := range map[string]encoding.Compressor{"klauspost": newCompressor(), "stdlib": stdCompressor{}} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(msg)))
			for range b.N {
				w, _ := c.Compress(io.Discard)
				_, _ = w.Write(msg)
				_ = w.Close()
			}
		})
	}
}

type stdCompressor struct{}

func (stdCompressor) Name() string { return "std" }
func (stdCompressor) Compress(w io.Writer) (io.WriteCloser, error) {
	return stdgzip.NewWriter(w), nil
}
func (stdCompressor) Decompress(r io.Reader) (io.Reader, error) { return stdgzip.NewReader(r) }
