package prometheusremotewriteexporter

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"

	"github.com/vigilhq/vigil/exporters/prometheusremotewriteexporter/internal/metadata"
	"github.com/vigilhq/vigil/exporters/prometheusremotewriteexporter/internal/metadatatest"
	vmetadatatest "github.com/vigilhq/vigil/testkit/metadatatest"
)

// The telemetry the component creates is what metadata.yaml documents.
func TestTelemetryMatchesMetadata(t *testing.T) {
	vmetadatatest.Check(t, "metadata.yaml", func(set component.TelemetrySettings) error {
		_, err := metadata.NewTelemetryBuilder(set)
		return err
	})
}

// Samples an endpoint accepted and those it refused are counted, the
// refused by reason; a retry's skipped batches too.
func TestTelemetryCounts(t *testing.T) {
	tt := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tt.Shutdown(context.Background())) })
	p, url := startFake(t)
	cfg := createDefaultConfig().(*Config)
	cfg.HTTP.Endpoint = url
	cfg.TargetInfo.Enabled = false
	set := metadatatest.NewSettings(tt)
	e, err := newExporter(cfg, set)
	require.NoError(t, err)
	require.NoError(t, e.start(context.Background(), componenttest.NewNopHost()))

	t0 := time.Now()
	require.NoError(t, e.push(context.Background(), gauges(10, t0)))
	p.fail = func(int, *prompb.WriteRequest) (int, string) { return http.StatusBadRequest, "" }
	require.Error(t, e.push(context.Background(), gauges(5, t0.Add(time.Minute))))

	exp := attribute.String("exporter", set.ID.String())
	metadatatest.AssertEqualExporterPrometheusRemoteWriteSamplesSent(t, tt,
		[]metricdata.DataPoint[int64]{{Value: 20, Attributes: attribute.NewSet(exp)}}, metricdatatest.IgnoreTimestamp())
	metadatatest.AssertEqualExporterPrometheusRemoteWriteSamplesRejected(t, tt,
		[]metricdata.DataPoint[int64]{{Value: 10, Attributes: attribute.NewSet(exp, attribute.String("reason", "rejected"))}}, metricdatatest.IgnoreTimestamp())
	metadatatest.AssertEqualExporterPrometheusRemoteWriteRequests(t, tt, []metricdata.DataPoint[int64]{
		{Value: 1, Attributes: attribute.NewSet(exp, attribute.String("code", "204"))},
		{Value: 1, Attributes: attribute.NewSet(exp, attribute.String("code", "400"))},
	}, metricdatatest.IgnoreTimestamp())
}
