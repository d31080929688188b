package redflagconnector

import (
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/component"

	"github.com/vigilhq/vigil/connectors/redflagconnector/internal/detect"
)

// Config is the redflag connector's configuration. The detectors' thresholds
// sit at the top level (error_spike, timeout_pressure, retry_storm, cascade,
// error_log_burst, saturation, slos, max_edges, ...); see detect.Config for
// each key and the reason for its default.
type Config struct {
	detect.Config `mapstructure:",squash"`

	// EvaluationInterval is how often every detector runs and the outputs
	// (ALERTS series, edge metrics, alert events) are emitted.
	EvaluationInterval time.Duration `mapstructure:"evaluation_interval"`
	// JoinSampleRatio is the share of inbound requests whose child calls are
	// joined to them (propagation, sibling retries, fan-out, own failures,
	// the time requests spend in their own code). 1 by default: joining a
	// parent and its children inside one process costs about as much as
	// counting them, and a quiet service needs every request it has. Lower
	// it only for services so busy that a sample tells as much; every span
	// still counts in the edges.
	JoinSampleRatio float64 `mapstructure:"join_sample_ratio"`
	// MaxJoinEntries bounds the join cache (~200 bytes an entry).
	MaxJoinEntries int `mapstructure:"max_join_entries"`
	// EdgeMetrics emits the per-edge RED metrics (calls, errors by class,
	// duration histogram, retries, learned timeout) with the alerts.
	EdgeMetrics bool `mapstructure:"edge_metrics"`
	// Mesh reads service-mesh request metrics (Istio's standard metrics,
	// Linkerd's proxy metrics) arriving on a metrics input as calls, for
	// services whose only per-call telemetry is their sidecars'.
	Mesh MeshConfig `mapstructure:"mesh"`
	// Status names an extension (vigil_status) that receives the live state for
	// the status page and alert-driven sampling.
	Status *component.ID `mapstructure:"status"`
}

// MeshConfig configures reading service-mesh metrics.
type MeshConfig struct {
	// Enabled reads istio_requests_total, istio_request_duration_milliseconds,
	// and Linkerd's response_total and response_latency_ms (those with its
	// direction label) as calls. On by default: the names are the meshes'.
	Enabled bool `mapstructure:"enabled"`
	// MaxSeries bounds the counter and histogram series whose last value is
	// kept (about 300 bytes each); points of new series past it are dropped
	// and counted.
	MaxSeries int `mapstructure:"max_series"`
}

var _ component.Config = (*Config)(nil)

