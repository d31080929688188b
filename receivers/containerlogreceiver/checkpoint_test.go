package containerlogreceiver

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCheckpointsRoundTrip(t *testing.T) {
	in := []checkpoint{
		{key: fileKey{dev: 2049, ino: 131075}, offset: 1 << 40, fp: []byte("2026-12-07T10:00:00.123456789Z stdout F first line of the file..")},
		{key: fileKey{dev: 1, ino: 2}, offset: 0, fp: nil},
	}
	out, err := decodeCheckpoints(encodeCheckpoints(in))
	require.NoError(t, err)
	require.Len(t, out, 2)
	require.Equal(t, in[0], out[0])
	require.Equal(t, in[1].key, out[1].key)
	require.Empty(t, out[1].fp)

	cps, err := decodeCheckpoints(nil)
	require.NoError(t, err)
	require.Empty(t, cps)
	_, err = decodeCheckpoints([]byte{9})
	require.ErrorContains(t, err, "unknown version 9")
	_, err = decodeCheckpoints(encodeCheckpoints(in)[:20])
	require.ErrorContains(t, err, "entry 0")
}

// A damaged checkpoint value is an error (files are then read from their
// beginning), never a panic or an absurd allocation.
func FuzzDecodeCheckpoints(f *testing.F) {
	f.Add(encodeCheckpoints([]checkpoint{{key: fileKey{dev: 2049, ino: 7}, offset: 4096, fp: []byte("2026-12-07T10:00:00Z stdout F a")}}))
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f})
	f.Add([]byte{1, 1, 1, 1, 200})
	f.Fuzz(func(t *testing.T, b []byte) {
		cps, err := decodeCheckpoints(b)
		if err != nil {
			return
		}
		for _, cp := range cps {
			if cp.offset < 0 || len(cp.fp) > fingerprintSize {
				t.Fatalf("decoded an impossible checkpoint %+v", cp)
			}
		}
		// What decodes survives encoding again (varints may come back
		// shorter: the bytes need not be the same).
		again, err := decodeCheckpoints(encodeCheckpoints(cps))
		if err != nil || len(again) != len(cps) {
			t.Fatalf("re-encoding %+v: %v, %d entries", cps, err, len(again))
		}
		for i := range cps {
			if again[i].key != cps[i].key || again[i].offset != cps[i].offset || string(again[i].fp) != string(cps[i].fp) {
				t.Fatalf("entry %d changed: %+v -> %+v", i, cps[i], again[i])
			}
		}
	})
}
