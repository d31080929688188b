// Package redflagconnector is the red-flag connector: it computes cascading-
// failure alerts and per-edge RED metrics from all the traces, logs and
// metrics it receives, before any sampling, and emits the alerts as
// Prometheus-style ALERTS series (metrics) and state-change events (logs).
package redflagconnector

import (
	"context"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/connector"
	"go.opentelemetry.io/collector/consumer"

	"github.com/vigilhq/vigil/connectors/redflagconnector/internal/detect"
	"github.com/vigilhq/vigil/connectors/redflagconnector/internal/metadata"
)

// NewFactory returns the redflag connector's factory. One connector ID is one
// detector state, however many pipelines it joins: each input signal feeds it
// once, and every output pipeline gets every evaluation's output.
func NewFactory() connector.Factory { return newFactory(clockwork.NewRealClock()).connectorFactory() }

// newFactory holds the shared states on a clock of the caller's (tests pass a
// fake one: the detectors judge ten-second buckets of processing time).
func newFactory(clock clockwork.Clock) *factory {
	return &factory{cores: map[component.ID]*core{}, clock: clock}
}

func (f *factory) connectorFactory() connector.Factory {
	return connector.NewFactory(metadata.Type, createDefaultConfig,
		connector.WithTracesToMetrics(f.tracesToMetrics, metadata.TracesToMetricsStability),
		connector.WithTracesToLogs(f.tracesToLogs, metadata.TracesToLogsStability),
		connector.WithLogsToMetrics(f.logsToMetrics, metadata.LogsToMetricsStability),
		connector.WithLogsToLogs(f.logsToLogs, metadata.LogsToLogsStability),
		connector.WithMetricsToMetrics(f.metricsToMetrics, metadata.MetricsToMetricsStability),
		connector.WithMetricsToLogs(f.metricsToLogs, metadata.MetricsToLogsStability),
	)
}

func createDefaultConfig() component.Config {
	return &Config{
		Config:             detect.DefaultConfig(),
		EvaluationInterval: 10 * time.Second,
		JoinSampleRatio:    1,
		MaxJoinEntries:     100_000,
		EdgeMetrics:        true,
		Mesh:               MeshConfig{Enabled: true, MaxSeries: 100_000},
	}
}

type factory struct {
	mu    sync.Mutex
	cores map[component.ID]*core
	clock clockwork.Clock
}

// core returns the shared state of the connector ID, creating it on first use.
func (f *factory) core(set connector.Settings, cfg component.Config) (*core, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.cores[set.ID]; ok {
		return c, nil
	}
	c, err := newCore(set, cfg.(*Config), f.clock, func() {
		f.mu.Lock()
		delete(f.cores, set.ID)
		f.mu.Unlock()
	})
	if err != nil {
		return nil, err
	}
	f.cores[set.ID] = c
	return c, nil
}

func (f *factory) tracesToMetrics(_ context.Context, set connector.Settings, cfg component.Config, next consumer.Metrics) (connector.Traces, error) {
	c, err := f.core(set, cfg)
	if err != nil {
		return nil, err
	}
	c.addMetricsOut(next)
	return &tracesIn{input: c.input(signalTraces)}, nil
}

func (f *factory) tracesToLogs(_ context.Context, set connector.Settings, cfg component.Config, next consumer.Logs) (connector.Traces, error) {
	c, err := f.core(set, cfg)
	if err != nil {
		return nil, err
	}
	c.addLogsOut(next)
	return &tracesIn{input: c.input(signalTraces)}, nil
}

func (f *factory) logsToMetrics(_ context.Context, set connector.Settings, cfg component.Config, next consumer.Metrics) (connector.Logs, error) {
	c, err := f.core(set, cfg)
	if err != nil {
		return nil, err
	}
	c.addMetricsOut(next)
	return &logsIn{input: c.input(signalLogs)}, nil
}

func (f *factory) logsToLogs(_ context.Context, set connector.Settings, cfg component.Config, next consumer.Logs) (connector.Logs, error) {
	c, err := f.core(set, cfg)
	if err != nil {
		return nil, err
	}
	c.addLogsOut(next)
	return &logsIn{input: c.input(signalLogs)}, nil
}

func (f *factory) metricsToMetrics(_ context.Context, set connector.Settings, cfg component.Config, next consumer.Metrics) (connector.Metrics, error) {
	c, err := f.core(set, cfg)
	if err != nil {
		return nil, err
	}
	c.addMetricsOut(next)
	return &metricsIn{input: c.input(signalMetrics)}, nil
}

func (f *factory) metricsToLogs(_ context.Context, set connector.Settings, cfg component.Config, next consumer.Logs) (connector.Metrics, error) {
	c, err := f.core(set, cfg)
	if err != nil {
		return nil, err
	}
	c.addLogsOut(next)
	return &metricsIn{input: c.input(signalMetrics)}, nil
}
