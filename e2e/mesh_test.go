package e2e

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// istioBuckets are Istio's default istio_request_duration_milliseconds bounds.
var istioBuckets = []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000}

// istioSidecars serves, on one target, what the sidecars of two small meshes
// would expose on :15020/stats/prometheus, with the names, labels and types
// of Istio's standard metrics, from calls it makes up as time passes:
//
//   - shop: istio-ingressgateway -> frontend -> {cart, checkout}; checkout ->
//     payments. From the fault on, payments fails 60% of its requests (500)
//     and every caller passes the failure on: a cascade that starts in
//     payments.
//   - bank: istio-ingressgateway -> ledger -> fx. From the fault on, fx fails,
//     ledger's sidecar's circuit breaker opens (503 with response flag UO,
//     only a tenth of calls let through to fx) and ledger answers from its
//     cache: a failure contained.
type istioSidecars struct {
	mu     sync.Mutex
	series map[string]*istioSeries // by label string
	rng    *rand.Rand
	fault  time.Time
}

type istioSeries struct {
	labels  string
	n       uint64
	sum     float64
	buckets []uint64
}

func (s *istioSidecars) call(reporter, src, srcNS, dst, dstNS, code, flags string, ms float64) {
	l := fmt.Sprintf(`reporter=%q,source_workload=%q,source_canonical_service=%q,source_workload_namespace=%q,`+
		`destination_workload=%q,destination_canonical_service=%q,destination_service_name=%q,destination_workload_namespace=%q,`+
		`request_protocol="http",response_code=%q,response_flags=%q,grpc_response_status="",connection_security_policy="mutual_tls"`,
		reporter, src, src, srcNS, dst, dst, dst, dstNS, code, flags)
	se := s.series[l]
	if se == nil {
		se = &istioSeries{labels: l, buckets: make([]uint64, len(istioBuckets)+1)}
		s.series[l] = se
	}
	se.n++
	se.sum += ms
	se.buckets[sort.SearchFloat64s(istioBuckets, ms)]++
}

// both records one call as both sidecars report it; the ingress gateway
// runs in istio-system.
func (s *istioSidecars) both(src, ns, dst, code, flags string, ms float64) {
	srcNS := ns
	if src == "istio-ingressgateway" {
		srcNS = "istio-system"
	}
	s.call("source", src, srcNS, dst, ns, code, flags, ms+0.4)
	s.call("destination", src, srcNS, dst, ns, code, "-", ms)
}

// tick makes 100 ms of traffic: 30 requests a second into shop, 10 into bank.
func (s *istioSidecars) tick(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	faulty := !s.fault.IsZero() && now.After(s.fault)
	lat := func(median float64) float64 { return median * (0.6 + 0.8*s.rng.Float64()) }
	for range 3 {
		code := "200"
		s.both("frontend", "shop", "cart", "200", "-", lat(8))
		if s.rng.Float64() < 0.5 {
			pay := "200"
			if faulty && s.rng.Float64() < 0.6 {
				pay = "500"
			}
			s.both("checkout", "shop", "payments", pay, "-", lat(20))
			s.both("frontend", "shop", "checkout", pay, "-", lat(35))
			code = pay
		}
		s.both("istio-ingressgateway", "shop", "frontend", code, "-", lat(50))
	}
	for range 1 {
		if faulty {
			if s.rng.Float64() < 0.1 { // the breaker lets a probe through
				s.both("ledger", "bank", "fx", "500", "-", lat(4))
			} else {
				s.call("source", "ledger", "bank", "fx", "bank", "503", "UO", 0.3)
			}
		} else {
			s.both("ledger", "bank", "fx", "200", "-", lat(15))
		}
		s.both("istio-ingressgateway", "bank", "ledger", "200", "-", lat(25))
	}
}

func (s *istioSidecars) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range s.series {
			if !yield(k) {
				return
			}
		}
	})
	var b strings.Builder
	b.WriteString("# TYPE istio_requests_total counter\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "istio_requests_total{%s} %d\n", k, s.series[k].n)
	}
	b.WriteString("# TYPE istio_request_duration_milliseconds histogram\n")
	for _, k := range keys {
		se := s.series[k]
		var cum uint64
		for i, le := range istioBuckets {
			cum += se.buckets[i]
			fmt.Fprintf(&b, "istio_request_duration_milliseconds_bucket{%s,le=\"%g\"} %d\n", k, le, cum)
		}
		fmt.Fprintf(&b, "istio_request_duration_milliseconds_bucket{%s,le=\"+Inf\"} %d\n", k, se.n)
		fmt.Fprintf(&b, "istio_request_duration_milliseconds_sum{%s} %g\n", k, se.sum)
		fmt.Fprintf(&b, "istio_request_duration_milliseconds_count{%s} %d\n", k, se.n)
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	_, _ = w.Write([]byte(b.String()))
}