// Validate checks every threshold, naming the key and the value.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key string, v any, why string) {
		errs = append(errs, fmt.Errorf("%s: %v %s", key, v, why))
	}
	ratio := func(key string, v float64) {
		if !(v > 0 && v <= 1) {
			bad(key, v, "must be in (0, 1]")
		}
	}
	nonNeg := func(key string, d time.Duration) {
		if d < 0 {
			bad(key, d, "must not be negative")
		}
	}
	if c.EvaluationInterval < time.Second {
		bad("evaluation_interval", c.EvaluationInterval, "must be at least 1s")
	}
	ratio("join_sample_ratio", c.JoinSampleRatio)
	if c.MaxJoinEntries < 0 {
		bad("max_join_entries", c.MaxJoinEntries, "must not be negative")
	}
	if c.MaxEdges <= 0 {
		bad("max_edges", c.MaxEdges, "must be positive")
	}
	if c.Mesh.MaxSeries <= 0 {
		bad("mesh.max_series", c.Mesh.MaxSeries, "must be positive")
	}
	if c.MaxServices <= 0 {
		bad("max_services", c.MaxServices, "must be positive")
	}
	if c.IdleExpiry < time.Minute {
		bad("idle_expiry", c.IdleExpiry, "must be at least 1m (longer than the 5-minute window is sensible)")
	}
	if c.SignificanceBits < 0 {
		bad("significance_bits", c.SignificanceBits, "must not be negative")
	}
	if c.BaselineHalfLife < time.Minute {
		bad("baseline_half_life", c.BaselineHalfLife, "must be at least 1m")
	}
	es := c.ErrorSpike
	ratio("error_spike.min_ratio", es.MinRatio)
	if es.BaselineFactor < 1 {
		bad("error_spike.baseline_factor", es.BaselineFactor, "must be at least 1")
	}
	if es.BaselineOffset < 0 || es.BaselineOffset >= 1 {
		bad("error_spike.baseline_offset", es.BaselineOffset, "must be in [0, 1)")
	}
	nonNeg("error_spike.for", es.For)
	tp := c.TimeoutPressure
	ratio("timeout_pressure.budget", tp.Budget)
	ratio("timeout_pressure.near_share", tp.NearShare)
	ratio("timeout_pressure.timeout_ratio", tp.TimeoutRatio)
	nonNeg("timeout_pressure.for", tp.For)
	for callee, d := range tp.Timeouts {
		if d <= 0 {
			bad("timeout_pressure.timeouts::"+callee, d, "must be positive")
		}
	}
	rs := c.RetryStorm
	ratio("retry_storm.min_retry_ratio", rs.MinRetryRatio)
	if rs.MinAmplification < 1 {
		bad("retry_storm.min_amplification", rs.MinAmplification, "must be at least 1")
	}
	if rs.CriticalAmplification < rs.MinAmplification {
		bad("retry_storm.critical_amplification", rs.CriticalAmplification, "must be at least min_amplification")
	}
	nonNeg("retry_storm.for", rs.For)
	nonNeg("retry_storm.metastable_after", rs.MetastableAfter)
	cc := c.Cascade
	if cc.LatencyFactor != 0 && cc.LatencyFactor < 1 {
		bad("cascade.latency_factor", cc.LatencyFactor, "must be at least 1 (it is the former name of latency_spike.factor)")
	}
	ratio("cascade.max_propagation", cc.MaxPropagation)
	nonNeg("cascade.for", cc.For)
	nonNeg("cascade.min_latency", cc.MinLatency)
	ls := c.LatencySpike
	if ls.Factor < 1 {
		bad("latency_spike.factor", ls.Factor, "must be at least 1")
	}
	nonNeg("latency_spike.min_delta", ls.MinDelta)
	ratio("latency_spike.min_share", ls.MinShare)
	if ls.MinBaseline < 1 {
		bad("latency_spike.min_baseline", ls.MinBaseline, "must be at least 1")
	}
	nonNeg("latency_spike.for", ls.For)
	lb := c.ErrorLogBurst
	if lb.Factor < 1 {
		bad("error_log_burst.factor", lb.Factor, "must be at least 1")
	}
	if lb.MaxTemplates <= 0 {
		bad("error_log_burst.max_templates", lb.MaxTemplates, "must be positive")
	}
	nonNeg("error_log_burst.for", lb.For)
	ratio("saturation.threshold", c.Saturation.Threshold)
	nonNeg("saturation.for", c.Saturation.For)
	if c.Saturation.TrendRise != 0 { // 0: no trend
		ratio("saturation.trend_rise", c.Saturation.TrendRise)
		ratio("saturation.trend_min", c.Saturation.TrendMin)
	}
	for i, r := range c.Saturation.Rules {
		if r.Resource == "" || r.Metric == "" {
			bad(fmt.Sprintf("saturation.rules[%d]", i), fmt.Sprintf("%+v", r), "needs resource and metric")
		}
	}
	seen := map[string]bool{}
	for i, s := range c.SLOs {
		key := fmt.Sprintf("slos[%d]", i)
		if s.Service == "" {
			bad(key+".service", `""`, "must name a service")
		}
		if s.Name == "" {
			bad(key+".name", `""`, "must name the SLO")
		}
		if !(s.Objective > 0 && s.Objective < 1) {
			bad(key+".objective", s.Objective, "must be in (0, 1), e.g. 0.999")
		}
		if seen[s.Service+"/"+s.Name] {
			bad(key, s.Service+"/"+s.Name, "is defined twice")
		}
		seen[s.Service+"/"+s.Name] = true
	}
	return errors.Join(errs...)
}
