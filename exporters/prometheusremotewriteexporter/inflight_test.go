package prometheusremotewriteexporter

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/client"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/vigilhq/vigil/exporters/prometheusremotewriteexporter/internal/metadata"
)

// memStorage is a storage extension in memory, kept across the exporters a
// test starts one after the other (a restart).
type memStorage struct {
	mu sync.Mutex
	kv map[string][]byte
}

func (m *memStorage) Start(context.Context, component.Host) error { return nil }
func (m *memStorage) Shutdown(context.Context) error              { return nil }
func (m *memStorage) GetClient(context.Context, component.Kind, component.ID, string) (storage.Client, error) {
	return m, nil
}
func (m *memStorage) Get(_ context.Context, k string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.kv[k], nil
}
func (m *memStorage) Set(_ context.Context, k string, v []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.kv[k] = append([]byte(nil), v...)
	return nil
}
func (m *memStorage) Delete(_ context.Context, k string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.kv, k)
	return nil
}
func (m *memStorage) Batch(context.Context, ...*storage.Operation) error {
	return errors.New("not used")
}
func (m *memStorage) Close(context.Context) error { return nil }

type storageHost struct {
	ext map[component.ID]component.Component
}

func (h storageHost) GetExtensions() map[component.ID]component.Component { return h.ext }

// The request being sent when the agent stops is sent first after the
// restart, before newer ones, so Prometheus (which refuses a sample older
// than its series' newest) gets every sample; the queue's own copy of it,
// which the collector puts back at the end, then changes nothing.
func TestInflightRequestSentFirstAfterRestart(t *testing.T) {
	p, url := startFake(t)
	down := true
	p.fail = func(int, *prompb.WriteRequest) (int, string) {
		if down {
			return http.StatusServiceUnavailable, ""
		}
		return 0, ""
	}
	st := &memStorage{kv: map[string][]byte{}}
	id := component.MustNewID("file_storage")
	host := storageHost{ext: map[component.ID]component.Component{id: st}}
	newExp := func() *prwExporter {
		cfg := createDefaultConfig().(*Config)
		cfg.HTTP.Endpoint = url
		cfg.TargetInfo.Enabled = false
		q := cfg.SendingQueue.GetOrInsertDefault()
		q.StorageID = &id
		e, err := newExporter(cfg, exportertest.NewNopSettings(metadata.Type))
		require.NoError(t, err)
		require.NoError(t, e.start(context.Background(), host))
		return e
	}
	t0 := time.Now().Add(-time.Minute)
	older, newer := gauges(50, t0), gauges(50, t0.Add(10*time.Second))

	e := newExp()
	require.Error(t, e.push(context.Background(), older), "Prometheus is down")
	// Stopped (or killed) here: the queue keeps `older` and puts it back
	// behind `newer`.
	down = false
	e = newExp()
	require.NoError(t, e.push(context.Background(), newer))
	require.NoError(t, e.push(context.Background(), older)) // the queue's copy, last
	require.NoError(t, e.shutdown(context.Background()))

	series, samples := p.samples()
	assert.Equal(t, 50, series)
	assert.Equal(t, 200, samples, "every sample of both requests")
	assert.Empty(t, st.kv, "nothing left in flight")
}

