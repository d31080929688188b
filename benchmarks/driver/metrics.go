package driver

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// counters maps a metric name (labels summed away) to its value.
type counters map[string]float64

// sum adds the values of the named metrics; a missing name adds nothing.
// A name also matches with a _total suffix, which some exporters append.
func (c counters) sum(names ...string) float64 {
	var s float64
	for _, n := range names {
		s += c[n] + c[n+"_total"]
	}
	return s
}

// sumPrefix adds every metric whose name starts with prefix and ends with one
// of suffixes.
func (c counters) sumPrefix(prefix string, suffixes ...string) float64 {
	var s float64
	for n, v := range c {
		if !strings.HasPrefix(n, prefix) {
			continue
		}
		m := strings.TrimSuffix(n, "_total")
		for _, suf := range suffixes {
			if strings.HasSuffix(m, suf) {
				s += v
				break
			}
		}
	}
	return s
}

// parseExposition sums the samples of a Prometheus text exposition by metric
// name. Comments, blank lines and NaN values are skipped; a malformed line is
// an error naming it.
func parseExposition(r io.Reader) (counters, error) {
	out := counters{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for ln := 1; sc.Scan(); ln++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest := line, ""
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name, rest = line[:i], line[i:]
		}
		if name == "" {
			return nil, fmt.Errorf("cannot parse metrics line %d: no name: %q", ln, line)
		}
		if strings.HasPrefix(rest, "{") {
			// Label values may hold '}' inside quotes.
			end, inQuote := -1, false
			for i := 1; i < len(rest); i++ {
				switch c := rest[i]; {
				case c == '\\' && inQuote:
					i++
				case c == '"':
					inQuote = !inQuote
				case c == '}' && !inQuote:
					end = i
				}
				if end >= 0 {
					break
				}
			}
			if end < 0 {
				return nil, fmt.Errorf("cannot parse metrics line %d: unterminated labels: %q", ln, line)
			}
			rest = rest[end+1:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return nil, fmt.Errorf("cannot parse metrics line %d: no value: %q", ln, line)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return nil, fmt.Errorf("cannot parse metrics line %d: value %q: %w", ln, f[0], err)
		}
		if v == v { // not NaN
			out[name] += v
		}
	}
	return out, sc.Err()
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

// scrape fetches and parses a metrics endpoint.
func scrape(ctx context.Context, url string) (counters, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("cannot scrape %s: %s", url, resp.Status)
	}
	c, err := parseExposition(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("cannot scrape %s: %w", url, err)
	}
	return c, nil
}
