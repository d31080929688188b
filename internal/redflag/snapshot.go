package redflag

import "time"

// Snapshot is the redflag connector's live state after one evaluation, as the
// status extension shows it and the tail sampler reads it. Immutable once
// published.
type Snapshot struct {
	At       time.Time
	Edges    []EdgeState
	Services []ServiceState
	Alerts   []Alert
	// Flags is what active alerts point at (nil: nothing).
	Flags *FlagSet
	// Counters are the detectors' running totals (telemetry observed, state
	// dropped at its bounds), keyed by a short snake_case name.
	Counters map[string]int64
}

// EdgeState is one caller -> callee edge at an evaluation.
type EdgeState struct {
	Caller, Callee string
	// CalleeKind says what the callee name is; KindAddress marks an address
	// no telemetry has tied to a service yet ("unresolved address").
	CalleeKind Kind
	Namespace  string // the caller's Kubernetes namespace, if known
	// Over the last five minutes.
	Calls, Errors, Cancelled uint32
	ErrorRatio, RetryRatio   float64
	P50Ms, P99Ms             float64
	TimeoutMs                float64 // learned timeout, 0 if unknown
	// Anomalous: failing or slow now; Slow: latency far above its normal.
	Anomalous, Slow bool
	Flagged         bool // part of an active alert
}

// ServiceState is one service's inbound health at an evaluation.
type ServiceState struct {
	Name, Namespace string
	Calls           uint32 // inbound requests in five minutes
	ErrorRatio      float64
	P99Ms           float64
	Failing, Slow   bool
	Origin          bool // named as the origin of an active incident
}

// Alert is one active alert. Labels identify it and never change while it is
// active; numbers that change are annotations.
type Alert struct {
	Labels      map[string]string
	Annotations map[string]string
	State       string // "pending" or "firing"
	ActiveAt    time.Time
	FiredAt     time.Time // zero while pending
}

// Name returns the alertname label.
func (a *Alert) Name() string { return a.Labels["alertname"] }

// Publisher receives the connector's snapshots: the status extension
// implements it. PublishRedFlags takes ownership of snap.
type Publisher interface {
	PublishRedFlags(snap *Snapshot)
}

// FlagSource hands out the latest flagged set: the status extension
// implements it for the tail sampler. The set is shared: never change it.
type FlagSource interface {
	FlaggedSet() *FlagSet
}
