// Package promtarget serves Prometheus scrape targets with a fixed number of
// series of realistic shape (request counters, latency histograms, pod state
// gauges with Kubernetes labels) whose values change on every scrape. The
// series' text is rendered once; a scrape only appends new values.
package promtarget

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/gzip"
)

// Config says what to serve.
type Config struct {
	// Series is the number of series per target.
	Series int
	// Targets is the number of targets, each on its own 127.0.0.1 port.
	Targets int
	// NoGzip serves plain text even to scrapers that accept gzip
	// (client_golang compresses, so compression is the default).
	NoGzip bool
}

// Targets is a set of running scrape targets. Counters are safe to read at
// any time.
type Targets struct {
	// Addrs are the targets' host:port.
	Addrs []string
	// Scrapes counts scrapes served; Samples the samples in them.
	Scrapes, Samples atomic.Int64

	srvs []*http.Server
}

// histogram buckets of request latency, in seconds.
var buckets = []string{"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"}

var (
	methods   = []string{"GET", "POST", "PUT", "DELETE"}
	codes     = []string{"200", "201", "400", "404", "500", "503"}
	handlers  = []string{"/api/orders", "/api/orders/{id}", "/api/cart", "/api/products", "/api/products/{id}", "/api/users/{id}", "/healthz", "/metrics"}
	phases    = []string{"Pending", "Running", "Succeeded", "Failed", "Unknown"}
	nss       = []string{"shop", "payments", "search", "identity", "monitoring", "kube-system"}
	apps      = []string{"frontend", "checkout", "payment", "cart", "inventory", "search", "auth", "recommendation"}
	perLabels = 1 + 1 + len(buckets) + 2 + len(phases) // counter, gauge, histogram, pod phases
)

// target is one rendered exposition: the series' text before each value.
type target struct {
	prefixes []byte  // every series' "name{labels} " back to back
	ends     []int32 // end offset of each series' prefix
	kinds    []byte  // 'c' counter, 'g' gauge, 'b' bucket, 's' sum, 'n' count, 'p' phase
	headers  map[int]string
	scrapes  atomic.Int64

	mu  sync.Mutex
	buf []byte
	gz  *gzip.Writer
}

// Start renders the series and starts the targets.
func Start(cfg Config) (*Targets, error) {
	if cfg.Series <= 0 || cfg.Targets <= 0 {
		return nil, fmt.Errorf("promtarget: need series and targets > 0, got %d and %d", cfg.Series, cfg.Targets)
	}
	ts := &Targets{}
	for i := 0; i < cfg.Targets; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			ts.Close()
			return nil, fmt.Errorf("promtarget: cannot listen: %w", err)
		}
		t := render(i, cfg.Series)
		noGzip := cfg.NoGzip
		mux := http.NewServeMux()
		mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
			n := t.serve(w, !noGzip && strings.Contains(r.Header.Get("Accept-Encoding"), "gzip"))
			ts.Scrapes.Add(1)
			ts.Samples.Add(int64(n))
		})
		srv := &http.Server{Handler: mux}
		ts.srvs = append(ts.srvs, srv)
		ts.Addrs = append(ts.Addrs, ln.Addr().String())
		go func() { _ = srv.Serve(ln) }()
	}
	return ts, nil
}

// Close stops every target.
func (ts *Targets) Close() {
	for _, s := range ts.srvs {
		_ = s.Close()
	}
}

// YAMLList is the targets as a YAML flow sequence, for a config placeholder.
func (ts *Targets) YAMLList() string {
	return "[" + strings.Join(quoteAll(ts.Addrs), ", ") + "]"
}

func quoteAll(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = strconv.Quote(v)
	}
	return out
}

