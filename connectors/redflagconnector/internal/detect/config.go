package detect

import "time"

// Config holds the detectors' thresholds. It is plain data; the connector's
// config embeds it, so every field here is a user-facing key, documented with
// the reason for its default.
type Config struct {
	// MaxEdges caps the caller -> callee edges tracked (each <= ~6 KB);
	// edges beyond it are counted and ignored until idle edges expire.
	MaxEdges int `mapstructure:"max_edges"`
	// MaxServices caps the services tracked for inbound, log and metric state.
	MaxServices int `mapstructure:"max_services"`
	// IdleExpiry forgets an edge or service after this long without data.
	IdleExpiry time.Duration `mapstructure:"idle_expiry"`
	// SignificanceBits is how surprising a count must be under the baseline
	// before it may alert: the Chernoff bound of the tail probability must be
	// below 2^-SignificanceBits. 14 bits (p < 6e-5 per test) keeps a fleet of
	// thousands of edges, each tested every 10 s, to a handful of chance
	// crossings a day, which the `for` durations then absorb.
	SignificanceBits float64 `mapstructure:"significance_bits"`
	// BaselineHalfLife is the half-life of the learned baselines (error ratio,
	// p99 latency, fan-out). An hour adapts to slow drift and daily cycles but
	// not to a 10-minute incident; baselines do not learn while an edge is anomalous.
	BaselineHalfLife time.Duration `mapstructure:"baseline_half_life"`

	ErrorSpike      ErrorSpikeConfig      `mapstructure:"error_spike"`
	TimeoutPressure TimeoutPressureConfig `mapstructure:"timeout_pressure"`
	LatencySpike    LatencyConfig         `mapstructure:"latency_spike"`
	RetryStorm      RetryStormConfig      `mapstructure:"retry_storm"`
	Cascade         CascadeConfig         `mapstructure:"cascade"`
	ErrorLogBurst   ErrorLogBurstConfig   `mapstructure:"error_log_burst"`
	Saturation      SaturationConfig      `mapstructure:"saturation"`
	SLOs            []SLOConfig           `mapstructure:"slos"`
}

// ErrorSpikeConfig configures DependencyErrorSpike.
type ErrorSpikeConfig struct {
	// MinRatio is the floor of the error-ratio threshold: 5%, below which an
	// error rate is rarely worth waking someone for.
	MinRatio float64 `mapstructure:"min_ratio"`
	// BaselineFactor and BaselineOffset raise the threshold for edges that
	// always fail a little: threshold = max(MinRatio, factor x baseline + offset).
	BaselineFactor float64 `mapstructure:"baseline_factor"`
	BaselineOffset float64 `mapstructure:"baseline_offset"`
	// MinCalls in the 5-minute window (calls their callers did not cancel)
	// below which an edge is not judged at all. Counts above it are judged by
	// significance against the edge's own rate, so a low-traffic edge with a
	// few calls a minute alerts when most of them fail, and one failure in
	// ten is not a spike. At least three failures are always needed.
	MinCalls uint32 `mapstructure:"min_calls"`
	// For is how long the condition must hold before the alert fires,
	// counted from when the calls began failing without a break once three
	// ten-second buckets in a row failed (a burst inside one or two buckets
	// waits all of it from when the rate test passes).
	For time.Duration `mapstructure:"for"`
}

// TimeoutPressureConfig configures DependencyTimeoutPressure.
type TimeoutPressureConfig struct {
	// Budget is the share of the timeout beyond which a call is "near" it: 80%.
	Budget float64 `mapstructure:"budget"`
	// NearShare is the share of calls near or past the timeout that alerts: 10%.
	NearShare float64 `mapstructure:"near_share"`
	// TimeoutRatio is the share of calls that timed out that alerts on its own
	// (a deadline-exceeded burst): 5%.
	TimeoutRatio float64 `mapstructure:"timeout_ratio"`
	// Timeouts are known per-callee timeouts; others are learned from the
	// durations of calls that timed out.
	Timeouts map[string]time.Duration `mapstructure:"timeouts"`
	MinCalls uint32                   `mapstructure:"min_calls"`
	For      time.Duration            `mapstructure:"for"`
}

