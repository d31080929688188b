package redflag

import (
	"cmp"
	"maps"
	"slices"

	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Edge is a caller -> callee pair, both resolved names.
type Edge struct{ Caller, Callee string }

// FlagSet is what active red-flag alerts point at: caller -> callee edges of
// symptom alerts and incidents, and the services named as origins or
// affected, with the names that resolve callees. The tail sampler's red_flag
// policy keeps every trace that touches it. Immutable once built; safe for
// concurrent use.
type FlagSet struct {
	edges    map[Edge]struct{}
	services map[string]struct{}
	names    *Names
	// parts are the sets a Union holds (each resolves with its own names).
	parts []*FlagSet
}

// NewFlagSet builds a flagged set; names resolves the callees of spans as
// the connector resolved them (nil: names are taken as they are).
func NewFlagSet(edges []Edge, services []string, names *Names) *FlagSet {
	fs := &FlagSet{edges: make(map[Edge]struct{}, len(edges)), services: make(map[string]struct{}, len(services)), names: names}
	for _, e := range edges {
		fs.edges[e] = struct{}{}
	}
	for _, s := range services {
		fs.services[s] = struct{}{}
	}
	return fs
}

// Empty reports whether nothing is flagged (true for a nil set).
func (fs *FlagSet) Empty() bool {
	if fs == nil {
		return true
	}
	for _, p := range fs.parts {
		if !p.Empty() {
			return false
		}
	}
	return len(fs.edges) == 0 && len(fs.services) == 0
}

// HasService reports whether a service is flagged.
func (fs *FlagSet) HasService(s string) bool {
	if fs == nil {
		return false
	}
	for _, p := range fs.parts {
		if p.HasService(s) {
			return true
		}
	}
	_, ok := fs.services[s]
	return ok
}

// HasEdge reports whether the caller -> callee edge (resolved names) is flagged.
func (fs *FlagSet) HasEdge(caller, callee string) bool {
	if fs == nil {
		return false
	}
	for _, p := range fs.parts {
		if p.HasEdge(caller, callee) {
			return true
		}
	}
	_, ok := fs.edges[Edge{caller, callee}]
	return ok
}

// Match reports whether a span of service (its resource's service.name)
// touches the flagged set: the service is flagged, or the span is a client
// or producer call across a flagged edge or into a flagged service, its
// callee named and resolved exactly as the connector does it.
func (fs *FlagSet) Match(service string, sp ptrace.Span) bool {
	if fs.Empty() {
		return false
	}
	if fs.HasService(service) {
		return true
	}
	if k := sp.Kind(); k != ptrace.SpanKindClient && k != ptrace.SpanKindProducer {
		return false
	}
	name, kind := CalleeOf(sp.Attributes())
	if kind == KindNone {
		name = UnknownDependency
	}
	return fs.matchCallee(service, name)
}

func (fs *FlagSet) matchCallee(service, name string) bool {
	for _, p := range fs.parts {
		if p.matchCallee(service, name) {
			return true
		}
	}
	if len(fs.edges) == 0 && len(fs.services) == 0 {
		return false
	}
	callee := Resolve(fs.names, name)
	if _, ok := fs.edges[Edge{service, callee}]; ok {
		return true
	}
	_, ok := fs.services[callee]
	return ok
}

// Edges returns the flagged edges sorted by caller, then callee.
func (fs *FlagSet) Edges() []Edge {
	if fs == nil {
		return nil
	}
	set := maps.Clone(fs.edges)
	for _, p := range fs.parts {
		for _, e := range p.Edges() {
			if set == nil {
				set = map[Edge]struct{}{}
			}
			set[e] = struct{}{}
		}
	}
	out := slices.Collect(maps.Keys(set))
	slices.SortFunc(out, func(a, b Edge) int { return cmp.Or(cmp.Compare(a.Caller, b.Caller), cmp.Compare(a.Callee, b.Callee)) })
	return out
}

// Services returns the flagged services, sorted.
func (fs *FlagSet) Services() []string {
	if fs == nil {
		return nil
	}
	set := maps.Clone(fs.services)
	for _, p := range fs.parts {
		for _, s := range p.Services() {
			if set == nil {
				set = map[string]struct{}{}
			}
			set[s] = struct{}{}
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// Union merges flagged sets from several connectors (nil entries skipped): a
// span matches the union when it matches any of them, each resolving names
// with its own directory.
func Union(sets ...*FlagSet) *FlagSet {
	var live []*FlagSet
	for _, s := range sets {
		if s != nil {
			live = append(live, s)
		}
	}
	switch len(live) {
	case 0:
		return nil
	case 1:
		return live[0]
	}
	return &FlagSet{parts: live}
}
