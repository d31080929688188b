package promtarget

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

func scrape(t *testing.T, url string) (map[string]float64, int) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	samples := 0
	for _, line := range strings.Split(string(body), "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			samples++
		}
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	require.NoError(t, err, "the exposition parses")
	out := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			key := name
			for _, l := range m.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			switch {
			case m.Counter != nil:
				out[key] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[key] = m.GetGauge().GetValue()
			case m.Histogram != nil:
				out[key+",count"] = float64(m.GetHistogram().GetSampleCount())
				prev := uint64(0)
				for _, b := range m.GetHistogram().GetBucket() {
					require.GreaterOrEqual(t, b.GetCumulativeCount(), prev, "buckets are cumulative")
					prev = b.GetCumulativeCount()
					out[key+",le="+strconv.FormatFloat(b.GetUpperBound(), 'g', -1, 64)] = float64(b.GetCumulativeCount())
				}
			}
		}
	}
	return out, samples
}

// TestTargetServesSeriesThatChange checks what a scraper sees: valid text
// exposition, the configured number of series, histograms whose buckets are
// cumulative, counters that grow between scrapes and gauges that move.
func TestTargetServesSeriesThatChange(t *testing.T) {
	ts, err := Start(Config{Series: 1000, Targets: 2})
	require.NoError(t, err)
	defer ts.Close()
	url, err := ts.URL(1)
	require.NoError(t, err)
	a, n := scrape(t, url)
	require.Equal(t, 1000, n, "sample lines in one scrape")
	b, _ := scrape(t, url)
	require.Len(t, a, len(b))
	require.EqualValues(t, 2, ts.Scrapes.Load())
	require.EqualValues(t, 2000, ts.Samples.Load())

	grew, moved := 0, 0
	for k, v := range a {
		if strings.HasPrefix(k, "http_server_requests_total") {
			require.GreaterOrEqual(t, b[k], v, k)
			if b[k] > v {
				grew++
			}
		}
		if strings.HasPrefix(k, "process_resident_memory_bytes") && b[k] != v {
			moved++
		}
	}
	require.Positive(t, grew)
	require.Positive(t, moved)
	require.Greater(t, len(a), 100)
	_, err = ts.URL(2)
	require.Error(t, err)
	_, err = Start(Config{})
	require.Error(t, err)
}
