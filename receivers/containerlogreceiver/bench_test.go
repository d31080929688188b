package containerlogreceiver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/vigilhq/vigil/receivers/containerlogreceiver/internal/metadata"
)

// benchFile writes lines CRI lines of about 1 KB (a JSON body, as L1's)
// into a kubelet-layout file and returns the config reading it.
func benchFile(b *testing.B, lines int) *Config {
	root := b.TempDir()
	dir := filepath.Join(root, "var", "log", "pods", "shop_cart-7d9_0b9e5f0c-1d2e-4f3a", "app")
	require.NoError(b, os.MkdirAll(dir, 0o755))
	var sb strings.Builder
	pad := strings.Repeat("x", 800)
	for i := range lines {
		fmt.Fprintf(&sb, `2026-12-07T10:00:00.123456789Z stdout F {"level":"info","ts":"2026-12-07T10:00:00Z","msg":"request served","route":"/api/cart","status":200,"duration_ms":12.5,"user":"u-%d","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","pad":"%s"}`+"\n", i, pad)
	}
	require.NoError(b, os.WriteFile(filepath.Join(dir, "0.log"), []byte(sb.String()), 0o644))
	cfg := testConfig(root)
	return cfg
}

// BenchmarkRead reads a file of 1 KB CRI lines into batches, without and
// with JSON bodies; a pipeline that takes every batch and drops it. Per
// line: time and allocations (the records themselves are pdata's).
func BenchmarkRead(b *testing.B) {
	const lines = 20000
	for _, json := range []bool{false, true} {
		b.Run(fmt.Sprintf("json=%v", json), func(b *testing.B) {
			cfg := benchFile(b, lines)
			cfg.JSON.Enabled = json
			var got int
			next, _ := consumer.NewLogs(func(_ context.Context, ld plog.Logs) error {
				got += ld.LogRecordCount()
				return nil
			})
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				r, err := newReceiver(receivertest.NewNopSettings(metadata.Type), cfg, next)
				require.NoError(b, err)
				got = 0
				r.poll(context.Background())
				require.Equal(b, lines, got)
				for _, rd := range r.readers {
					rd.close()
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*lines), "ns/line")
		})
	}
}

// BenchmarkPollManyFiles is a node with far more log files than
// max_open_files: 4,096 files under a cap of 256, and at every poll 512 of
// them (mostly closed) get a line. Each reopening at the cap closes the
// file idle longest. Per poll: time.
func BenchmarkPollManyFiles(b *testing.B) {
	const files, cap, growing = 4096, 256, 512
	root := b.TempDir()
	paths := make([]string, files)
	for i := range paths {
		paths[i] = filepath.Join(podDir(b, root, "ns", fmt.Sprintf("p%d", i), "u", "c"), "0.log")
		appendFile(b, paths[i], criLine("stdout", "F", "first"))
	}
	cfg := testConfig(root)
	cfg.MaxOpenFiles = cap
	next, _ := consumer.NewLogs(func(context.Context, plog.Logs) error { return nil })
	r, err := newReceiver(receivertest.NewNopSettings(metadata.Type), cfg, next)
	require.NoError(b, err)
	defer func() {
		for _, rd := range r.readers {
			rd.close()
		}
	}()
	r.poll(context.Background())
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		for k := range growing {
			appendFile(b, paths[(i*growing+k*7)%files], criLine("stdout", "F", "more"))
		}
		b.StartTimer()
		r.poll(context.Background())
	}
	b.StopTimer()
	require.LessOrEqual(b, r.open, cap)
}
