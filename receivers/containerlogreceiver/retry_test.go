package containerlogreceiver

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/vigilhq/vigil/receivers/containerlogreceiver/internal/metadata"
)

// startTel is start with the receiver's telemetry recorded.
func startTel(t *testing.T, cfg *Config, next consumer.Logs) (*logReceiver, *componenttest.Telemetry) {
	t.Helper()
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tel.Shutdown(context.Background())) })
	set := receivertest.NewNopSettings(metadata.Type)
	set.TelemetrySettings = tel.NewTelemetrySettings()
	r, err := newReceiver(set, cfg, next)
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))
	return r, tel
}

func counter(t *testing.T, tel *componenttest.Telemetry, name string) int64 {
	t.Helper()
	m, err := tel.GetMetric(name)
	if err != nil {
		return 0
	}
	var n int64
	for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
		n += dp.Value
	}
	return n
}

// Records given up on after retry_on_failure's max_elapsed_time count as
// refused once each, however many attempts were made; they are dropped,
// counted, and the receiver reads on.
func TestGivenUpRecordsAreRefusedOnce(t *testing.T) {
	root := t.TempDir()
	path := filepath.Join(podDir(t, root, "shop", "cart", "uid-1", "app"), "0.log")
	appendFile(t, path, criLine("stdout", "F", "one")+criLine("stdout", "F", "two"))
	cfg := testConfig(root)
	cfg.RetryOnFailure.MaxElapsedTime = 300 * time.Millisecond
	next := &refusing{}
	next.fails.Store(1 << 20)
	r, tel := startTel(t, cfg, next)
	defer func() { require.NoError(t, r.Shutdown(context.Background())) }()
	require.Eventually(t, func() bool { return r.tel.dropped.Load() == 2 }, 5*time.Second, 10*time.Millisecond)
	assert.GreaterOrEqual(t, r.tel.retries.Load(), int64(2), "sent again before giving up")
	require.Eventually(t, func() bool { return counter(t, tel, "otelcol_receiver_refused_log_records") == 2 }, time.Second, 10*time.Millisecond)
	assert.Zero(t, counter(t, tel, "otelcol_receiver_accepted_log_records"))

	next.fails.Store(0)
	appendFile(t, path, criLine("stdout", "F", "three"))
	got := waitBodies(t, &next.LogsSink, 1)
	assert.Equal(t, []string{"three"}, got)
	require.Eventually(t, func() bool { return counter(t, tel, "otelcol_receiver_accepted_log_records") == 1 }, time.Second, 10*time.Millisecond)
	assert.Equal(t, int64(2), counter(t, tel, "otelcol_receiver_refused_log_records"))
}

// A checkpoint the storage cannot write is counted and written at the next
// commit, though no offset moved since: the next restart resumes there.
func TestFailedCheckpointWriteIsCountedAndWrittenAgain(t *testing.T) {
	root := t.TempDir()
	path := filepath.Join(podDir(t, root, "shop", "cart", "uid-1", "app"), "0.log")
	appendFile(t, path, criLine("stdout", "F", "one")+criLine("stdout", "F", "two"))
	st := &memStorage{kv: map[string][]byte{}, failSets: 1}
	sink := &consumertest.LogsSink{}
	r := start(t, testConfig(root), sink, st)
	waitBodies(t, sink, 2)
	require.Eventually(t, func() bool {
		st.mu.Lock()
		defer st.mu.Unlock()
		return st.kv[checkpointKey] != nil
	}, 5*time.Second, 10*time.Millisecond, "the checkpoint is written again after a failed write")
	assert.Equal(t, int64(1), r.tel.checkpointErrors.Load())
	require.NoError(t, r.Shutdown(context.Background()))
	cps, err := decodeCheckpoints(st.kv[checkpointKey])
	require.NoError(t, err)
	require.Len(t, cps, 1)
	assert.Equal(t, int64(len(criLine("stdout", "F", "one")+criLine("stdout", "F", "two"))), cps[0].offset)

	sink2 := &consumertest.LogsSink{}
	r2 := start(t, testConfig(root), sink2, st)
	appendFile(t, path, criLine("stdout", "F", "three"))
	assert.Equal(t, []string{"three"}, waitBodies(t, sink2, 1))
	require.NoError(t, r2.Shutdown(context.Background()))
}
