package statusextension

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"maps"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/vigilhq/vigil/extensions/statusextension/internal/metadata"
	"github.com/vigilhq/vigil/internal/redflag"
)

//go:embed page.html
var pageHTML string

var pageTmpl = template.Must(template.New("page").Funcs(template.FuncMap{
	"pct": func(r float64) string { return fmt.Sprintf("%.1f", 100*r) },
}).Parse(pageHTML))

// Bounds on what the sampler (or any component) may publish as counters.
const (
	maxCounterSources = 16
	maxCounters       = 64
)

// status is the vigil_status extension. The redflag connector calls
// PublishRedFlags after every evaluation; the tail sampler reads FlaggedSet on
// its hot path; HTTP requests render the latest snapshot. All three run
// concurrently: a snapshot and its flagged set are immutable once stored,
// and are swapped atomically.
type status struct {
	cfg *Config
	set extension.Settings
	tel *metadata.TelemetryBuilder

	cur atomic.Pointer[published]

	mu      sync.Mutex
	sampler map[string]map[string]int64 // replaced, never mutated, under mu

	lifecycle sync.Mutex
	server    *http.Server
	addr      net.Addr
	done      chan struct{}

	pathRoot, pathAPI, pathOther attribute.KeyValue
}

// published is one snapshot with its view, built on first use.
type published struct {
	snap    *redflag.Snapshot
	sampler map[string]map[string]int64
	once    sync.Once
	view    *view
}

var (
	_ extension.Extension = (*status)(nil)
	_ redflag.Publisher   = (*status)(nil)
	_ redflag.FlagSource  = (*status)(nil)
)

func newStatus(set extension.Settings, cfg *Config) (*status, error) {
	tel, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	s := &status{
		cfg: cfg, set: set, tel: tel,
		pathRoot: attribute.String("path", "/"), pathAPI: attribute.String("path", "/api/status"), pathOther: attribute.String("path", "other"),
	}
	s.cur.Store(&published{})
	return s, nil
}

// PublishRedFlags stores the connector's state after an evaluation. It takes
// ownership of snap, which must not change afterwards.
func (s *status) PublishRedFlags(snap *redflag.Snapshot) {
	if snap == nil {
		return
	}
	s.mu.Lock()
	sampler := s.sampler
	s.mu.Unlock()
	s.cur.Store(&published{snap: snap, sampler: sampler})
	s.tel.ExtensionVigilStatusPublishes.Add(context.Background(), 1)
}

// FlaggedSet returns the flagged set of the last evaluation, for the tail
// sampler's red_flag policy: nil before the first publish. It is shared by
// every caller and never changes.
func (s *status) FlaggedSet() *redflag.FlagSet {
	if p := s.cur.Load(); p != nil && p.snap != nil {
		return p.snap.Flags
	}
	return nil
}

// PublishCounters shows a component's counters (for the tail sampler: traces
// kept, dropped, evicted, decided late, ...) on the status page, under
// source. counters is copied. At most 16 sources and 64 counters each are
// kept; more are ignored.
func (s *status) PublishCounters(source string, counters map[string]int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, known := s.sampler[source]; !known && len(s.sampler) >= maxCounterSources {
		return
	}
	c := make(map[string]int64, min(len(counters), maxCounters))
	for k, v := range counters {
		if len(c) == maxCounters {
			break
		}
		c[k] = v
	}
	next := maps.Clone(s.sampler)
	if next == nil {
		next = map[string]map[string]int64{}
	}
	next[source] = c
	s.sampler = next
	// Show them at once, not only after the next evaluation.
	if p := s.cur.Load(); p != nil {
		s.cur.Store(&published{snap: p.snap, sampler: next})
	}
}

func (p *published) get(cfg *Config) *view {
	p.once.Do(func() { p.view = buildView(p.snap, p.sampler, cfg.MaxEdges, cfg.Refresh) })
	return p.view
}

// Start serves the page on the configured endpoint.
func (s *status) Start(ctx context.Context, host component.Host) error {
	s.lifecycle.Lock()
	defer s.lifecycle.Unlock()
	if s.server != nil {
		return nil
	}
	ln, err := s.cfg.ServerConfig.ToListener(ctx)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", s.cfg.NetAddr.Endpoint, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", s.serve)
	srv, err := s.cfg.ServerConfig.ToServer(ctx, host.GetExtensions(), s.set.TelemetrySettings, mux)
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("cannot create the status page server: %w", err)
	}
	s.server, s.addr, s.done = srv, ln.Addr(), make(chan struct{})
	s.set.Logger.Info("Status page listening", zap.String("url", "http://"+ln.Addr().String()+"/"))
	go func() {
		defer close(s.done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			componentstatus.ReportStatus(host, componentstatus.NewFatalErrorEvent(err))
		}
	}()
	return nil
}

