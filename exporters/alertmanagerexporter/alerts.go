package alertmanagerexporter

import (
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vigilhq/vigil/internal/alertevent"
)

// postableAlert is one alert of Alertmanager's API v2 POST /api/v2/alerts
// body (the postableAlert schema).
type postableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// exampleTraceAnnotation carries an event's example trace ID. Trace IDs
// change, so they are annotations, never labels (the alert contract).
const exampleTraceAnnotation = "example_trace_id"

// held is one alert the exporter keeps sending.
type held struct {
	labels      map[string]string
	annotations map[string]string
	firing      bool
	firedAt     time.Time
	resolvedAt  time.Time
	eval        time.Duration // the producer's evaluation interval
	lastSent    time.Time
	sentResolve bool // the resolution was sent at least once
}

// alertSet applies Prometheus's notifier semantics to alert state changes:
// pending alerts are not sent; a firing alert is sent at once and then every
// resendDelay with endsAt = now + 4 x max(evaluation interval, resendDelay); a
// resolved alert is sent at once with its real endsAt and again every
// resendDelay until retention has passed. It is a pure state machine with
// time passed in; not safe for concurrent use.
type alertSet struct {
	resendDelay  time.Duration
	retention    time.Duration
	max          int
	external     map[string]string
	generatorURL string
	alerts       map[string]*held // by fingerprint of the sent labels
	firing       int
}

func newAlertSet(cfg *Config) *alertSet {
	return &alertSet{
		resendDelay:  cfg.ResendDelay,
		retention:    cfg.ResolvedRetention,
		max:          cfg.MaxAlerts,
		external:     cfg.ExternalLabels,
		generatorURL: cfg.GeneratorURL,
		alerts:       map[string]*held{},
	}
}

// outcome says what apply did with an event; the non-empty ones other than
// applied are metric reasons.
type outcome string

const (
	applied       outcome = ""
	invalidLabels outcome = "invalid_labels"
	alertLimit    outcome = "alert_limit"
)

// apply records one state change.
func (s *alertSet) apply(ev *alertevent.Event) outcome {
	labels, ok := s.labels(ev.Labels)
	if !ok {
		return invalidLabels
	}
	fp := alertevent.LabelsKey(labels)
	h := s.alerts[fp]
	switch ev.State {
	case alertevent.StatePending:
		// A new incident with the labels of a resolved one replaces it, as
		// Prometheus replaces an inactive alert by the new pending one; the
		// pending alert itself is not sent.
		if h != nil && !h.firing {
			delete(s.alerts, fp)
		}
		return applied
	case alertevent.StateFiring:
		firedAt := ev.FiredAt
		if firedAt.IsZero() {
			firedAt = ev.ActiveAt
		}
		if h == nil || !h.firing || !h.firedAt.Equal(firedAt) {
			if h == nil && !s.room() {
				return alertLimit
			}
			if h == nil || !h.firing {
				s.firing++
			}
			h = &held{labels: labels, firing: true, firedAt: firedAt}
			s.alerts[fp] = h
		}
	case alertevent.StateResolved:
		if h == nil {
			// A pending alert that resolves was never sent, so nor is its
			// resolution (Prometheus drops it the same way).
			if ev.FiredAt.IsZero() {
				return applied
			}
			if !s.room() {
				return alertLimit
			}
			h = &held{labels: labels, firedAt: ev.FiredAt}
			s.alerts[fp] = h
		} else if h.firing {
			s.firing--
		}
		h.firing, h.sentResolve = false, false
		h.resolvedAt = ev.ResolvedAt
		if h.resolvedAt.Before(h.firedAt) {
			h.resolvedAt = h.firedAt // Alertmanager refuses endsAt before startsAt
		}
	}
	h.eval = ev.EvalInterval
	h.annotations = annotations(ev)
	return applied
}

// room makes space for a new alert, evicting the resolved alert resolved
// longest ago if the set is full; it reports whether there is space.
func (s *alertSet) room() bool {
	if len(s.alerts) < s.max {
		return true
	}
	var oldest string
	var at time.Time
	for fp, h := range s.alerts {
		if !h.firing && (oldest == "" || h.resolvedAt.Before(at)) {
			oldest, at = fp, h.resolvedAt
		}
	}
	if oldest == "" {
		return false
	}
	delete(s.alerts, oldest)
	return true
}

