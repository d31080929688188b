package statusextension

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/extension/extensiontest"

	"github.com/vigilhq/vigil/extensions/statusextension/internal/metadata"
	"github.com/vigilhq/vigil/internal/redflag"
)

var at = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

func edge(caller, callee string, calls, errs uint32, flagged, anomalous bool) redflag.EdgeState {
	e := redflag.EdgeState{Caller: caller, Callee: callee, CalleeKind: redflag.KindService, Flagged: flagged, Anomalous: anomalous, P99Ms: 40}
	e.Calls, e.Errors = calls, errs
	if calls > 0 {
		e.ErrorRatio = float64(errs) / float64(calls)
	}
	return e
}

// cascade is a snapshot of a slow catalog-db spreading up to the frontend.
func cascade() *redflag.Snapshot {
	return &redflag.Snapshot{
		At: at,
		Edges: []redflag.EdgeState{
			edge("catalog", "catalog-db", 4000, 1800, true, true),
			edge("checkout", "payments", 2000, 2, false, false),
			edge("frontend", "catalog", 6000, 2100, true, true),
			edge("frontend", "checkout", 2000, 1, false, false),
			edge("frontend", "recommendation", 3000, 900, true, true),
			edge("recommendation", "catalog", 3000, 880, true, true),
		},
		Services: []redflag.ServiceState{
			{Name: "catalog", Failing: true}, {Name: "checkout"}, {Name: "frontend", Failing: true},
			{Name: "payments"}, {Name: "recommendation", Failing: true},
		},
		Alerts: []redflag.Alert{
			{
				Labels:      map[string]string{"alertname": "DependencyTimeoutPressure", "severity": "warning", "service": "catalog", "callee": "catalog-db", "cascade_id": "213e75b79ba7"},
				Annotations: map[string]string{"summary": "catalog -> catalog-db: latency is eating the timeout budget", "timeout": "1000ms"},
				State:       "firing", ActiveAt: at.Add(-time.Minute), FiredAt: at.Add(-30 * time.Second),
			},
			{
				Labels:      map[string]string{"alertname": "CascadingFailure", "severity": "critical", "origin_service": "catalog-db", "cascade_id": "213e75b79ba7"},
				Annotations: map[string]string{"summary": "Failure starting at catalog-db is spreading to catalog, frontend, recommendation", "affected_services": "catalog,frontend,recommendation"},
				State:       "firing", ActiveAt: at.Add(-50 * time.Second), FiredAt: at.Add(-20 * time.Second),
			},
			{
				Labels: map[string]string{"alertname": "ErrorLogBurst", "severity": "warning", "service": "<script>alert(1)</script>"},
				State:  "pending", ActiveAt: at,
			},
		},
		Flags: redflag.NewFlagSet(
			[]redflag.Edge{{Caller: "catalog", Callee: "catalog-db"}, {Caller: "frontend", Callee: "catalog"}, {Caller: "frontend", Callee: "recommendation"}, {Caller: "recommendation", Callee: "catalog"}},
			[]string{"catalog", "catalog-db", "frontend", "recommendation"}, nil),
		Counters: map[string]int64{"spans_observed": 123456, "edges": 6, "edges_dropped": 0},
	}
}

type harness struct {
	s   *status
	url string
}

func start(t *testing.T, mod func(*Config)) *harness {
	t.Helper()
	cfg := createDefaultConfig().(*Config)
	cfg.NetAddr.Endpoint = "127.0.0.1:0"
	if mod != nil {
		mod(cfg)
	}
	require.NoError(t, cfg.Validate())
	ext, err := NewFactory().Create(context.Background(), extensiontest.NewNopSettings(metadata.Type), cfg)
	require.NoError(t, err)
	require.NoError(t, ext.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, ext.Shutdown(context.Background())) })
	s := ext.(*status)
	return &harness{s: s, url: "http://" + s.addr.String()}
}