// LatencyConfig configures DependencyLatencySpike and the latency part of
// CascadingFailure: calls got slow, without necessarily failing. A window
// of recent calls (the last 30 s, and the last minute) is compared with the
// edge's (or service's) own normal durations, learned a minute behind the
// present: it is slow when at least MinShare of its calls reach the bar,
// max(Factor x the normal p90, the normal p90 + MinDelta), and that share is
// significant against how often normal calls reach it. Few calls need
// nearly all of them slow; at least three always.
type LatencyConfig struct {
	// Factor over the normal p90 that a slow call reaches: 2.
	Factor float64 `mapstructure:"factor"`
	// MinDelta is the least added latency that counts: 20ms, below which a
	// slowdown rarely matters to a caller.
	MinDelta time.Duration `mapstructure:"min_delta"`
	// MinShare of recent calls that must reach the bar: 25%, so a few slow
	// outliers are not a slowdown.
	MinShare float64 `mapstructure:"min_share"`
	// MinBaseline is how many calls' worth of normal durations a series
	// needs before it is judged: 20 (a minute of a busy edge, a few minutes
	// of a quiet one).
	MinBaseline float64 `mapstructure:"min_baseline"`
	// For is how long the condition must hold before the alert fires,
	// counted from when the calls got slow without a break once three
	// ten-second buckets in a row were slow.
	For time.Duration `mapstructure:"for"`
}

// RetryStormConfig configures RetryStorm.
type RetryStormConfig struct {
	// MinRetryRatio is the share of calls that are retries: 10%.
	MinRetryRatio float64 `mapstructure:"min_retry_ratio"`
	// MinAmplification is calls per logical call (or per inbound request, against
	// the baseline fan-out) that counts as a storm: 1.5.
	MinAmplification float64 `mapstructure:"min_amplification"`
	// CriticalAmplification escalates to a critical RetryStorm: 3.
	CriticalAmplification float64 `mapstructure:"critical_amplification"`
	// MetastableAfter flags a storm as metastable when it outlives its trigger
	// (the callee's own dependencies are healthy again, its errors are overload)
	// for this long.
	MetastableAfter time.Duration `mapstructure:"metastable_after"`
	MinCalls        uint32        `mapstructure:"min_calls"`
	For             time.Duration `mapstructure:"for"`
}

// CascadeConfig configures CascadingFailure and IsolatedFailure.
type CascadeConfig struct {
	// LatencyFactor and MinLatency are the former names of
	// latency_spike.factor and latency_spike.min_delta, still read: when set
	// (non-zero) they replace those.
	LatencyFactor float64       `mapstructure:"latency_factor"`
	MinLatency    time.Duration `mapstructure:"min_latency"`
	// MaxPropagation below which a caller contains its dependency's failures
	// (fallbacks, breakers): the share of requests with a failed call to the
	// callee that failed themselves. 20%.
	MaxPropagation float64       `mapstructure:"max_propagation"`
	For            time.Duration `mapstructure:"for"`
}

// ErrorLogBurstConfig configures ErrorLogBurst.
type ErrorLogBurstConfig struct {
	// Factor over the baseline error-log rate: 5x.
	Factor float64 `mapstructure:"factor"`
	// MinCount error logs in 5 minutes before a burst can alert.
	MinCount uint32 `mapstructure:"min_count"`
	// MaxTemplates per service for the message-template grouping.
	MaxTemplates int           `mapstructure:"max_templates"`
	For          time.Duration `mapstructure:"for"`
}

// SaturationConfig configures Saturation from metrics.
type SaturationConfig struct {
	// Threshold of utilization (0..1) that alerts: 90%.
	Threshold float64 `mapstructure:"threshold"`
	// Rules map well-known metrics to a resource; defaults cover CPU limit,
	// memory limit, DB connection pools and active requests.
	Rules []SaturationRule `mapstructure:"rules"`
	For   time.Duration    `mapstructure:"for"`
	// TrendRise alerts on a connection pool (a rule with Waiters) filling up
	// before it is exhausted: its utilization rose by at least this much in
	// four or more samples over the last 40 s, never falling and going up in
	// at least two steps, reached TrendMin, and the service's inbound
	// traffic stayed flat (a leak, not load). 0 turns the trend off. The
	// climb itself is the evidence, so a trend alert fires without waiting
	// for For; it holds while the pool does not drain, up to 5 minutes after
	// the last climb.
	TrendRise float64 `mapstructure:"trend_rise"`
	TrendMin  float64 `mapstructure:"trend_min"`
}

