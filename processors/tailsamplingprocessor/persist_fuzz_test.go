package tailsamplingprocessor

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/processor/processortest"

	"github.com/vigilhq/vigil/processors/tailsamplingprocessor/internal/metadata"
)

// fuzzSampler is a small sampler, not started, for feeding snapshots to.
func fuzzSampler(t testing.TB, dir string) *sampler {
	cfg := createDefaultConfig().(*Config)
	require.NoError(t, confmap.NewFromStringMap(map[string]any{
		"decision_wait": "1m", "memory_limit_mib": 4, "storage": dir, "policies": errorsPolicy,
	}).Unmarshal(cfg))
	p, err := newSampler(processortest.NewNopSettings(metadata.Type), cfg, consumertest.NewNop())
	require.NoError(t, err)
	p.origin = time.Now()
	return p
}

// validSnapshot is what a sampler holding a few pending traces (and cached
// decisions) saves at shutdown.
func validSnapshot(t testing.TB) []byte {
	dir := t.TempDir()
	p := fuzzSampler(t, dir)
	require.NoError(t, p.Start(context.Background(), componenttest.NewNopHost()))
	ctx := context.Background()
	require.NoError(t, p.ConsumeTraces(ctx, makeTraces([]int{1, 2, 3}, 3, map[int]bool{2: true}, map[string]any{"n": 1, "ok": true, "f": 1.5})))
	p.mu.Lock()
	p.sampled.Add(traceID(9))
	p.notSampled.Add(traceID(10))
	p.mu.Unlock()
	require.NoError(t, p.Shutdown(ctx))
	b, err := os.ReadFile(p.snapshotPath())
	require.NoError(t, err)
	return b
}

// FuzzRestoreSnapshot: a damaged or hostile snapshot file restores what is
// readable and counts the rest; it never panics and never restores more
// records than it holds.
func FuzzRestoreSnapshot(f *testing.F) {
	good := validSnapshot(f)
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte(snapshotMagic))
	f.Add(append([]byte(snapshotMagic), 1, 0xff, 0xff, 0xff, 0xff, 0x0f))
	flipped := bytes.Clone(good)
	flipped[len(flipped)-3] ^= 0x40
	f.Add(flipped)
	// One sampler for every input: restoring into a used one is what a
	// restart does too, and it keeps each execution cheap.
	p := fuzzSampler(f, f.TempDir())
	f.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	f.Fuzz(func(t *testing.T, b []byte) {
		restored, bad, _ := p.restoreFrom(bufio.NewReader(bytes.NewReader(b)))
		if restored < 0 || bad < 0 || restored > len(b)/17 {
			t.Fatalf("restored %d, unrestorable %d from %d bytes", restored, bad, len(b))
		}
	})
}

// FuzzRestoreTrace feeds trace records past the checksum, straight to the
// decoder: arbitrary bytes are rejected or restored, never a panic.
func FuzzRestoreTrace(f *testing.F) {
	good := validSnapshot(f)
	r := bufio.NewReader(bytes.NewReader(good[len(snapshotMagic):]))
	for {
		kind, body, err := snapshotRecord(r)
		if err != nil {
			break
		}
		if kind == recTrace {
			f.Add(body)
		}
	}
	f.Add([]byte{})
	f.Add(make([]byte, 16))
	p := fuzzSampler(f, f.TempDir())
	f.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	w := &ingest{idx: map[[16]byte]int32{}}
	f.Fuzz(func(_ *testing.T, body []byte) {
		_ = p.restoreTrace(w, body, time.Now())
	})
}