// A team whose only per-call telemetry is its mesh's: the agent scrapes the
// sidecars' Istio metrics with the prometheus receiver and feeds them to the
// redflag connector. Nothing alerts on healthy traffic; once payments fails,
// CascadingFailure names payments; the failure of fx that ledger's circuit
// breaker contains (UO) is an IsolatedFailure, not a cascade.
func TestMeshMetricsRedFlags(t *testing.T) {
	const faultAfter = 90 * time.Second
	sc := &istioSidecars{series: map[string]*istioSeries{}, rng: rand.New(rand.NewPCG(7, 11))}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: sc, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	health, alertsPort, selfPort := freePort(t), freePort(t), freePort(t)
	cfg := writeConfig(t, fmt.Sprintf(`
receivers:
  prometheus:
    config:
      scrape_configs:
        - job_name: istio-sidecars
          scrape_interval: 2s
          static_configs:
            - targets: ["%s"]
connectors:
  redflag: {}
exporters:
  prometheus:
    endpoint: 127.0.0.1:%d
extensions:
  health_check:
    endpoint: 127.0.0.1:%d
service:
  extensions: [health_check]
%s
  pipelines:
    metrics/in:
      receivers: [prometheus]
      exporters: [redflag]
    metrics/alerts:
      receivers: [redflag]
      exporters: [prometheus]
`, ln.Addr(), alertsPort, health, telemetryYAML(selfPort)))
	startAgent(t, health, "--config", cfg)

	started := time.Now()
	sc.mu.Lock()
	sc.fault = started.Add(faultAfter)
	sc.mu.Unlock()
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	go func() {
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case now := <-tk.C:
				sc.tick(now)
			}
		}
	}()

	alertsAddr := fmt.Sprintf("127.0.0.1:%d", alertsPort)
	for time.Since(started) < faultAfter-2*time.Second {
		alerts, err := scrapeAlertsAt(alertsAddr)
		require.NoError(t, err)
		require.Empty(t, alerts, "an alert on healthy traffic")
		time.Sleep(2 * time.Second)
	}
	// A failure is called contained only once it has had the time to
	// spread (twice cascade.for) and held as long again: IsolatedFailure
	// comes about a minute after CascadingFailure would.
	var cascade, isolated string
	var cascadeAfter time.Duration
	deadline := started.Add(faultAfter + 150*time.Second)
	for time.Now().Before(deadline) && (cascade == "" || isolated == "") {
		alerts, _ := scrapeAlertsAt(alertsAddr)
		for _, l := range alerts {
			if !strings.Contains(l, `alertstate="firing"`) {
				continue
			}
			switch {
			case strings.Contains(l, `alertname="CascadingFailure"`):
				require.Contains(t, l, `origin_service="payments"`, "a cascade named elsewhere")
				if cascade == "" {
					cascade, cascadeAfter = l, time.Since(started.Add(faultAfter))
				}
			case strings.Contains(l, `alertname="IsolatedFailure"`):
				require.Contains(t, l, `origin_service="fx"`)
				isolated = l
			}
		}
		time.Sleep(time.Second)
	}
	t.Logf("CascadingFailure %s after the fault, IsolatedFailure by %s: %q, %q", cascadeAfter.Round(time.Second),
		time.Since(started.Add(faultAfter)).Round(time.Second), cascade, isolated)
	require.NotEmpty(t, cascade, "no firing CascadingFailure{origin_service=payments} within 150 s of the fault")
	require.Less(t, cascadeAfter, 90*time.Second, "CascadingFailure later than 90 s after the fault")
	require.NotEmpty(t, isolated, "no firing IsolatedFailure{origin_service=fx} within 150 s of the fault")
	require.Contains(t, cascade, `k8s_namespace_name="shop"`, "the namespace from the Istio labels")

	// The connector says what it read.
	self := getBody(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", selfPort))
	require.Regexp(t, `(?m)^otelcol_connector_redflag_mesh_datapoints(_total)?(\{[^}]*\})? [1-9]`, self)
}