// render lays out the series of target idx: families in turn, each a block of
// label sets, until n series exist.
func render(idx, n int) *target {
	t := &target{headers: map[int]string{}}
	sets := (n + perLabels - 1) / perLabels
	type family struct {
		name, help, typ string
		emit            func(labels string)
	}
	add := func(prefix string, kind byte) {
		if len(t.kinds) >= n {
			return
		}
		t.prefixes = append(t.prefixes, prefix...)
		t.ends = append(t.ends, int32(len(t.prefixes)))
		t.kinds = append(t.kinds, kind)
	}
	labelsOf := func(s int) string {
		app := apps[s%len(apps)]
		pod := fmt.Sprintf("%s-%x-%05x", app, 0x7d4f8b9c+s/len(apps)%64, (s*7919+idx*104729)%0xfffff)
		return fmt.Sprintf(`namespace=%q,pod=%q,container=%q,node="node-%d",method=%q,handler=%q,code=%q`,
			nss[s%len(nss)], pod, app, (s/17)%40, methods[s%len(methods)], handlers[(s/3)%len(handlers)], codes[(s/5)%len(codes)])
	}
	families := []family{
		{"http_server_requests_total", "Requests handled.", "counter", func(l string) { add("http_server_requests_total{"+l+"} ", 'c') }},
		{"process_resident_memory_bytes", "Resident memory.", "gauge", func(l string) { add("process_resident_memory_bytes{"+l+"} ", 'g') }},
		{"http_server_request_duration_seconds", "Request latency.", "histogram", func(l string) {
			for _, b := range buckets {
				add("http_server_request_duration_seconds_bucket{"+l+`,le="`+b+`"} `, 'b')
			}
			add("http_server_request_duration_seconds_sum{"+l+"} ", 's')
			add("http_server_request_duration_seconds_count{"+l+"} ", 'n')
		}},
		{"kube_pod_status_phase", "The pod's current phase.", "gauge", func(l string) {
			for _, p := range phases {
				add("kube_pod_status_phase{"+l+`,phase="`+p+`"} `, 'p')
			}
		}},
	}
	for len(t.kinds) < n {
		for _, f := range families {
			if len(t.kinds) >= n {
				break
			}
			t.headers[len(t.kinds)] = "# HELP " + f.name + " " + f.help + "\n# TYPE " + f.name + " " + f.typ + "\n"
			for s := 0; s < sets && len(t.kinds) < n; s++ {
				f.emit(labelsOf(s))
			}
		}
		sets = max((n-len(t.kinds)+perLabels-1)/perLabels, 1)
	}
	return t
}

// serve writes one scrape: every series with this scrape's value. Counters
// and histograms only grow; gauges move. It returns the number of samples.
func (t *target) serve(w http.ResponseWriter, gz bool) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := t.scrapes.Add(1)
	buf := t.buf[:0]
	start := int32(0)
	var hist float64
	for i, end := range t.ends {
		if h, ok := t.headers[i]; ok {
			buf = append(buf, h...)
		}
		buf = append(buf, t.prefixes[start:end]...)
		start = end
		// xi is fixed per series (its growth rate), x changes every scrape.
		xi := uint64(i) * 0x9e3779b97f4a7c15
		xi ^= xi >> 29
		x := xi ^ uint64(k)*0xbf58476d1ce4e5b9
		x ^= x >> 31
		switch t.kinds[i] {
		case 'c':
			buf = strconv.AppendInt(buf, k*int64(1+xi%97), 10)
		case 'g':
			buf = strconv.AppendInt(buf, 50<<20+int64(x%(200<<20)), 10)
		case 'b':
			// Cumulative buckets within one histogram: the count grows with
			// every bucket, and every scrape.
			hist += float64(k) * float64(xi%5)
			buf = strconv.AppendFloat(buf, math.Floor(hist), 'f', -1, 64)
		case 's':
			buf = strconv.AppendFloat(buf, hist*0.037, 'f', 3, 64)
		case 'n':
			buf = strconv.AppendFloat(buf, math.Floor(hist), 'f', -1, 64)
			hist = 0
		case 'p':
			if x%5 == 0 {
				buf = append(buf, '1')
			} else {
				buf = append(buf, '0')
			}
		}
		buf = append(buf, '\n')
	}
	t.buf = buf
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	if !gz {
		_, _ = w.Write(buf)
		return len(t.ends)
	}
	w.Header().Set("Content-Encoding", "gzip")
	if t.gz == nil {
		t.gz, _ = gzip.NewWriterLevel(w, gzip.BestSpeed)
	} else {
		t.gz.Reset(w)
	}
	if _, err := t.gz.Write(buf); err == nil {
		_ = t.gz.Close()
	}
	return len(t.ends)
}

// errNoTargets is returned by helpers that need a started target set.
var errNoTargets = errors.New("promtarget: no targets")

// URL returns the scrape URL of target i.
func (ts *Targets) URL(i int) (string, error) {
	if i < 0 || i >= len(ts.Addrs) {
		return "", errNoTargets
	}
	return "http://" + ts.Addrs[i] + "/metrics", nil
}
