package rwsink

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"
)

func v1Request(series, samples int) []byte {
	var req prompb.WriteRequest
	for i := 0; i < series; i++ {
		ts := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "i", Value: string(rune('a' + i%26))}}}
		for j := 0; j < samples; j++ {
			ts.Samples = append(ts.Samples, prompb.Sample{Value: float64(j), Timestamp: int64(j)})
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	b, err := req.Marshal()
	if err != nil {
		panic(err)
	}
	return b
}

func post(t *testing.T, url string, body []byte, enc, ctype string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	require.NoError(t, err)
	if enc != "" {
		req.Header.Set("Content-Encoding", enc)
	}
	req.Header.Set("Content-Type", ctype)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

func TestSinkCountsWhatArrives(t *testing.T) {
	s, err := Start("127.0.0.1:0")
	require.NoError(t, err)
	defer s.Stop()

	require.Equal(t, http.StatusNoContent, post(t, s.URL, snappy.Encode(nil, v1Request(3, 2)), "snappy", "application/x-protobuf"))
	enc, err := zstd.NewWriter(nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, post(t, s.URL, enc.EncodeAll(v1Request(5, 1), nil), "zstd", "application/x-protobuf"))

	v2 := writev2.Request{Symbols: []string{"", "__name__", "up"}, Timeseries: []writev2.TimeSeries{
		{LabelsRefs: []uint32{1, 2}, Samples: []writev2.Sample{{Value: 1, Timestamp: 1}, {Value: 2, Timestamp: 2}}},
	}}
	raw, err := v2.Marshal()
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, post(t, s.URL, snappy.Encode(nil, raw), "snappy", "application/x-protobuf;proto=io.prometheus.write.v2.Request"))

	require.EqualValues(t, 3, s.Requests.Load())
	require.EqualValues(t, 3+5+1, s.Series.Load())
	require.EqualValues(t, 6+5+2, s.Samples.Load())

	// Bad input is refused with a 400 and counted, never counted as data.
	require.Equal(t, http.StatusBadRequest, post(t, s.URL, []byte("not snappy"), "snappy", "application/x-protobuf"))
	require.Equal(t, http.StatusBadRequest, post(t, s.URL, snappy.Encode(nil, []byte{0xff, 0xff, 0xff}), "", "application/x-protobuf"))
	require.Equal(t, http.StatusBadRequest, post(t, s.URL, []byte("x"), "br", "application/x-protobuf"))
	require.EqualValues(t, 3, s.Errors.Load())
	require.EqualValues(t, 3, s.Requests.Load())
}

// FuzzDecode feeds arbitrary bodies to the decoder: it must return an error or
// counts, never panic.
func FuzzDecode(f *testing.F) {
	f.Add(v1Request(2, 2), false)
	f.Add([]byte{0x0a, 0x02, 0x0a, 0x00}, false)
	f.Add([]byte{0x22, 0x01, 0x61}, true)
	f.Add([]byte{}, true)
	f.Fuzz(func(t *testing.T, raw []byte, v2 bool) {
		ctype := "application/x-protobuf"
		if v2 {
			ctype += ";proto=io.prometheus.write.v2.Request"
		}
		c, err := Decode(raw, ctype)
		if err == nil && (c.Series < 0 || c.Samples < 0) {
			t.Fatalf("negative counts %+v", c)
		}
	})
}

// BenchmarkDecode measures decoding one remote-write request of 2000 series.
func BenchmarkDecode(b *testing.B) {
	raw := v1Request(2000, 1)
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := Decode(raw, "application/x-protobuf"); err != nil {
			b.Fatal(err)
		}
	}
}