// Shutdown stops the server, letting requests in flight finish until ctx
// ends. It is safe without Start and safe to call twice.
func (s *status) Shutdown(ctx context.Context) error {
	s.lifecycle.Lock()
	srv, done := s.server, s.done
	s.server = nil
	s.lifecycle.Unlock()
	if srv == nil {
		return nil
	}
	err := srv.Shutdown(ctx)
	<-done
	return err
}

func (s *status) serve(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	path := s.pathOther
	code := http.StatusOK
	defer func() {
		ctx := context.Background()
		s.tel.ExtensionVigilStatusRequests.Add(ctx, 1, metric.WithAttributes(path, attribute.Int("code", code)))
		if code == http.StatusOK {
			s.tel.ExtensionVigilStatusRenderDuration.Record(ctx, time.Since(start).Seconds())
		}
	}()
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	// Plain HTML and inline SVG and CSS: nothing else may load or run.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	switch r.URL.Path {
	case "/":
		path = s.pathRoot
	case "/api/status":
		path = s.pathAPI
	default:
		code = http.StatusNotFound
		http.Error(w, "not found: the status page is / and its JSON /api/status", code)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		code = http.StatusMethodNotAllowed
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", code)
		return
	}
	v := s.cur.Load().get(s.cfg)
	var buf bytes.Buffer
	if path == s.pathAPI {
		h.Set("Content-Type", "application/json")
		enc := json.NewEncoder(&buf)
		enc.SetIndent("", "  ")
		if err := enc.Encode(toJSON(v)); err != nil {
			code = http.StatusInternalServerError
			http.Error(w, "cannot encode status", code)
			return
		}
	} else {
		h.Set("Content-Type", "text/html; charset=utf-8")
		if err := pageTmpl.Execute(&buf, v); err != nil {
			code = http.StatusInternalServerError
			s.set.Logger.Error("cannot render the status page", zap.Error(err))
			http.Error(w, "cannot render the status page", code)
			return
		}
	}
	_, _ = w.Write(buf.Bytes())
}

// statusJSON is the /api/status document.
type statusJSON struct {
	At              *time.Time                  `json:"at"`
	Origins         []string                    `json:"origins"`
	Alerts          []alertJSON                 `json:"alerts"`
	Edges           []edgeView                  `json:"edges"`
	EdgesOmitted    int                         `json:"edges_omitted"`
	Services        []serviceView               `json:"services"`
	FlaggedEdges    [][2]string                 `json:"flagged_edges"`
	FlaggedServices []string                    `json:"flagged_services"`
	Detector        map[string]int64            `json:"detector_counters"`
	Sampler         map[string]map[string]int64 `json:"sampler_counters"`
}

type alertJSON struct {
	Name        string            `json:"alertname"`
	State       string            `json:"state"`
	Severity    string            `json:"severity"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	Since       time.Time         `json:"since"`
}

func toJSON(v *view) statusJSON {
	j := statusJSON{
		Origins: nonNil(v.Origins), Edges: nonNil(v.Edges), EdgesOmitted: v.Omitted, Services: nonNil(v.Services),
		FlaggedEdges: nonNil(v.Flagged), FlaggedServices: nonNil(v.FlagSvc), Alerts: []alertJSON{},
		Detector: map[string]int64{}, Sampler: map[string]map[string]int64{},
	}
	if !v.Waiting {
		at := v.At.UTC()
		j.At = &at
	}
	for _, a := range v.Alerts {
		aj := alertJSON{Name: a.Name, State: a.State, Severity: a.Severity, Since: a.Since.UTC(),
			Labels: map[string]string{}, Annotations: map[string]string{}}
		for _, l := range a.Labels {
			aj.Labels[l.K] = l.V
		}
		for _, l := range a.Annotations {
			aj.Annotations[l.K] = l.V
		}
		if a.Summary != "" {
			aj.Annotations["summary"] = a.Summary
		}
		if a.Description != "" {
			aj.Annotations["description"] = a.Description
		}
		j.Alerts = append(j.Alerts, aj)
	}
	for _, c := range v.Detector {
		j.Detector[c.Name] = c.Value
	}
	for _, g := range v.Sampler {
		m := map[string]int64{}
		for _, c := range g.Counters {
			m[c.Name] = c.Value
		}
		j.Sampler[g.Source] = m
	}
	return j
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
