package promrw

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"
)

// The decoder and translator take untrusted bytes. Fuzzing checks they never
// panic or hang, that every error wraps one of the package's sentinels, and
// that memory stays within a fixed multiple of the decoded payload (no gap
// or bucket expansion beyond what the bytes pay for). Seeds live in
// testdata/fuzz, so plain `go test` runs them; regenerate with -update.

// allocBound is the most a request may allocate per decoded byte, plus a
// constant. gogo's structs are ~64 bytes for a 2-byte empty label, and
// slices grow by doubling; pdata adds ~200 bytes per point.
func allocBound(n int) uint64 { return uint64(512*n) + 8<<20 }

func checkOne(t *testing.T, tr *Translator, v Version, payload []byte) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	r := GetRequest()
	err := r.Decode(v, payload)
	if err == nil {
		md, st := tr.Translate(r)
		if st.InvalidSeries > 0 && st.FirstInvalid == nil {
			t.Fatalf("%d invalid series without a reason", st.InvalidSeries)
		}
		if got := md.DataPointCount(); got != st.DataPoints {
			t.Fatalf("Stats.DataPoints %d, output has %d", st.DataPoints, got)
		}
	} else if !isSentinel(err) {
		t.Fatalf("error wraps no sentinel: %v", err)
	}
	PutRequest(r)
	runtime.ReadMemStats(&after)
	if used := after.TotalAlloc - before.TotalAlloc; used > allocBound(len(payload)) {
		t.Fatalf("%d-byte payload allocated %d bytes, bound %d", len(payload), used, allocBound(len(payload)))
	}
}

func isSentinel(err error) bool {
	for _, s := range []error{ErrMalformed, ErrTooLarge, ErrUnsupportedMediaType} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

func FuzzDecodeRaw(f *testing.F) {
	tr := NewTranslator(Options{MetadataCacheSize: 64, TargetInfoCacheSize: 64})
	f.Fuzz(func(t *testing.T, v2 bool, payload []byte) {
		v := V1
		if v2 {
			v = V2
		}
		checkOne(t, tr, v, payload)
	})
}

func FuzzDecodeCompressed(f *testing.F) {
	const limit = 1 << 20
	tr := NewTranslator(Options{MetadataCacheSize: 64, TargetInfoCacheSize: 64})
	f.Fuzz(func(t *testing.T, v2 bool, body []byte) {
		payload, err := Decompress(nil, body, limit)
		if err != nil {
			if !isSentinel(err) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			return
		}
		if len(payload) > limit {
			t.Fatalf("decompressed %d bytes past the %d limit", len(payload), limit)
		}
		v := V1
		if v2 {
			v = V2
		}
		checkOne(t, tr, v, payload)
	})
}

// seedRequests are the corpus: every kind, both versions, and edge cases.
func seedRequests(t *testing.T) map[string][]byte {
	seeds := map[string][]byte{}
	add := func(name string, raw []byte) { seeds[name] = raw }
	v1raw, err := snappy.Decode(nil, encodeV1(t, sourceMetrics()))
	require.NoError(t, err)
	add("v1_every_kind", v1raw)
	v2raw, err := snappy.Decode(nil, encodeV2(t, sourceMetrics()))
	require.NoError(t, err)
	add("v2_every_kind", v2raw)

	classic := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		series1(lbls("a_bucket", "le", "0.5", "job", "j"), 1, 2),
		series1(lbls("a_bucket", "le", "+Inf", "job", "j"), 2, 3),
		series1(lbls("a_count", "job", "j"), 2, 3),
		series1(lbls("s", "quantile", "0.5"), 1),
		series1(lbls("s_count"), 1),
		series1(lbls("target_info", "job", "j", "k", "v"), 1),
		series1(lbls("c_created", "job", "j"), 1.7e9),
		series1(lbls("c_total", "job", "j"), 5),
	}, Metadata: []prompb.MetricMetadata{{MetricFamilyName: "a", Type: prompb.MetricMetadata_HISTOGRAM, Help: "h", Unit: "seconds"}}}
	raw, err := classic.Marshal()
	require.NoError(t, err)
	add("v1_classic", raw)

	native := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels: lbls("n"),
		Histograms: []prompb.Histogram{{
			Timestamp: 1, Schema: 3, Count: &prompb.Histogram_CountInt{CountInt: 4},
			PositiveSpans: []prompb.BucketSpan{{Offset: -2, Length: 2}, {Offset: 5, Length: 1}}, PositiveDeltas: []int64{1, 1, -1},
		}, {
			Timestamp: 2, Schema: -53, CustomValues: []float64{1, 2}, Count: &prompb.Histogram_CountFloat{CountFloat: 2},
			PositiveSpans: []prompb.BucketSpan{{Offset: 0, Length: 3}}, PositiveCounts: []float64{1, 0.5, 0.5},
		}},
	}}}
	raw, err = native.Marshal()
	require.NoError(t, err)
	add("v1_native", raw)

	v2 := &writev2.Request{
		Symbols: []string{"", "__name__", "x", "le", "1"},
		Timeseries: []writev2.TimeSeries{
			{LabelsRefs: []uint32{1, 2, 3, 4}, Samples: []writev2.Sample{{Value: 1, Timestamp: 1}}},
			{LabelsRefs: []uint32{1, 99}, Samples: []writev2.Sample{{Value: 1, Timestamp: 1}}},
		},
	}
	raw, err = v2.Marshal()
	require.NoError(t, err)
	add("v2_bad_ref", raw)
	add("empty", nil)
	add("garbage", []byte("\x0a\xff\xff\xff\xff\x0f\x12\x00"))
	return seeds
}

// TestFuzzSeeds keeps testdata/fuzz in step with seedRequests (-update
// rewrites it); the Fuzz functions run those files under plain go test.
func TestFuzzSeeds(t *testing.T) {
	for name, raw := range seedRequests(t) {
		for _, target := range []struct {
			dir  string
			data []byte
		}{{"FuzzDecodeRaw", raw}, {"FuzzDecodeCompressed", snappy.Encode(nil, raw)}} {
			for _, v2 := range []bool{false, true} {
				path := filepath.Join("testdata", "fuzz", target.dir, fmt.Sprintf("%s_v2_%t", name, v2))
				content := fmt.Sprintf("go test fuzz v1\nbool(%t)\n[]byte(%q)\n", v2, target.data)
				if *update {
					require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
					require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
					continue
				}
				// Content is not compared: the upstream encoder's series order
				// varies between runs.
				_, err := os.Stat(path)
				require.NoError(t, err, "missing fuzz seed: go test ./internal/promrw -run TestFuzzSeeds -update")
			}
		}
	}
}
