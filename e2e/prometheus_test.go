package e2e

import (
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigilhq/vigil/testkit/otlpsink"
)

// A scrape target in the test, scraped by vigil's prometheus receiver and
// remote-written to a real Prometheus, whose query API must return the samples.
func TestPrometheusScrapeToRemoteWrite(t *testing.T) {
	prom := startPrometheus(t, "")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprint(w, `# HELP shop_orders_total Orders placed.
# TYPE shop_orders_total counter
shop_orders_total{region="eu"} 42
shop_orders_total{region="us"} 17
# HELP shop_queue_depth Items waiting.
# TYPE shop_queue_depth gauge
shop_queue_depth 7
# HELP shop_latency_seconds Request latency.
# TYPE shop_latency_seconds histogram
shop_latency_seconds_bucket{le="0.1"} 3
shop_latency_seconds_bucket{le="1"} 9
shop_latency_seconds_bucket{le="+Inf"} 10
shop_latency_seconds_sum 4.5
shop_latency_seconds_count 10
`)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	health, tel := freePort(t), freePort(t)
	cfg := fmt.Sprintf(`
extensions:
  health_check:
    endpoint: 127.0.0.1:%d
receivers:
  prometheus:
    config:
      scrape_configs:
        - job_name: shop
          scrape_interval: 1s
          static_configs:
            - targets: ["%s"]
exporters:
  prometheus_remote_write:
    endpoint: %s/api/v1/write
    timeout: 5s
service:
  extensions: [health_check]
%s
  pipelines:
    metrics:
      receivers: [prometheus]
      exporters: [prometheus_remote_write]
`, health, ln.Addr().String(), prom.URL, telemetryYAML(tel))
	startAgent(t, health, "--config", writeConfig(t, cfg))

	want := map[string]string{
		`shop_orders_total{job="shop",region="eu"}`:                     "42",
		`shop_orders_total{job="shop",region="us"}`:                     "17",
		`shop_queue_depth{job="shop"}`:                                  "7",
		`shop_latency_seconds_count{job="shop"}`:                        "10",
		`shop_latency_seconds_bucket{job="shop",le="1"}`:                "9",
		fmt.Sprintf(`up{job="shop",instance="%s"}`, ln.Addr().String()): "1",
	}
	var last string
	ok := otlpsink.WaitFor(45*time.Second, func() bool {
		for q, v := range want {
			res, err := prom.Query(q)
			if err != nil || len(res) != 1 {
				last = fmt.Sprintf("%s: %v %v", q, res, err)
				return false
			}
			if got := fmt.Sprint(res[0].Value[1]); got != v {
				last = fmt.Sprintf("%s = %s, want %s", q, got, v)
				return false
			}
		}
		return true
	})
	require.True(t, ok, "Prometheus never showed the scraped samples; last: %s", last)
}
