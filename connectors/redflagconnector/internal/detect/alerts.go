package detect

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"slices"
	"time"

	"github.com/vigilhq/vigil/internal/alertevent"
)

// State is an alert's state, named as Prometheus names it.
type State string

// Alert states.
const (
	Pending  State = "pending"
	Firing   State = "firing"
	Resolved State = "resolved"
)

// Alert is one active (or just resolved) alert. Labels identify it and never
// change while it is active; numbers that change go in Annotations.
type Alert struct {
	Labels      map[string]string
	Annotations map[string]string
	State       State
	ActiveAt    time.Time
	FiredAt     time.Time
	ResolvedAt  time.Time
	TraceID     [16]byte

	key  string
	for_ time.Duration
	seen bool
}

// Name returns the alertname label.
func (a *Alert) Name() string { return a.Labels["alertname"] }

// Transition is a state change of an alert at an evaluation.
type Transition struct {
	Alert Alert // a copy, with the new State
	From  State // "" for a new alert
}

// CascadeID is the stable identifier of the incident whose failures start at
// origin: the same on every agent that sees it, so Alertmanager dedupes and
// its inhibition rules can match symptom alerts to their cascade.
func CascadeID(origin string) string {
	h := sha256.Sum256([]byte("vigil-cascade\x00" + origin))
	return hex.EncodeToString(h[:6])
}

// candidate is a condition an evaluation found: start says the alert may
// begin, keep that an active one may continue (hysteresis).
type candidate struct {
	labels      map[string]string
	annotations map[string]string
	forDur      time.Duration
	start, keep bool
	trace       [16]byte
	// lookup key without the sticky labels (cascade_id of symptoms), so the
	// label set chosen at creation stays until the alert resolves.
	identity string
	// since, when set, is when the condition's evidence began, if earlier
	// than the evaluation that first finds it (For counts from there).
	since time.Time
}

// offer applies one candidate to the alert set at now and records transitions.
func (e *Engine) offer(c candidate, now time.Time, out *[]Transition) *Alert {
	id := c.identity
	if id == "" {
		id = alertevent.LabelsKey(c.labels)
	}
	a := e.alerts[id]
	if a == nil {
		if !c.start {
			return nil
		}
		labels := c.labels
		if ns := e.namespaceOf(labels); ns != "" {
			// Known when the alert begins, kept until it resolves (the
			// identity does not include them).
			labels = maps.Clone(labels)
			labels[namespaceLabel] = ns
			labels[routeNamespaceLabel] = ns
		}
		active := now
		if !c.since.IsZero() && c.since.Before(now) {
			active = c.since
		}
		a = &Alert{Labels: labels, State: Pending, ActiveAt: active, key: id, for_: c.forDur}
		e.alerts[id] = a
		*out = append(*out, Transition{Alert: a.copy(), From: ""})
	} else if !c.start && !c.keep {
		return nil
	}
	a.seen = true
	if a.State == Pending && c.forDur < a.for_ {
		a.for_ = c.forDur // stronger evidence need not wait as long
	}
	if a.State == Pending && !c.since.IsZero() && c.since.Before(a.ActiveAt) {
		a.ActiveAt = c.since // the evidence turned out to be older
	}
	a.Annotations = c.annotations
	if c.trace != ([16]byte{}) {
		a.TraceID = c.trace
	}
	if a.State == Pending && now.Sub(a.ActiveAt) >= a.for_ {
		a.State, a.FiredAt = Firing, now
		*out = append(*out, Transition{Alert: a.copy(), From: Pending})
	}
	return a
}

// namespaceOf returns the Kubernetes namespace of the service an alert is
// about (service, else origin_service), if known.
func (e *Engine) namespaceOf(labels map[string]string) string {
	svc := labels["service"]
	if svc == "" {
		svc = labels["origin_service"]
	}
	return e.namespaces[svc].name
}

// resolveUnseen resolves every active alert no candidate kept this evaluation.
func (e *Engine) resolveUnseen(now time.Time, out *[]Transition) {
	for _, k := range slices.Sorted(maps.Keys(e.alerts)) {
		a := e.alerts[k]
		if a.seen {
			a.seen = false
			continue
		}
		from := a.State
		a.State, a.ResolvedAt = Resolved, now
		*out = append(*out, Transition{Alert: a.copy(), From: from})
		delete(e.alerts, k)
	}
}

func (a *Alert) copy() Alert {
	c := *a
	c.Labels = maps.Clone(a.Labels)
	c.Annotations = maps.Clone(a.Annotations)
	return c
}

// Alerts returns the active alerts (pending and firing), sorted by labels.
func (e *Engine) Alerts() []Alert {
	out := make([]Alert, 0, len(e.alerts))
	for _, k := range slices.Sorted(maps.Keys(e.alerts)) {
		out = append(out, e.alerts[k].copy())
	}
	return out
}
