// Package alertevent is the wire form of a red-flag alert state change: one
// OTLP log record per change (pending, firing, resolved). The redflag connector
// writes these records; the alertmanager exporter and log backends read them.
//
// A record carries:
//   - EventName "vigil.alert"; TraceID set to an example trace of the condition.
//   - Attributes vigil.alert.name, vigil.alert.state, vigil.alert.labels (map),
//     vigil.alert.annotations (map), vigil.alert.active_at and, where set,
//     vigil.alert.fired_at and vigil.alert.resolved_at (Unix nanoseconds),
//     vigil.alert.evaluation_interval_ms.
//   - Severity from the severity label (critical ERROR, warning WARN, info INFO;
//     a resolution is INFO) and a one-line human body.
package alertevent

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
)

// EventName is the log record event name of an alert state change.
const EventName = "vigil.alert"

// Attribute keys.
const (
	AttrName               = "vigil.alert.name"
	AttrState              = "vigil.alert.state"
	AttrLabels             = "vigil.alert.labels"
	AttrAnnotations        = "vigil.alert.annotations"
	AttrActiveAt           = "vigil.alert.active_at"
	AttrFiredAt            = "vigil.alert.fired_at"
	AttrResolvedAt         = "vigil.alert.resolved_at"
	AttrEvaluationInterval = "vigil.alert.evaluation_interval_ms"
)

// State is an alert's state as Prometheus names it.
type State string

// The states an event reports.
const (
	StatePending  State = "pending"
	StateFiring   State = "firing"
	StateResolved State = "resolved"
)

// Event is one alert state change.
type Event struct {
	State       State
	Labels      map[string]string // includes alertname and severity
	Annotations map[string]string
	ActiveAt    time.Time // when the condition first held
	FiredAt     time.Time // zero unless it fired
	ResolvedAt  time.Time // zero unless resolved
	// EvalInterval is how often the producer evaluates its conditions.
	EvalInterval time.Duration
	TraceID      pcommon.TraceID // an example trace of the condition, may be empty
}

// Name returns the alertname label.
func (e *Event) Name() string { return e.Labels["alertname"] }

// Fingerprint identifies the alert by its sorted labels, as Alertmanager does.
func (e *Event) Fingerprint() string { return LabelsKey(e.Labels) }

// LabelsKey is the identity of a label set: its labels sorted by name, each
// written name=value and ended by a zero byte. Every component that keys
// alerts or series by their labels uses it, so they agree.
func LabelsKey(labels map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(labels[k])
		b.WriteByte(0)
	}
	return b.String()
}

// AppendTo writes e as a new log record in sl.
func (e *Event) AppendTo(sl plog.ScopeLogs, now time.Time) {
	lr := sl.LogRecords().AppendEmpty()
	lr.SetEventName(EventName)
	lr.SetTimestamp(pcommon.NewTimestampFromTime(now))
	lr.SetObservedTimestamp(pcommon.NewTimestampFromTime(now))
	if !e.TraceID.IsEmpty() {
		lr.SetTraceID(e.TraceID)
	}
	sev, text := plog.SeverityNumberInfo, "INFO"
	if e.State != StateResolved {
		switch e.Labels["severity"] {
		case "critical":
			sev, text = plog.SeverityNumberError, "ERROR"
		case "warning":
			sev, text = plog.SeverityNumberWarn, "WARN"
		}
	}
	lr.SetSeverityNumber(sev)
	lr.SetSeverityText(text)
	lr.Body().SetStr(e.summaryLine())
	a := lr.Attributes()
	a.EnsureCapacity(8)
	a.PutStr(AttrName, e.Name())
	a.PutStr(AttrState, string(e.State))
	putMap(a.PutEmptyMap(AttrLabels), e.Labels)
	putMap(a.PutEmptyMap(AttrAnnotations), e.Annotations)
	a.PutInt(AttrActiveAt, e.ActiveAt.UnixNano())
	if !e.FiredAt.IsZero() {
		a.PutInt(AttrFiredAt, e.FiredAt.UnixNano())
	}
	if !e.ResolvedAt.IsZero() {
		a.PutInt(AttrResolvedAt, e.ResolvedAt.UnixNano())
	}
	a.PutInt(AttrEvaluationInterval, e.EvalInterval.Milliseconds())
}