// SaturationRule reads one utilization signal from metrics.
type SaturationRule struct {
	// Resource names the saturated resource in the alert's label.
	Resource string `mapstructure:"resource"`
	// Metric is a utilization in 0..1, or the numerator of Used/Limit.
	Metric string `mapstructure:"metric"`
	// Attributes the data point must carry (e.g. state: used).
	Attributes map[string]string `mapstructure:"attributes"`
	// Limit, when set, is the denominator metric (same resource).
	Limit string `mapstructure:"limit"`
	// Waiters, when set, must also be above zero (requests waiting for the
	// resource), or the Timeouts counter must have grown since its last sample
	// (requests gave up waiting).
	Waiters  string `mapstructure:"waiters"`
	Timeouts string `mapstructure:"timeouts"`
}

// SLOConfig is one service-level objective over a service's inbound requests.
type SLOConfig struct {
	Name    string `mapstructure:"name"`
	Service string `mapstructure:"service"`
	// Objective is the target success ratio, e.g. 0.999.
	Objective float64 `mapstructure:"objective"`
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		MaxEdges:         5000,
		MaxServices:      2000,
		IdleExpiry:       15 * time.Minute,
		SignificanceBits: 14,
		BaselineHalfLife: time.Hour,
		ErrorSpike: ErrorSpikeConfig{
			MinRatio: 0.05, BaselineFactor: 3, BaselineOffset: 0.01, MinCalls: 5, For: 20 * time.Second,
		},
		TimeoutPressure: TimeoutPressureConfig{
			Budget: 0.8, NearShare: 0.10, TimeoutRatio: 0.05, MinCalls: 5, For: 30 * time.Second,
		},
		LatencySpike: LatencyConfig{
			Factor: 2, MinDelta: 20 * time.Millisecond, MinShare: 0.25, MinBaseline: 20, For: 30 * time.Second,
		},
		RetryStorm: RetryStormConfig{
			MinRetryRatio: 0.10, MinAmplification: 1.5, CriticalAmplification: 3,
			MetastableAfter: 3 * time.Minute, MinCalls: 50, For: 30 * time.Second,
		},
		Cascade: CascadeConfig{
			MaxPropagation: 0.2, For: 20 * time.Second,
		},
		ErrorLogBurst: ErrorLogBurstConfig{Factor: 5, MinCount: 30, MaxTemplates: 200, For: 30 * time.Second},
		Saturation: SaturationConfig{
			Threshold: 0.9,
			For:       time.Minute,
			TrendRise: 0.3,
			TrendMin:  0.5,
			Rules: []SaturationRule{
				{Resource: "cpu", Metric: "k8s.container.cpu_limit_utilization"},
				{Resource: "cpu", Metric: "container.cpu.throttling_ratio"},
				{Resource: "memory", Metric: "k8s.container.memory_limit_utilization"},
				{Resource: "memory", Metric: "container.memory.working_set", Limit: "k8s.container.memory_limit"},
				{Resource: "db_connection_pool", Metric: "db.client.connection.count", Attributes: map[string]string{"db.client.connection.state": "used"},
					Limit: "db.client.connection.max", Waiters: "db.client.connection.pending_requests", Timeouts: "db.client.connection.timeouts"},
				{Resource: "db_connection_pool", Metric: "db.client.connections.usage", Attributes: map[string]string{"state": "used"},
					Limit: "db.client.connections.max", Waiters: "db.client.connections.pending_requests", Timeouts: "db.client.connections.timeouts"},
			},
		},
	}
}

// Normalized returns c with the former key names applied (see
// CascadeConfig.LatencyFactor).
func (c Config) Normalized() Config {
	if c.Cascade.LatencyFactor != 0 {
		c.LatencySpike.Factor = c.Cascade.LatencyFactor
	}
	if c.Cascade.MinLatency != 0 {
		c.LatencySpike.MinDelta = c.Cascade.MinLatency
	}
	return c
}