func (h *harness) get(t *testing.T, path string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Get(h.url + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, string(b)
}

func TestPageShowsTheCascade(t *testing.T) {
	h := start(t, nil)
	h.s.PublishRedFlags(cascade())
	code, hdr, page := h.get(t, "/")
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, "text/html; charset=utf-8", hdr.Get("Content-Type"))
	assert.Contains(t, hdr.Get("Content-Security-Policy"), "default-src 'none'")

	// It names the origin, in the incident banner and as the red node.
	assert.Regexp(t, `class="incident firing"[^>]*data-origin="catalog-db"`, page)
	assert.Contains(t, page, `failure starting at <span class="origin">catalog-db</span>`)
	assert.Regexp(t, `<g class="node origin[^"]*" data-service="catalog-db" data-origin="true">`, page)
	assert.Regexp(t, `<g class="node failing flagged" data-service="frontend">`, page)
	// Flagged calls are marked, the healthy ones are not.
	assert.Regexp(t, `<g class="edge anomalous flagged" data-caller="catalog" data-callee="catalog-db" data-flagged="true">`, page)
	assert.Regexp(t, `<g class="edge" data-caller="checkout" data-callee="payments">`, page)
	assert.Contains(t, page, `<li data-caller="catalog" data-callee="catalog-db">catalog → catalog-db</li>`)
	// Firing alerts with their annotations, firing before pending.
	assert.Contains(t, page, "Failure starting at catalog-db is spreading to catalog, frontend, recommendation")
	assert.Contains(t, page, "<dt>timeout</dt><dd>1000ms</dd>")
	assert.Less(t, strings.Index(page, `data-alertname="CascadingFailure"`), strings.Index(page, `data-alertname="ErrorLogBurst"`))
	// Counters, and the page refreshes itself.
	assert.Regexp(t, `<span>spans_observed</span><b>123456</b>`, page)
	assert.Contains(t, page, `<meta http-equiv="refresh" content="5">`)
	// Names from telemetry are escaped, and nothing is loaded from elsewhere.
	assert.NotContains(t, page, "<script")
	assert.Contains(t, page, "&lt;script&gt;")
	assert.NotRegexp(t, `(?i)(src|href)="(https?:)?//`, page)
	assert.NotRegexp(t, `(?i)<link|@import|url\((?:'|")?http`, page)
}

