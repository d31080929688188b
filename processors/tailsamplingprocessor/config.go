package tailsamplingprocessor

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/component"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/zap"

	"github.com/vigilhq/vigil/internal/redflag"
	"github.com/vigilhq/vigil/processors/tailsamplingprocessor/internal/policy"
)

// Config is the contrib tail_sampling configuration, key for key, plus
// Vigil's own keys (memory_limit_mib, storage). See README.md for where
// Vigil's behaviour differs on purpose.
type Config struct {
	// DecisionWait is how long a trace is buffered after its first span
	// before its decision.
	DecisionWait time.Duration `mapstructure:"decision_wait"`
	// DecisionWaitAfterRootReceived, when > 0, decides a trace this long
	// after its root span arrived, if that is earlier.
	DecisionWaitAfterRootReceived time.Duration `mapstructure:"decision_wait_after_root_received"`
	// NumTraces is accepted for compatibility. Vigil bounds memory in bytes
	// (MemoryLimitMiB) and decides the oldest traces early when it is full,
	// rather than dropping traces at a count.
	NumTraces uint64 `mapstructure:"num_traces"`
	// BlockOnOverflow is accepted for compatibility: Vigil never drops on
	// overflow (it decides early), so it never needs to block ingest.
	BlockOnOverflow bool `mapstructure:"block_on_overflow"`
	// ExpectedNewTracesPerSec sizes the trace index up front.
	ExpectedNewTracesPerSec uint64 `mapstructure:"expected_new_traces_per_sec"`
	// Policies decide which traces are kept.
	Policies []policy.Config `mapstructure:"policies"`
	// DecisionCache keeps decided trace IDs so late spans follow the decision.
	DecisionCache DecisionCacheConfig `mapstructure:"decision_cache"`
	// TailStorage (upstream's storage extension) is not supported; Storage is
	// Vigil's way to keep pending traces across restarts.
	TailStorage *component.ID `mapstructure:"tail_storage"`
	// SampleOnFirstMatch stops evaluating policies at the first that samples.
	SampleOnFirstMatch bool `mapstructure:"sample_on_first_match"`
	// SamplingStrategy is trace-complete (decide after decision_wait) or
	// span-ingest (decide on each batch as it arrives).
	SamplingStrategy string `mapstructure:"sampling_strategy"`
	// DropPendingTracesOnShutdown discards undecided traces at shutdown
	// instead of deciding them (ignored when Storage is set: they are saved).
	DropPendingTracesOnShutdown bool `mapstructure:"drop_pending_traces_on_shutdown"`
	// MaximumTraceSizeBytes: a trace that grows past this (OTLP size) is not sampled.
	MaximumTraceSizeBytes uint64 `mapstructure:"maximum_trace_size_bytes"`
	// NumShards is accepted for compatibility: Vigil's sampler is not sharded.
	NumShards uint32 `mapstructure:"num_shards"`

	// MemoryLimitMiB is the byte budget for buffered spans and the trace
	// index (Vigil). 0 derives it from the container's memory limit (a
	// quarter of it) or uses 512 MiB without one.
	MemoryLimitMiB uint64 `mapstructure:"memory_limit_mib"`
	// Storage is a directory where pending traces and decision caches are
	// saved on shutdown and read back on start (Vigil). Empty: not saved.
	Storage string `mapstructure:"storage"`
	// WriteThreshold writes the OpenTelemetry sampling threshold (tracestate
	// ot=th, OTEP 235) on kept spans (Vigil): th:0 for a trace every policy
	// would keep in full (errors, latency, red flags), the probabilistic
	// policy's threshold for one kept by chance, so counts computed
	// downstream from sampled spans can be scaled back up. Upstream does this
	// only behind a feature gate.
	WriteThreshold bool `mapstructure:"write_threshold"`
	// RecordPolicy names, on kept spans, the policy that sampled their trace
	// (Vigil's key for upstream's recordpolicy feature gate, which turns it
	// on too): the scope attributes tailsampling.policy,
	// tailsampling.composite_policy (the composite sub-policy that sampled)
	// and tailsampling.cached_decision (a late span kept because its trace
	// was sampled before).
	RecordPolicy bool `mapstructure:"record_policy"`
}

// DecisionCacheConfig sizes the decision caches. Upstream sizes them in trace
// IDs and has them off by default; Vigil has them on by default, each sized
// to a sixteenth of the memory budget, unless a size is given (<= 0 turns a
// cache off).
type DecisionCacheConfig struct {
	SampledCacheSize    *int `mapstructure:"sampled_cache_size"`
	NonSampledCacheSize *int `mapstructure:"non_sampled_cache_size"`
}

const (
	strategyTraceComplete = "trace-complete"
	strategySpanIngest    = "span-ingest"
)

var _ component.Config = (*Config)(nil)

// Validate checks the configuration, building every policy so a bad one is
// reported by `vigil validate`, not at start.
func (c *Config) Validate() error {
	var errs []error
	switch c.SamplingStrategy {
	case strategyTraceComplete, strategySpanIngest:
	default:
		errs = append(errs, fmt.Errorf("invalid sampling_strategy %q, expected one of %q or %q", c.SamplingStrategy, strategyTraceComplete, strategySpanIngest))
	}
	if c.NumShards > 256 {
		errs = append(errs, fmt.Errorf("num_shards (%d) must not exceed 256", c.NumShards))
	}
	if c.TailStorage != nil {
		errs = append(errs, errors.New("tail_storage is not supported by Vigil's tail_sampling; set storage (a directory) to keep pending traces across restarts"))
	}
	if c.DecisionWait < 0 {
		errs = append(errs, fmt.Errorf("decision_wait: %s must not be negative", c.DecisionWait))
	}
	if c.DecisionWaitAfterRootReceived < 0 {
		errs = append(errs, fmt.Errorf("decision_wait_after_root_received: %s must not be negative", c.DecisionWaitAfterRootReceived))
	}
	if c.MemoryLimitMiB != 0 && c.MemoryLimitMiB < 4 {
		errs = append(errs, fmt.Errorf("memory_limit_mib: %d is below the minimum of 4", c.MemoryLimitMiB))
	}
	if len(errs) == 0 {
		if _, err := c.buildPolicies(quietSettings(), new(atomic.Pointer[redflag.FlagSet])); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// buildPolicies compiles the policies; span-ingest refuses stateful ones.
func (c *Config) buildPolicies(set component.TelemetrySettings, flags *atomic.Pointer[redflag.FlagSet]) (*policy.Builder, error) {
	b := &policy.Builder{C: &policy.Compiler{}, Set: set, Flags: flags}
	ps, err := b.BuildAll(c.Policies)
	if err != nil {
		return nil, err
	}
	if c.SamplingStrategy == strategySpanIngest {
		for _, p := range ps {
			if policy.IsStateful(p.Evaluator) {
				return nil, fmt.Errorf("sampling_strategy %q requires all policies to be stateless, but policy %q is stateful", strategySpanIngest, p.Name)
			}
		}
	}
	b.Built = ps
	return b, nil
}

// quietSettings is what Validate builds policies with: no logs, no metrics.
func quietSettings() component.TelemetrySettings {
	return component.TelemetrySettings{Logger: zap.NewNop(), MeterProvider: metricnoop.NewMeterProvider(), TracerProvider: tracenoop.NewTracerProvider()}
}
