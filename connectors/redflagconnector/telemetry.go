package redflagconnector

import (
	"context"
	"errors"
	"sync/atomic"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/vigilhq/vigil/connectors/redflagconnector/internal/metadata"
)

// gaugeValues are what the observable instruments report, as of the last
// evaluation.
type gaugeValues struct {
	Edges, Services int64 // tracked now
	Pending, Firing int64 // active alerts
	// Cumulative: edge observations dropped at max_edges, edges expired,
	// joins dropped at the cache bound and expired, client spans that named
	// no dependency.
	EdgesOverflow, EdgesExpired int64
	JoinDropped, JoinExpired    int64
	NoCallee                    int64
	// Service-mesh metrics: points read, series kept, points of new series
	// dropped at the cap, counter resets (cumulative but Series).
	MeshPoints, MeshSeries, MeshDropped, MeshResets int64
}

// newTelemetry creates the instruments metadata.yaml declares (generated into
// internal/metadata) and registers the observable ones on gauges.
func newTelemetry(set component.TelemetrySettings, gauges *atomic.Pointer[gaugeValues]) (*metadata.TelemetryBuilder, error) {
	tb, err := metadata.NewTelemetryBuilder(set)
	if err != nil {
		return nil, err
	}
	observe := func(v func(*gaugeValues) int64) metric.Int64Callback {
		return func(_ context.Context, o metric.Int64Observer) error {
			if g := gauges.Load(); g != nil {
				o.Observe(v(g))
			}
			return nil
		}
	}
	pending := metric.WithAttributes(attribute.String("state", "pending"))
	firing := metric.WithAttributes(attribute.String("state", "firing"))
	err = errors.Join(
		tb.RegisterConnectorRedflagEdgesCallback(observe(func(g *gaugeValues) int64 { return g.Edges })),
		tb.RegisterConnectorRedflagServicesCallback(observe(func(g *gaugeValues) int64 { return g.Services })),
		tb.RegisterConnectorRedflagAlertsCallback(func(_ context.Context, o metric.Int64Observer) error {
			g := gauges.Load()
			if g == nil {
				return nil
			}
			o.Observe(g.Pending, pending)
			o.Observe(g.Firing, firing)
			return nil
		}),
		tb.RegisterConnectorRedflagEdgesDroppedCallback(observe(func(g *gaugeValues) int64 { return g.EdgesOverflow })),
		tb.RegisterConnectorRedflagEdgesEvictedCallback(observe(func(g *gaugeValues) int64 { return g.EdgesExpired })),
		tb.RegisterConnectorRedflagJoinsDroppedCallback(observe(func(g *gaugeValues) int64 { return g.JoinDropped })),
		tb.RegisterConnectorRedflagJoinsExpiredCallback(observe(func(g *gaugeValues) int64 { return g.JoinExpired })),
		tb.RegisterConnectorRedflagSpansWithoutCalleeCallback(observe(func(g *gaugeValues) int64 { return g.NoCallee })),
		tb.RegisterConnectorRedflagMeshDatapointsCallback(observe(func(g *gaugeValues) int64 { return g.MeshPoints })),
		tb.RegisterConnectorRedflagMeshSeriesCallback(observe(func(g *gaugeValues) int64 { return g.MeshSeries })),
		tb.RegisterConnectorRedflagMeshSeriesDroppedCallback(observe(func(g *gaugeValues) int64 { return g.MeshDropped })),
		tb.RegisterConnectorRedflagMeshCounterResetsCallback(observe(func(g *gaugeValues) int64 { return g.MeshResets })),
	)
	if err != nil {
		tb.Shutdown()
		return nil, err
	}
	return tb, nil
}
