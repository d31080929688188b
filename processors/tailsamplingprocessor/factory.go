// Package tailsamplingprocessor is Vigil's tail sampler: the contrib
// tail_sampling configuration and decisions, with buffered spans kept outside
// the Go heap under a byte budget, policies decided from compact per-trace
// summaries, decision caches on by default, and pending traces saved across
// restarts.
package tailsamplingprocessor

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/processor"

	"github.com/vigilhq/vigil/processors/tailsamplingprocessor/internal/metadata"
)

// NewFactory returns the tail_sampling processor factory.
func NewFactory() processor.Factory {
	return processor.NewFactory(metadata.Type, createDefaultConfig,
		processor.WithTraces(createTraces, metadata.TracesStability))
}

func createDefaultConfig() component.Config {
	return &Config{
		DecisionWait:     30 * time.Second,
		NumTraces:        50000,
		NumShards:        1,
		SamplingStrategy: strategyTraceComplete,
		WriteThreshold:   true,
	}
}

func createTraces(_ context.Context, set processor.Settings, cfg component.Config, next consumer.Traces) (processor.Traces, error) {
	return newSampler(set, cfg.(*Config), next)
}
