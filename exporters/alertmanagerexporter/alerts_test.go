package alertmanagerexporter

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/vigilhq/vigil/internal/alertevent"
)

var t0 = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

func testSet(mod func(*Config)) *alertSet {
	cfg := createDefaultConfig().(*Config)
	cfg.Endpoint = "http://127.0.0.1:9093"
	if mod != nil {
		mod(cfg)
	}
	return newAlertSet(cfg)
}

func cascadeEvent(state alertevent.State, at time.Time) *alertevent.Event {
	ev := &alertevent.Event{
		State:        state,
		Labels:       map[string]string{"alertname": "CascadingFailure", "severity": "critical", "origin_service": "payments", "cascade_id": "c2ecfc05cc56"},
		Annotations:  map[string]string{"summary": "Failure starting at payments is spreading to checkout, frontend"},
		ActiveAt:     at.Add(-20 * time.Second),
		EvalInterval: 10 * time.Second,
		TraceID:      pcommon.TraceID{1, 2, 3},
	}
	switch state {
	case alertevent.StateFiring:
		ev.FiredAt = at
	case alertevent.StateResolved:
		ev.FiredAt = at.Add(-5 * time.Minute)
		ev.ResolvedAt = at
	}
	return ev
}

func TestFiringIsSentAtOnceThenEveryResendDelay(t *testing.T) {
	s := testSet(nil)
	require.Equal(t, applied, s.apply(cascadeEvent(alertevent.StateFiring, t0)))
	assert.Equal(t, t0, s.next(t0), "a first send is due at once")

	got := s.due(t0, nil)
	require.Len(t, got, 1)
	a := got[0]
	assert.Equal(t, t0, a.StartsAt, "startsAt is when it fired, as Prometheus sends")
	assert.Equal(t, t0.Add(4*time.Minute), a.EndsAt, "4 x max(10s evaluation, 1m resend)")
	assert.Equal(t, "http://127.0.0.1:8890/", a.GeneratorURL)
	assert.Equal(t, "payments", a.Labels["origin_service"])
	assert.Equal(t, "01020300000000000000000000000000", a.Annotations[exampleTraceAnnotation])

	assert.Equal(t, t0.Add(time.Minute), s.next(t0))
	assert.Empty(t, s.due(t0.Add(59*time.Second), nil), "not before resend_delay")
	got = s.due(t0.Add(time.Minute), nil)
	require.Len(t, got, 1)
	assert.Equal(t, t0, got[0].StartsAt)
	assert.Equal(t, t0.Add(5*time.Minute), got[0].EndsAt)

	// A repeated firing event (the same incident) changes annotations only.
	ev := cascadeEvent(alertevent.StateFiring, t0)
	ev.Annotations["summary"] = "now also cart"
	s.apply(ev)
	assert.Empty(t, s.due(t0.Add(90*time.Second), nil))
	got = s.due(t0.Add(2*time.Minute), nil)
	require.Len(t, got, 1)
	assert.Equal(t, "now also cart", got[0].Annotations["summary"])
	f, r := s.counts()
	assert.Equal(t, [2]int{1, 0}, [2]int{f, r})
}

func TestEndsAtFollowsALongerEvaluationInterval(t *testing.T) {
	s := testSet(nil)
	ev := cascadeEvent(alertevent.StateFiring, t0)
	ev.EvalInterval = 2 * time.Minute
	s.apply(ev)
	got := s.due(t0, nil)
	require.Len(t, got, 1)
	assert.Equal(t, t0.Add(8*time.Minute), got[0].EndsAt)
}

func TestPendingIsNeverSent(t *testing.T) {
	s := testSet(nil)
	s.apply(cascadeEvent(alertevent.StatePending, t0))
	assert.Empty(t, s.due(t0, nil))
	assert.True(t, s.next(t0).IsZero())

	// Pending, then resolved without firing: nothing to tell Alertmanager.
	ev := cascadeEvent(alertevent.StateResolved, t0.Add(time.Minute))
	ev.FiredAt = time.Time{}
	s.apply(ev)
	assert.Empty(t, s.due(t0.Add(time.Minute), nil))
}

func TestResolvedIsSentWithItsEndsAtUntilRetention(t *testing.T) {
	s := testSet(nil)
	s.apply(cascadeEvent(alertevent.StateFiring, t0))
	require.Len(t, s.due(t0, nil), 1)

	resolvedAt := t0.Add(20 * time.Second)
	ev := cascadeEvent(alertevent.StateResolved, resolvedAt)
	ev.FiredAt = t0
	s.apply(ev)
	f, r := s.counts()
	assert.Equal(t, [2]int{0, 1}, [2]int{f, r})

	// Sent at once, although the firing send was 25 s ago.
	now := t0.Add(25 * time.Second)
	got := s.due(now, nil)
	require.Len(t, got, 1)
	assert.Equal(t, resolvedAt, got[0].EndsAt)
	assert.Equal(t, t0, got[0].StartsAt)

	sends := 1
	for now = now.Add(time.Second); now.Before(resolvedAt.Add(20 * time.Minute)); now = now.Add(time.Second) {
		for _, a := range s.due(now, nil) {
			sends++
			assert.Equal(t, resolvedAt, a.EndsAt)
			assert.False(t, now.Sub(resolvedAt) > 15*time.Minute, "sent at %s, after retention", now.Sub(resolvedAt))
		}
	}
	assert.Equal(t, 15, sends, "at once, then every minute for 15 minutes")
	f, r = s.counts()
	assert.Equal(t, [2]int{0, 0}, [2]int{f, r}, "forgotten after retention")
}