func (e *Event) summaryLine() string {
	var b strings.Builder
	b.WriteString(e.Name())
	b.WriteByte(' ')
	b.WriteString(string(e.State))
	for _, k := range slices.Sorted(maps.Keys(e.Labels)) {
		if k == "alertname" {
			continue
		}
		fmt.Fprintf(&b, " %s=%s", k, e.Labels[k])
	}
	if s := e.Annotations["summary"]; s != "" {
		b.WriteString(": ")
		b.WriteString(s)
	}
	return b.String()
}

func putMap(m pcommon.Map, src map[string]string) {
	m.EnsureCapacity(len(src))
	for _, k := range slices.Sorted(maps.Keys(src)) {
		m.PutStr(k, src[k])
	}
}

// ErrNotAlert reports a log record that is not an alert event.
var ErrNotAlert = errors.New("not a vigil.alert event")

// FromRecord decodes an alert event; it returns ErrNotAlert for other records
// and a descriptive error for a malformed one.
func FromRecord(lr plog.LogRecord) (Event, error) {
	var e Event
	if lr.EventName() != EventName {
		if _, ok := lr.Attributes().Get(AttrState); !ok {
			return e, ErrNotAlert
		}
	}
	a := lr.Attributes()
	st, ok := a.Get(AttrState)
	if !ok {
		return e, fmt.Errorf("alert event without %s", AttrState)
	}
	switch State(st.Str()) {
	case StatePending, StateFiring, StateResolved:
		e.State = State(st.Str())
	default:
		return e, fmt.Errorf("alert event %s: unknown state %q", AttrState, st.AsString())
	}
	lv, ok := a.Get(AttrLabels)
	if !ok || lv.Type() != pcommon.ValueTypeMap {
		return e, fmt.Errorf("alert event without a %s map", AttrLabels)
	}
	e.Labels = toStringMap(lv.Map())
	if e.Labels["alertname"] == "" {
		return e, fmt.Errorf("alert event %s has no alertname", AttrLabels)
	}
	if av, ok := a.Get(AttrAnnotations); ok && av.Type() == pcommon.ValueTypeMap {
		e.Annotations = toStringMap(av.Map())
	} else {
		e.Annotations = map[string]string{}
	}
	e.ActiveAt = timeAttr(a, AttrActiveAt)
	if e.ActiveAt.IsZero() {
		return e, fmt.Errorf("alert event without %s", AttrActiveAt)
	}
	e.FiredAt = timeAttr(a, AttrFiredAt)
	e.ResolvedAt = timeAttr(a, AttrResolvedAt)
	if e.State == StateResolved && e.ResolvedAt.IsZero() {
		e.ResolvedAt = lr.Timestamp().AsTime()
	}
	if v, ok := a.Get(AttrEvaluationInterval); ok && v.Type() == pcommon.ValueTypeInt && v.Int() > 0 {
		e.EvalInterval = time.Duration(v.Int()) * time.Millisecond
	}
	e.TraceID = lr.TraceID()
	return e, nil
}

func toStringMap(m pcommon.Map) map[string]string {
	out := make(map[string]string, m.Len())
	for k, v := range m.All() {
		out[k] = v.AsString()
	}
	return out
}

func timeAttr(a pcommon.Map, key string) time.Time {
	v, ok := a.Get(key)
	if !ok || v.Type() != pcommon.ValueTypeInt || v.Int() <= 0 {
		return time.Time{}
	}
	return time.Unix(0, v.Int()).UTC()
}