func TestJSONEndpoint(t *testing.T) {
	h := start(t, nil)
	h.s.PublishRedFlags(cascade())
	code, hdr, body := h.get(t, "/api/status")
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, "application/json", hdr.Get("Content-Type"))
	var doc struct {
		At      time.Time `json:"at"`
		Origins []string  `json:"origins"`
		Alerts  []struct {
			Name        string            `json:"alertname"`
			State       string            `json:"state"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"alerts"`
		Edges []struct {
			Caller, Callee string
			Calls          uint32 `json:"calls_5m"`
			Flagged        bool   `json:"flagged"`
		} `json:"edges"`
		FlaggedEdges [][2]string      `json:"flagged_edges"`
		Detector     map[string]int64 `json:"detector_counters"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &doc))
	assert.Equal(t, at, doc.At)
	assert.Equal(t, []string{"catalog-db"}, doc.Origins)
	require.Len(t, doc.Alerts, 3)
	assert.Equal(t, "CascadingFailure", doc.Alerts[0].Name)
	assert.Equal(t, "catalog-db", doc.Alerts[0].Labels["origin_service"])
	assert.Equal(t, "catalog,frontend,recommendation", doc.Alerts[0].Annotations["affected_services"])
	assert.Len(t, doc.Edges, 6)
	assert.Len(t, doc.FlaggedEdges, 4)
	assert.Equal(t, int64(123456), doc.Detector["spans_observed"])
}

// An address no telemetry tied to a service is shown as such: the page's
// node says "unresolved address", the JSON gives the callee's kind, and a
// slow edge and cancelled calls are told apart.
func TestUnresolvedAddressAndSlowEdge(t *testing.T) {
	h := start(t, nil)
	snap := cascade()
	ip := edge("checkout", "10.1.0.7", 500, 200, true, true)
	ip.CalleeKind, ip.Slow, ip.Cancelled = redflag.KindAddress, true, 12
	snap.Edges = append(snap.Edges, ip)
	h.s.PublishRedFlags(snap)
	_, _, page := h.get(t, "/")
	assert.Regexp(t, `data-service="10\.1\.0\.7"><title>10\.1\.0\.7: [^<]*unresolved address`, page)
	assert.Contains(t, page, "12 cancelled by the caller")
	assert.Contains(t, page, "slower than normal")
	_, _, body := h.get(t, "/api/status")
	var doc statusJSON
	require.NoError(t, json.Unmarshal([]byte(body), &doc))
	found := false
	for _, e := range doc.Edges {
		if e.Callee == "10.1.0.7" {
			found = true
			assert.Equal(t, "address", e.CalleeKind)
			assert.True(t, e.Slow)
			assert.Equal(t, uint32(12), e.Cancelled5m)
		}
	}
	assert.True(t, found)
}

func TestBeforeTheFirstPublish(t *testing.T) {
	h := start(t, nil)
	assert.Nil(t, h.s.FlaggedSet())
	code, _, page := h.get(t, "/")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, page, "Waiting for the red-flag detectors")
	code, _, body := h.get(t, "/api/status")
	require.Equal(t, http.StatusOK, code)
	assert.JSONEq(t, `{"at":null,"origins":[],"alerts":[],"edges":[],"edges_omitted":0,"services":[],"flagged_edges":[],"flagged_services":[],"detector_counters":{},"sampler_counters":{}}`, body)
}

func TestOtherPathsAndMethods(t *testing.T) {
	h := start(t, nil)
	code, _, _ := h.get(t, "/favicon.ico")
	assert.Equal(t, http.StatusNotFound, code)
	resp, err := http.Post(h.url+"/", "text/plain", strings.NewReader("x"))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
}

func TestFlaggedSetIsRebuiltOnEachPublish(t *testing.T) {
	h := start(t, nil)
	h.s.PublishRedFlags(cascade())
	fs := h.s.FlaggedSet()
	assert.True(t, fs.HasEdge("catalog", "catalog-db"))
	assert.False(t, fs.HasEdge("checkout", "payments"))
	assert.True(t, fs.HasService("catalog-db"))

	calm := cascade()
	calm.Flags, calm.Alerts = nil, nil
	h.s.PublishRedFlags(calm)
	assert.True(t, h.s.FlaggedSet().Empty())
	assert.Len(t, fs.Edges(), 4, "a set handed out earlier never changes under its reader")
}

func TestEdgesDrawnAreCappedFlaggedFirst(t *testing.T) {
	h := start(t, func(c *Config) { c.MaxEdges = 10 })
	snap := cascade()
	for i := range 50 {
		snap.Edges = append(snap.Edges, edge("frontend", fmt.Sprintf("busy-%02d", i), uint32(10000+i), 0, false, false))
	}
	h.s.PublishRedFlags(snap)
	_, _, page := h.get(t, "/")
	assert.Len(t, regexp.MustCompile(`<g class="edge`).FindAllString(page, -1), 10)
	assert.Contains(t, page, "46 quieter edges not drawn")
	for _, e := range snap.Flags.Edges() {
		assert.Contains(t, page, fmt.Sprintf(`data-caller="%s" data-callee="%s" data-flagged="true"`, e.Caller, e.Callee))
	}
	assert.Contains(t, page, `data-callee="busy-49"`, "then the busiest")
	assert.NotContains(t, page, `data-callee="busy-00"`)
}

func TestSamplerCounters(t *testing.T) {
	h := start(t, nil)
	h.s.PublishRedFlags(cascade())
	h.s.PublishCounters("tail_sampling", map[string]int64{"traces_sampled": 42, "traces_dropped": 7})
	_, _, page := h.get(t, "/")
	assert.Contains(t, page, "<span>traces_sampled</span><b>42</b>")
	for i := range 40 {
		h.s.PublishCounters(fmt.Sprintf("src-%d", i), map[string]int64{"n": 1})
	}
	h.s.mu.Lock()
	assert.Len(t, h.s.sampler, maxCounterSources, "bounded")
	h.s.mu.Unlock()
}

// The connector publishes, the sampler reads and people load the page at the
// same time (run with -race).
func TestConcurrentPublishReadAndServe(t *testing.T) {
	h := start(t, nil)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			s := cascade()
			s.At = at.Add(time.Duration(i) * time.Second)
			h.s.PublishRedFlags(s)
			h.s.PublishCounters("tail_sampling", map[string]int64{"n": int64(i)})
		}
	})
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			_ = h.s.FlaggedSet().HasEdge("catalog", "catalog-db")
		}
	})
	for range 30 {
		code, _, _ := h.get(t, "/")
		require.Equal(t, http.StatusOK, code)
		code, _, _ = h.get(t, "/api/status")
		require.Equal(t, http.StatusOK, code)
	}
	close(stop)
	wg.Wait()
}

func TestShutdownWithoutStart(t *testing.T) {
	ext, err := NewFactory().Create(context.Background(), extensiontest.NewNopSettings(metadata.Type), createDefaultConfig())
	require.NoError(t, err)
	require.NoError(t, ext.Shutdown(context.Background()))
	require.NoError(t, ext.Shutdown(context.Background()))
}
