package testbed

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigilhq/vigil/benchmarks/testbed/service"
	"github.com/vigilhq/vigil/benchmarks/testbed/topo"
)

const (
	// invalidShare of normal traffic is invalid (half malformed, half
	// unknown ids): 4xx are part of normal traffic.
	invalidShare = 0.03
	// maxInFlight bounds the generator's concurrent requests per topology;
	// arrivals beyond it are dropped and counted.
	maxInFlight = 512
	// requestTimeout is the generator's own client timeout.
	requestTimeout = 5 * time.Second
)

// loadGen is an open-loop generator for one topology: Poisson arrivals per
// flow, seeded, sent to the front replicas' IPs without instrumentation (so
// the front door's spans are roots).
type loadGen struct {
	c      *cluster
	rate   float64
	seed   int64
	mult   atomic.Uint64 // float64 bits: surge factor
	flood  atomic.Uint64 // float64 bits: invalid requests per second
	client *http.Client
	sem    chan struct{}
	next   atomic.Uint64
	wg     sync.WaitGroup
	cnt    loadCounters
}

// loadCounters count the generator's view of the front door.
type loadCounters struct {
	sent, ok, client4xx, server5xx, errs, dropped, latencyMicros atomic.Int64
}

// loadStats is a snapshot of loadCounters.
type loadStats struct {
	Sent, OK, Client4xx, Server5xx, Errors, Dropped, LatencyMicros int64
}

func newLoadGen(c *cluster, rate float64, seed int64) *loadGen {
	l := &loadGen{c: c, rate: rate, seed: seed, sem: make(chan struct{}, maxInFlight),
		client: &http.Client{Timeout: requestTimeout, Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second}}}
	l.setMult(1)
	return l
}

func (l *loadGen) setMult(f float64)  { l.mult.Store(math.Float64bits(f)) }
func (l *loadGen) setFlood(r float64) { l.flood.Store(math.Float64bits(r)) }

// run sends traffic until ctx ends, then waits for the requests in flight.
func (l *loadGen) run(ctx context.Context) {
	for i, f := range l.c.t.Flows {
		rng := l.rng(uint64(i))
		l.wg.Go(func() {
			l.arrivals(ctx, rng, func() float64 {
				if f.Rate > 0 {
					return f.Rate
				}
				return l.rate * f.Weight * math.Float64frombits(l.mult.Load())
			}, func(rng *rand.Rand) { l.send(ctx, f, pickBad(rng, invalidShare)) })
		})
	}
	// The flood goes to the front door's flows only, not the back office.
	var front []topo.Flow
	for _, f := range l.c.t.Flows {
		if f.Service == l.c.t.Front {
			front = append(front, f)
		}
	}
	rng := l.rng(1000)
	l.wg.Go(func() {
		l.arrivals(ctx, rng, func() float64 { return math.Float64frombits(l.flood.Load()) }, func(rng *rand.Rand) {
			f := front[rng.IntN(len(front))]
			bad := service.BadMalformed
			if rng.IntN(2) == 0 {
				bad = service.BadUnknown
			}
			l.send(ctx, f, bad)
		})
	})
	<-ctx.Done()
	l.wg.Wait()
}

func (l *loadGen) rng(stream uint64) *rand.Rand {
	h := fnv.New64a()
	_, _ = h.Write([]byte(l.c.t.Name))
	return rand.New(rand.NewPCG(uint64(l.seed)^h.Sum64(), stream))
}

// arrivals calls fire at Poisson arrivals of rate(), re-read at every
// arrival (and every 100 ms while it is zero).
func (l *loadGen) arrivals(ctx context.Context, rng *rand.Rand, rate func() float64, fire func(*rand.Rand)) {
	for ctx.Err() == nil {
		r := rate()
		if r <= 0 {
			_ = sleepCtx(ctx, 100*time.Millisecond)
			continue
		}
		if sleepCtx(ctx, time.Duration(rng.ExpFloat64()/r*float64(time.Second))) != nil {
			return
		}
		fire(rng)
	}
}

func pickBad(rng *rand.Rand, share float64) string {
	if rng.Float64() >= share {
		return ""
	}
	if rng.IntN(2) == 0 {
		return service.BadMalformed
	}
	return service.BadUnknown
}

// send makes one request of flow f in the background.
func (l *loadGen) send(ctx context.Context, f topo.Flow, bad string) {
	select {
	case l.sem <- struct{}{}:
	default:
		l.cnt.dropped.Add(1)
		return
	}
	n := l.next.Add(1)
	reps := l.c.replicas(f.Service)
	if len(reps) == 0 {
		<-l.sem
		l.cnt.dropped.Add(1)
		return
	}
	ip := reps[int(n)%len(reps)].ip
	l.wg.Go(func() {
		defer func() { <-l.sem }()
		l.do(ctx, ip, f, fmt.Sprintf("%s-%d-%d", f.Name, l.seed, n), bad)
	})
}

func (l *loadGen) do(ctx context.Context, ip string, f topo.Flow, id, bad string) {
	method, path := topo.SplitRoute(f.Route)
	u := url.URL{Scheme: "http", Host: net.JoinHostPort(ip, strconv.Itoa(topo.HTTPPort)), Path: topo.FillPath(path, id)}
	var body io.Reader
	if method == http.MethodPost || method == http.MethodPut {
		b, _ := json.Marshal(map[string]string{"id": id, "bad": bad})
		if bad == service.BadMalformed {
			b = []byte(`{"id": "` + id)
		}
		body = bytes.NewReader(b)
	} else {
		q := url.Values{}
		if !strings.Contains(path, "{") {
			q.Set("id", id)
		}
		if bad != "" {
			q.Set("bad", bad)
		}
		u.RawQuery = q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		l.cnt.errs.Add(1)
		return
	}
	start := time.Now()
	l.cnt.sent.Add(1)
	resp, err := l.client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			l.cnt.errs.Add(1)
		}
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	l.cnt.latencyMicros.Add(time.Since(start).Microseconds())
	switch {
	case resp.StatusCode >= 500:
		l.cnt.server5xx.Add(1)
	case resp.StatusCode >= 400:
		l.cnt.client4xx.Add(1)
	default:
		l.cnt.ok.Add(1)
	}
}

func (l *loadGen) stats() loadStats {
	return loadStats{
		Sent: l.cnt.sent.Load(), OK: l.cnt.ok.Load(), Client4xx: l.cnt.client4xx.Load(), Server5xx: l.cnt.server5xx.Load(),
		Errors: l.cnt.errs.Load(), Dropped: l.cnt.dropped.Load(), LatencyMicros: l.cnt.latencyMicros.Load(),
	}
}

// since summarises the requests between two snapshots.
func (s loadStats) since(prev loadStats) string {
	n := s.Sent - prev.Sent
	if n <= 0 {
		return "no requests"
	}
	answered := (s.OK + s.Client4xx + s.Server5xx) - (prev.OK + prev.Client4xx + prev.Server5xx)
	mean := 0.0
	if answered > 0 {
		mean = float64(s.LatencyMicros-prev.LatencyMicros) / float64(answered) / 1000
	}
	return fmt.Sprintf("%d requests, %.1f%% 5xx, %.1f%% 4xx, %.1f%% transport errors, mean %.0f ms, %d dropped",
		n, pct(s.Server5xx-prev.Server5xx, n), pct(s.Client4xx-prev.Client4xx, n), pct(s.Errors-prev.Errors, n), mean, s.Dropped-prev.Dropped)
}

func pct(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}