// due appends to dst the alerts to send at now and marks them sent; it
// forgets resolved alerts past retention, once their resolution was sent.
func (s *alertSet) due(now time.Time, dst []postableAlert) []postableAlert {
	for fp, h := range s.alerts {
		// A resolution is sent at least once, however short the retention
		// (0 included): else Alertmanager resolves only when endsAt passes.
		if !h.firing && h.sentResolve && now.Sub(h.resolvedAt) > s.retention {
			delete(s.alerts, fp)
			continue
		}
		if h.firing || h.sentResolve {
			if !h.lastSent.IsZero() && now.Before(h.lastSent.Add(s.resendDelay)) {
				continue
			}
		}
		a := postableAlert{Labels: h.labels, Annotations: h.annotations, StartsAt: h.firedAt, GeneratorURL: s.generatorURL}
		if h.firing {
			// Valid for two missed resends (or evaluations) and then some,
			// so a live alert never flaps in Alertmanager, while one whose
			// agent is gone resolves by itself.
			a.EndsAt = now.Add(4 * max(s.resendDelay, h.eval))
		} else {
			a.EndsAt = h.resolvedAt
			h.sentResolve = true
		}
		h.lastSent = now
		dst = append(dst, a)
	}
	return dst
}

// next returns when due has something to do after now: a resend, a first
// send, or a resolved alert to forget. It is zero when the set is empty.
func (s *alertSet) next(now time.Time) time.Time {
	var t time.Time
	earlier := func(c time.Time) {
		if t.IsZero() || c.Before(t) {
			t = c
		}
	}
	for _, h := range s.alerts {
		switch {
		case h.lastSent.IsZero() || (!h.firing && !h.sentResolve):
			earlier(now)
		case h.firing:
			earlier(h.lastSent.Add(s.resendDelay))
		default:
			earlier(h.lastSent.Add(s.resendDelay))
			earlier(h.resolvedAt.Add(s.retention + time.Nanosecond))
		}
	}
	return t
}

// counts returns the firing and the resolved alerts held.
func (s *alertSet) counts() (firing, resolved int) {
	return s.firing, len(s.alerts) - s.firing
}

// labels returns the labels to send: the event's, plus external labels it
// lacks, without empty values (an empty label is no label, so an external
// label of that name applies, as in Prometheus). It refuses a label name
// Alertmanager would reject, which would fail the whole batch.
func (s *alertSet) labels(in map[string]string) (map[string]string, bool) {
	out := make(map[string]string, len(in)+len(s.external))
	for k, v := range s.external {
		out[k] = v
	}
	for k, v := range in {
		if !labelNameRe.MatchString(k) {
			return nil, false
		}
		if v == "" {
			continue
		}
		out[k] = strings.ToValidUTF8(v, "\uFFFD")
	}
	return out, out["alertname"] != ""
}

// annotations returns the event's annotations as Alertmanager accepts them
// (annotation names follow the label name rules), with the example trace.
func annotations(ev *alertevent.Event) map[string]string {
	out := make(map[string]string, len(ev.Annotations)+1)
	for k, v := range ev.Annotations {
		if v == "" {
			continue
		}
		out[sanitizeName(k)] = strings.ToValidUTF8(v, "\uFFFD")
	}
	if !ev.TraceID.IsEmpty() {
		if _, ok := out[exampleTraceAnnotation]; !ok {
			out[exampleTraceAnnotation] = ev.TraceID.String()
		}
	}
	return out
}

// sanitizeName maps a name onto [a-zA-Z_][a-zA-Z0-9_]* by replacing every
// other character with '_'.
func sanitizeName(k string) string {
	if labelNameRe.MatchString(k) {
		return k
	}
	var b strings.Builder
	for i, r := range k {
		ok := r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (i > 0 && r >= '0' && r <= '9')
		if ok && r < utf8.RuneSelf {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "_"
	}
	return b.String()
}
