package alertevent

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
)

func TestRoundTrip(t *testing.T) {
	now := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	in := Event{
		State:        StateFiring,
		Labels:       map[string]string{"alertname": "CascadingFailure", "severity": "critical", "origin_service": "payments", "cascade_id": "c0ffee"},
		Annotations:  map[string]string{"summary": "payments failing, spreading to checkout, frontend"},
		ActiveAt:     now.Add(-time.Minute),
		FiredAt:      now,
		EvalInterval: 10 * time.Second,
		TraceID:      pcommon.TraceID{1, 2, 3},
	}
	ld := plog.NewLogs()
	in.AppendTo(ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty(), now)
	lr := ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0)
	require.Equal(t, plog.SeverityNumberError, lr.SeverityNumber())
	require.Contains(t, lr.Body().Str(), "CascadingFailure firing")
	require.Contains(t, lr.Body().Str(), "origin_service=payments")

	out, err := FromRecord(lr)
	require.NoError(t, err)
	require.Equal(t, in, out)
	require.Equal(t, in.Fingerprint(), out.Fingerprint())
}

func TestFromRecordErrors(t *testing.T) {
	lr := plog.NewLogRecord()
	lr.Body().SetStr("just a log line")
	_, err := FromRecord(lr)
	require.ErrorIs(t, err, ErrNotAlert)

	lr.SetEventName(EventName)
	_, err = FromRecord(lr)
	require.ErrorContains(t, err, AttrState)

	lr.Attributes().PutStr(AttrState, "exploding")
	_, err = FromRecord(lr)
	require.ErrorContains(t, err, `unknown state "exploding"`)

	lr.Attributes().PutStr(AttrState, "firing")
	_, err = FromRecord(lr)
	require.ErrorContains(t, err, AttrLabels)

	lr.Attributes().PutEmptyMap(AttrLabels).PutStr("severity", "warning")
	_, err = FromRecord(lr)
	require.ErrorContains(t, err, "no alertname")

	lr.Attributes().PutEmptyMap(AttrLabels).PutStr("alertname", "X")
	_, err = FromRecord(lr)
	require.ErrorContains(t, err, AttrActiveAt)
}

func FuzzFromRecord(f *testing.F) {
	f.Add("firing", "CascadingFailure", int64(1), int64(0), "k", "v")
	f.Add("resolved", "", int64(-5), int64(7), "", "")
	f.Add("pending", "X", int64(0), int64(1<<62), "alertname", "Y")
	f.Fuzz(func(t *testing.T, state, name string, active, fired int64, k, v string) {
		lr := plog.NewLogRecord()
		lr.SetEventName(EventName)
		a := lr.Attributes()
		a.PutStr(AttrState, state)
		m := a.PutEmptyMap(AttrLabels)
		m.PutStr("alertname", name)
		m.PutStr(k, v)
		a.PutInt(AttrActiveAt, active)
		a.PutInt(AttrFiredAt, fired)
		e, err := FromRecord(lr)
		if err != nil {
			return
		}
		if e.Name() == "" || e.ActiveAt.IsZero() {
			t.Fatalf("accepted an event without name or active time: %+v", e)
		}
	})
}