// Two stops in a row during an outage: the second run stops while still
// re-sending what the first left, with its own current request in flight
// too. The third run sends both first, oldest first.
func TestInflightSurvivesTwoStops(t *testing.T) {
	p, url := startFake(t)
	down := true
	p.fail = func(int, *prompb.WriteRequest) (int, string) {
		if down {
			return http.StatusServiceUnavailable, ""
		}
		return 0, ""
	}
	st := &memStorage{kv: map[string][]byte{}}
	id := component.MustNewID("file_storage")
	host := storageHost{ext: map[component.ID]component.Component{id: st}}
	newExp := func() *prwExporter {
		cfg := createDefaultConfig().(*Config)
		cfg.HTTP.Endpoint = url
		cfg.TargetInfo.Enabled = false
		cfg.SendingQueue.GetOrInsertDefault().StorageID = &id
		e, err := newExporter(cfg, exportertest.NewNopSettings(metadata.Type))
		require.NoError(t, err)
		require.NoError(t, e.start(context.Background(), host))
		return e
	}
	t0 := time.Now().Add(-time.Minute)
	r1, r2, r3 := gauges(20, t0), gauges(20, t0.Add(10*time.Second)), gauges(20, t0.Add(20*time.Second))

	require.Error(t, newExp().push(context.Background(), r1)) // run 1 stops with r1 in flight
	require.Error(t, newExp().push(context.Background(), r2)) // run 2: r1 first, still down; stops
	down = false
	e := newExp() // run 3: the queue hands r3 out before its copies of r2 and r1
	for _, md := range []pmetric.Metrics{r3, r2, r1} {
		require.NoError(t, e.push(context.Background(), md))
	}
	series, samples := p.samples()
	assert.Equal(t, 20, series)
	assert.Equal(t, 120, samples, "every sample of the three requests")
	assert.Zero(t, p.refused, "nothing reached Prometheus out of order")
	assert.Empty(t, st.kv)
}

// A request re-sent from the in-flight record keeps its own
// include_metadata_keys headers (a tenant), not the next request's.
func TestInflightKeepsHeaders(t *testing.T) {
	p, url := startFake(t)
	var mu sync.Mutex
	tenants := map[string]int{}
	down := true
	p.fail = func(_ int, wr *prompb.WriteRequest) (int, string) {
		if down {
			return http.StatusServiceUnavailable, ""
		}
		return 0, ""
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		tenants[r.Header.Get("X-Scope-OrgID")]++
		mu.Unlock()
		p.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	_ = url
	st := &memStorage{kv: map[string][]byte{}}
	id := component.MustNewID("file_storage")
	host := storageHost{ext: map[component.ID]component.Component{id: st}}
	newExp := func() *prwExporter {
		cfg := createDefaultConfig().(*Config)
		cfg.HTTP.Endpoint = srv.URL + "/api/v1/write"
		cfg.TargetInfo.Enabled = false
		cfg.IncludeMetadataKeys = []string{"X-Scope-OrgID"}
		cfg.SendingQueue.GetOrInsertDefault().StorageID = &id
		e, err := newExporter(cfg, exportertest.NewNopSettings(metadata.Type))
		require.NoError(t, err)
		require.NoError(t, e.start(context.Background(), host))
		return e
	}
	tenant := func(name string) context.Context {
		return client.NewContext(context.Background(), client.Info{Metadata: client.NewMetadata(map[string][]string{"X-Scope-OrgID": {name}})})
	}
	t0 := time.Now().Add(-time.Minute)
	require.Error(t, newExp().push(tenant("team-a"), gauges(5, t0)))
	down = false
	mu.Lock()
	clear(tenants)
	mu.Unlock()
	require.NoError(t, newExp().push(tenant("team-b"), gauges(5, t0.Add(10*time.Second))))
	assert.Equal(t, map[string]int{"team-a": 1, "team-b": 1}, tenants)
}

// The in-flight record's decoder refuses what its encoder could not have
// written, without panicking.
func FuzzDecodeInflight(f *testing.F) {
	f.Add(encodeInflight([]inflightEntry{{headers: []string{"X-Scope-OrgID", "a"}, md: []byte{1, 2, 3}}, {md: []byte{4}}}))
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := decodeInflight(b)
		if err != nil {
			return
		}
		again, err := decodeInflight(encodeInflight(entries))
		if err != nil || len(again) != len(entries) {
			t.Fatalf("decoded %d entries that do not decode again: %v", len(entries), err)
		}
		for i := range again {
			if !again[i].equal(entries[i]) {
				t.Fatalf("entry %d changed in a round trip", i)
			}
		}
	})
}
