package prometheusremotewriteexporter

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	prw "github.com/open-telemetry/opentelemetry-collector-contrib/exporter/prometheusremotewriteexporter"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/exporter/exportertest"

	"github.com/vigilhq/vigil/exporters/prometheusremotewriteexporter/internal/metadata"
)

// BenchmarkPushUpstream is the same through contrib's exporter, for a ratio.
func BenchmarkPushUpstream(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(srv.Close)
	cfg := upstream.CreateDefaultConfig().(*prw.Config)
	cfg.HTTP.Endpoint = srv.URL
	cfg.TargetInfo.Enabled = false
	cfg.RemoteWriteQueue.Enabled = false
	exp, err := upstream.CreateMetrics(context.Background(), exportertest.NewNopSettings(upstream.Type()), cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := exp.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = exp.Shutdown(context.Background()) })
	t0 := time.Now()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		md := gauges(10_000, t0.Add(time.Duration(i)*10*time.Second))
		b.StartTimer()
		if err := exp.ConsumeMetrics(context.Background(), md); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPush: one scrape of 10,000 gauge series (two points each) to an
// endpoint that only reads the body; per-sample cost is ns/op / 20,000.
func BenchmarkPush(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(srv.Close)
	cfg := createDefaultConfig().(*Config)
	cfg.HTTP.Endpoint = srv.URL
	cfg.TargetInfo.Enabled = false
	e, err := newExporter(cfg, exportertest.NewNopSettings(metadata.Type))
	if err != nil {
		b.Fatal(err)
	}
	e.client = srv.Client()
	t0 := time.Now()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		md := gauges(10_000, t0.Add(time.Duration(i)*10*time.Second))
		b.StartTimer()
		if err := e.push(context.Background(), md); err != nil {
			b.Fatal(err)
		}
	}
}
