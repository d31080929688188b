package statusextension

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/vigilhq/vigil/internal/redflag"
)

// Graph geometry, in SVG user units.
const (
	colWidth  = 200
	rowHeight = 54
	nodeW     = 150
	nodeH     = 30
	margin    = 24
)

// view is what the page and the JSON show of one snapshot. It is built once
// per snapshot, on the first request that needs it, and then only read.
type view struct {
	At       time.Time
	Waiting  bool
	Refresh  int
	Origins  []string
	Incident []incidentView
	Graph    graphView
	Alerts   []alertView
	Edges    []edgeView
	Omitted  int
	Services []serviceView
	Flagged  [][2]string
	FlagSvc  []string
	Detector []counterView
	Sampler  []counterGroup
}

type incidentView struct {
	Name, State, Origin, CascadeID, Summary string
	Affected                                []string
	Since                                   time.Time
}

type graphView struct {
	Width, Height int
	Nodes         []nodeView
	Edges         []pathView
}

type nodeView struct {
	Name           string
	X, Y, TX, TY   int
	W, H           int
	Class, Title   string
	Origin, Failed bool
	// Unresolved: the node is an address (or gRPC service name) no
	// telemetry has tied to a service yet.
	Unresolved bool
}

type pathView struct {
	Caller, Callee string
	D              string
	Class, Title   string
	Flagged        bool
}

type alertView struct {
	Name, State, Severity string
	Labels, Annotations   []kv
	Since                 time.Time
	Summary, Description  string
}

type kv struct{ K, V string }

type edgeView struct {
	Caller string `json:"caller"`
	Callee string `json:"callee"`
	// CalleeKind is what the callee name is: service, host, address,
	// database, queue, rpc or none; an "address" is one no telemetry has tied
	// to a service yet, shown as an unresolved address.
	CalleeKind  string  `json:"callee_kind"`
	Calls5m     uint32  `json:"calls_5m"`
	Errors5m    uint32  `json:"errors_5m"`
	Cancelled5m uint32  `json:"cancelled_5m"`
	ErrorRatio  float64 `json:"error_ratio"`
	P50Ms       float64 `json:"p50_ms"`
	P99Ms       float64 `json:"p99_ms"`
	TimeoutMs   float64 `json:"timeout_ms,omitempty"`
	RetryRatio  float64 `json:"retry_ratio"`
	Anomalous   bool    `json:"anomalous"`
	Slow        bool    `json:"slow"`
	Flagged     bool    `json:"flagged"`
}

type serviceView struct {
	Name       string  `json:"name"`
	ErrorRatio float64 `json:"error_ratio"`
	P99Ms      float64 `json:"p99_ms"`
	Failing    bool    `json:"failing"`
	Slow       bool    `json:"slow"`
	Origin     bool    `json:"origin"`
	Flagged    bool    `json:"flagged"`
}

type counterView struct {
	Name  string
	Value int64
}

type counterGroup struct {
	Source   string
	Counters []counterView
}

// incidentAlerts name where a failure started, in an origin_service label.
var incidentAlerts = map[string]bool{"CascadingFailure": true, "IsolatedFailure": true}