// resolved_retention 0 sends a resolution once, then forgets it; even one
// that arrives after its retention has passed is sent.
func TestZeroRetentionStillSendsTheResolutionOnce(t *testing.T) {
	s := testSet(func(c *Config) { c.ResolvedRetention = 0 })
	s.apply(cascadeEvent(alertevent.StateFiring, t0))
	require.Len(t, s.due(t0, nil), 1)
	resolvedAt := t0.Add(20 * time.Second)
	ev := cascadeEvent(alertevent.StateResolved, resolvedAt)
	ev.FiredAt = t0
	s.apply(ev)
	got := s.due(resolvedAt.Add(time.Second), nil)
	require.Len(t, got, 1, "the resolution is sent")
	assert.Equal(t, resolvedAt, got[0].EndsAt)
	assert.Empty(t, s.due(resolvedAt.Add(2*time.Minute), nil), "and not again")
	f, r := s.counts()
	assert.Equal(t, [2]int{0, 0}, [2]int{f, r}, "forgotten once sent")
}

func TestResolvedWithoutFiringEntryStillSent(t *testing.T) {
	// The resolution of an alert that fired before this exporter saw it
	// (an exporter restarted alone) is sent; it carries firedAt.
	s := testSet(nil)
	ev := cascadeEvent(alertevent.StateResolved, t0)
	s.apply(ev)
	got := s.due(t0, nil)
	require.Len(t, got, 1)
	assert.Equal(t, ev.FiredAt, got[0].StartsAt)
	assert.Equal(t, t0, got[0].EndsAt)
}

func TestNewIncidentReplacesTheRetainedResolution(t *testing.T) {
	s := testSet(nil)
	s.apply(cascadeEvent(alertevent.StateFiring, t0))
	s.due(t0, nil)
	s.apply(cascadeEvent(alertevent.StateResolved, t0.Add(time.Minute)))
	require.Len(t, s.due(t0.Add(time.Minute), nil), 1)
	s.apply(cascadeEvent(alertevent.StatePending, t0.Add(2*time.Minute)))
	assert.Empty(t, s.due(t0.Add(3*time.Minute), nil), "the old resolution is no longer re-sent while the new one is pending")

	again := t0.Add(3*time.Minute + 10*time.Second)
	s.apply(cascadeEvent(alertevent.StateFiring, again))
	got := s.due(again, nil)
	require.Len(t, got, 1)
	assert.Equal(t, again, got[0].StartsAt)
	assert.True(t, got[0].EndsAt.After(again))
}

func TestResolvedBeforeFiredIsClamped(t *testing.T) {
	s := testSet(nil)
	ev := cascadeEvent(alertevent.StateResolved, t0)
	ev.FiredAt = t0.Add(time.Second) // clocks disagree
	s.apply(ev)
	got := s.due(t0, nil)
	require.Len(t, got, 1)
	assert.False(t, got[0].EndsAt.Before(got[0].StartsAt), "Alertmanager refuses endsAt before startsAt")
}

func TestMaxAlertsEvictsResolvedFirst(t *testing.T) {
	s := testSet(func(c *Config) { c.MaxAlerts = 2 })
	ev := func(state alertevent.State, name string, at time.Time) *alertevent.Event {
		e := cascadeEvent(state, at)
		e.Labels["origin_service"] = name
		return e
	}
	require.Equal(t, applied, s.apply(ev(alertevent.StateFiring, "a", t0)))
	require.Equal(t, applied, s.apply(ev(alertevent.StateResolved, "b", t0)))
	require.Equal(t, applied, s.apply(ev(alertevent.StateFiring, "c", t0)), "evicts the resolved b")
	assert.Equal(t, alertLimit, s.apply(ev(alertevent.StateFiring, "d", t0)), "two firing alerts: no room")
	f, r := s.counts()
	assert.Equal(t, [2]int{2, 0}, [2]int{f, r})
}

func TestLabelsSent(t *testing.T) {
	s := testSet(func(c *Config) { c.ExternalLabels = map[string]string{"cluster": "prod-eu", "severity": "none"} })
	ev := cascadeEvent(alertevent.StateFiring, t0)
	ev.Labels["empty"] = ""
	ev.Labels["cluster"] = "" // no label: the external one applies
	ev.Annotations = map[string]string{"summary": "s", "bad-name": "v", "empty": "", "bad\xffvalue": "x\xff"}
	require.Equal(t, applied, s.apply(ev))
	got := s.due(t0, nil)
	require.Len(t, got, 1)
	assert.Equal(t, map[string]string{
		"alertname": "CascadingFailure", "severity": "critical", "origin_service": "payments",
		"cascade_id": "c2ecfc05cc56", "cluster": "prod-eu",
	}, got[0].Labels, "external labels added, the alert's own win, empty ones dropped")
	assert.Equal(t, map[string]string{
		"summary": "s", "bad_name": "v", "bad_value": "x\uFFFD", exampleTraceAnnotation: "01020300000000000000000000000000",
	}, got[0].Annotations)

	bad := cascadeEvent(alertevent.StateFiring, t0)
	bad.Labels["k8s.namespace"] = "shop"
	assert.Equal(t, invalidLabels, s.apply(bad), "a label Alertmanager refuses would fail its whole batch")
}