// buildView lays out a snapshot (nil: nothing published yet) with at most
// maxEdges edges.
func buildView(snap *redflag.Snapshot, sampler map[string]map[string]int64, maxEdges int, refresh time.Duration) *view {
	v := &view{Refresh: max(1, int(refresh/time.Second))}
	for _, src := range slices.Sorted(maps.Keys(sampler)) {
		v.Sampler = append(v.Sampler, counterGroup{Source: src, Counters: counters(sampler[src])})
	}
	if snap == nil {
		v.Waiting = true
		return v
	}
	v.At = snap.At
	v.Detector = counters(snap.Counters)
	for _, e := range snap.Flags.Edges() {
		v.Flagged = append(v.Flagged, [2]string{e.Caller, e.Callee})
	}
	v.FlagSvc = snap.Flags.Services()
	flaggedSvc := map[string]bool{}
	for _, s := range v.FlagSvc {
		flaggedSvc[s] = true
	}

	origins := map[string]bool{}
	for i := range snap.Alerts {
		a := &snap.Alerts[i]
		if incidentAlerts[a.Name()] && a.Labels["origin_service"] != "" {
			origins[a.Labels["origin_service"]] = true
			inc := incidentView{
				Name: a.Name(), State: string(a.State), Origin: a.Labels["origin_service"],
				CascadeID: a.Labels["cascade_id"], Summary: a.Annotations["summary"], Since: a.ActiveAt,
			}
			for _, s := range strings.Split(a.Annotations["affected_services"], ",") {
				if s = strings.TrimSpace(s); s != "" {
					inc.Affected = append(inc.Affected, s)
				}
			}
			v.Incident = append(v.Incident, inc)
		}
		v.Alerts = append(v.Alerts, newAlertView(a))
	}
	failing := map[string]bool{}
	for i := range snap.Services {
		s := &snap.Services[i]
		if s.Origin {
			origins[s.Name] = true
		}
		if s.Failing {
			failing[s.Name] = true
		}
	}
	v.Origins = slices.Sorted(maps.Keys(origins))
	// Firing before pending, critical first, then by name.
	sevRank := map[string]int{"critical": 0, "warning": 1, "info": 2}
	slices.SortStableFunc(v.Alerts, func(a, b alertView) int {
		return cmp.Or(cmp.Compare(stateRank(a.State), stateRank(b.State)),
			cmp.Compare(rankOr(sevRank, a.Severity), rankOr(sevRank, b.Severity)), cmp.Compare(a.Name, b.Name))
	})
	slices.SortStableFunc(v.Incident, func(a, b incidentView) int {
		return cmp.Or(cmp.Compare(stateRank(a.State), stateRank(b.State)), cmp.Compare(a.Origin, b.Origin))
	})

	// The edges drawn: flagged first, then anomalous, then the busiest.
	flaggedEdge := map[[2]string]bool{}
	for _, e := range v.Flagged {
		flaggedEdge[e] = true
	}
	idx := make([]int, len(snap.Edges))
	for i := range idx {
		idx[i] = i
	}
	isFlagged := func(e *redflag.EdgeState) bool {
		return e.Flagged || flaggedEdge[[2]string{e.Caller, e.Callee}]
	}
	slices.SortFunc(idx, func(i, j int) int {
		a, b := &snap.Edges[i], &snap.Edges[j]
		return cmp.Or(-cmp.Compare(btoi(isFlagged(a)), btoi(isFlagged(b))), -cmp.Compare(btoi(a.Anomalous), btoi(b.Anomalous)),
			-cmp.Compare(a.Calls, b.Calls), cmp.Compare(a.Caller, b.Caller), cmp.Compare(a.Callee, b.Callee))
	})
	if len(idx) > maxEdges {
		v.Omitted = len(idx) - maxEdges
		idx = idx[:maxEdges]
	}
	nodes := map[string]bool{}
	unresolved := map[string]string{}
	pairs := make([][2]string, 0, len(idx))
	for _, i := range idx {
		e := &snap.Edges[i]
		nodes[e.Caller], nodes[e.Callee] = true, true
		if e.CalleeKind == redflag.KindAddress || e.CalleeKind == redflag.KindRPC {
			unresolved[e.Callee] = "unresolved " + e.CalleeKind.String()
		}
		pairs = append(pairs, [2]string{e.Caller, e.Callee})
		v.Edges = append(v.Edges, edgeView{
			Caller: e.Caller, Callee: e.Callee, CalleeKind: e.CalleeKind.String(), Calls5m: e.Calls, Errors5m: e.Errors, Cancelled5m: e.Cancelled,
			ErrorRatio: e.ErrorRatio, P50Ms: e.P50Ms, P99Ms: e.P99Ms, TimeoutMs: e.TimeoutMs, RetryRatio: e.RetryRatio,
			Anomalous: e.Anomalous, Slow: e.Slow, Flagged: isFlagged(e),
		})
	}
	for o := range origins {
		nodes[o] = true
	}
	slices.SortFunc(v.Edges, func(a, b edgeView) int {
		return cmp.Or(cmp.Compare(a.Caller, b.Caller), cmp.Compare(a.Callee, b.Callee))
	})
	for i := range snap.Services {
		s := &snap.Services[i]
		if nodes[s.Name] || s.Failing || s.Origin {
			v.Services = append(v.Services, serviceView{Name: s.Name, ErrorRatio: s.ErrorRatio, P99Ms: s.P99Ms, Failing: s.Failing, Slow: s.Slow,
				Origin: origins[s.Name], Flagged: flaggedSvc[s.Name]})
		}
		if len(v.Services) >= 4*maxEdges {
			break
		}
	}

	names := slices.Sorted(maps.Keys(nodes))
	pos, cols, rows := layout(names, pairs)
	g := &v.Graph
	g.Width = 2*margin + max(cols, 1)*colWidth - (colWidth - nodeW)
	g.Height = 2*margin + max(rows, 1)*rowHeight + 40 // room below for back edges
	for _, n := range names {
		c := pos[n]
		x, y := margin+c.col*colWidth, margin+c.row*rowHeight
		classes := []string{"node"}
		var notes []string
		if origins[n] {
			classes = append(classes, "origin")
			notes = append(notes, "origin of an incident")
		}
		if failing[n] {
			classes = append(classes, "failing")
			notes = append(notes, "failing")
		}
		if flaggedSvc[n] {
			classes = append(classes, "flagged")
			notes = append(notes, "flagged")
		}
		if u := unresolved[n]; u != "" {
			classes = append(classes, "unresolved")
			notes = append(notes, u)
		}
		title := n
		if len(notes) > 0 {
			title += ": " + strings.Join(notes, ", ")
		}
		g.Nodes = append(g.Nodes, nodeView{
			Name: n, X: x, Y: y, W: nodeW, H: nodeH, TX: x + nodeW/2, TY: y + nodeH/2 + 5,
			Class: strings.Join(classes, " "), Title: title, Origin: origins[n], Failed: failing[n], Unresolved: unresolved[n] != "",
		})
	}
	for _, e := range v.Edges {
		a, b := pos[e.Caller], pos[e.Callee]
		classes := []string{"edge"}
		if e.Anomalous {
			classes = append(classes, "anomalous")
		}
		if e.Slow {
			classes = append(classes, "slow")
		}
		if e.Flagged {
			classes = append(classes, "flagged")
		}
		title := fmt.Sprintf("%s → %s: %d calls in 5 min, %.1f%% errors, p50 %.0f ms, p99 %.0f ms", e.Caller, e.Callee, e.Calls5m, 100*e.ErrorRatio, e.P50Ms, e.P99Ms)
		if e.Cancelled5m > 0 {
			title += fmt.Sprintf(", %d cancelled by the caller", e.Cancelled5m)
		}
		if e.Slow {
			title += ", slower than normal"
		}
		if e.TimeoutMs > 0 {
			title += fmt.Sprintf(", timeout %.0f ms", e.TimeoutMs)
		}
		g.Edges = append(g.Edges, pathView{
			Caller: e.Caller, Callee: e.Callee, D: edgePath(a, b), Class: strings.Join(classes, " "), Title: title, Flagged: e.Flagged,
		})
	}
	// Flagged edges last, so they are drawn on top.
	slices.SortStableFunc(g.Edges, func(a, b pathView) int { return cmp.Compare(btoi(a.Flagged), btoi(b.Flagged)) })
	return v
}

// edgePath is an SVG path from the caller's box to the callee's: a curve from
// right side to left side when the callee is further right, else a loop
// below the boxes.
func edgePath(a, b cell) string {
	ax, ay := margin+a.col*colWidth, margin+a.row*rowHeight
	bx, by := margin+b.col*colWidth, margin+b.row*rowHeight
	if b.col > a.col {
		x1, y1 := ax+nodeW, ay+nodeH/2
		x2, y2 := bx-6, by+nodeH/2
		dx := (x2 - x1) / 2
		return fmt.Sprintf("M%d %d C%d %d %d %d %d %d", x1, y1, x1+dx, y1, x2-dx, y2, x2, y2)
	}
	x1, y1 := ax+nodeW/2, ay+nodeH
	x2, y2 := bx+nodeW/2, by+nodeH+6
	drop := max(y1, y2) + 30
	return fmt.Sprintf("M%d %d C%d %d %d %d %d %d", x1, y1, x1, drop, x2, drop, x2, y2)
}

func newAlertView(a *redflag.Alert) alertView {
	v := alertView{
		Name: a.Name(), State: a.State, Severity: a.Labels["severity"], Since: a.ActiveAt,
		Summary: a.Annotations["summary"], Description: a.Annotations["description"],
	}
	if !a.FiredAt.IsZero() {
		v.Since = a.FiredAt
	}
	for _, k := range slices.Sorted(maps.Keys(a.Labels)) {
		if k != "alertname" && k != "severity" {
			v.Labels = append(v.Labels, kv{k, a.Labels[k]})
		}
	}
	for _, k := range slices.Sorted(maps.Keys(a.Annotations)) {
		if k != "summary" && k != "description" {
			v.Annotations = append(v.Annotations, kv{k, a.Annotations[k]})
		}
	}
	return v
}

func counters(m map[string]int64) []counterView {
	out := make([]counterView, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, counterView{k, m[k]})
	}
	return out
}

func stateRank(s string) int {
	if s == "firing" {
		return 0
	}
	return 1
}

func rankOr(m map[string]int, k string) int {
	if r, ok := m[k]; ok {
		return r
	}
	return len(m)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
