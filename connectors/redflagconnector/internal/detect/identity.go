package detect

import (
	"maps"
	"strings"

	"github.com/vigilhq/vigil/internal/redflag"
)

// ClaimKind says how a name was tied to a service, from the strongest
// evidence to the weakest.
type ClaimKind uint8

// Kinds of claims.
const (
	// ClaimJoin: a client span calling the name had a child server span of
	// the service (the call was seen arriving).
	ClaimJoin ClaimKind = iota
	// ClaimAddress: the service's own telemetry states the name as its
	// address: k8s.pod.ip or net.host.ip on its resource, server.address or
	// network.local.address on its server spans.
	ClaimAddress
	// ClaimRPC: the service's server spans serve this gRPC service.
	ClaimRPC
	// ClaimHost: host.ip on the service's resource, which every service on a
	// node shares; it resolves only while one service claims it.
	ClaimHost
	numClaimKinds
)

// Claim says that Name (an address, host name or gRPC service name a caller
// may know the service by) is the service Service.
type Claim struct {
	Name, Service string
	Kind          ClaimKind
}

// claimant is one service claiming a name, and when it last did.
type claimant struct {
	service string
	kind    ClaimKind
	bucket  int64
}

// nameEntry holds the (at most two) services that claimed a name recently:
// two different services claiming the same name with the same kind of
// evidence within the claim window make it ambiguous (a node's host IP, a
// gRPC service many services serve) until one of them goes quiet.
type nameEntry struct{ c [2]claimant }

// claimWindow is how long a claim stays current: a pod IP reused by another
// pod after this long is that pod's.
const claimWindow = 30 // buckets: five minutes

// directory resolves callee names to services from claims. It implements
// redflag.Directory over the engine's live state.
type directory struct {
	names map[string]*nameEntry
	// resolved is the current resolution of every claimed name that
	// resolves, rebuilt when a claim changes the answer.
	resolved map[string]string
	max      int
	changed  bool // resolved changed since the last Names snapshot
	isSvc    func(string) bool
	snapshot *redflag.Names
}

func newDirectory(max int, isSvc func(string) bool) *directory {
	return &directory{names: map[string]*nameEntry{}, resolved: map[string]string{}, max: max, isSvc: isSvc}
}

// Alias implements redflag.Directory.
func (d *directory) Alias(name string) (string, bool) {
	s, ok := d.resolved[name]
	return s, ok
}

// IsService implements redflag.Directory.
func (d *directory) IsService(name string) bool { return d.isSvc(name) }

// claim records c at bucket bk and reports whether the name's resolution
// changed.
func (d *directory) claim(c Claim, bk int64) bool {
	if c.Name == "" || c.Service == "" || c.Name == c.Service {
		return false
	}
	e := d.names[c.Name]
	if e == nil {
		if len(d.names) >= d.max {
			d.evict()
		}
		e = &nameEntry{}
		d.names[strings.Clone(c.Name)] = e
	}
	switch {
	case e.c[0].service == c.Service:
		e.c[0].bucket, e.c[0].kind = bk, min(e.c[0].kind, c.Kind)
	case e.c[1].service == c.Service:
		e.c[1].bucket, e.c[1].kind = bk, min(e.c[1].kind, c.Kind)
	default:
		// Replace the stalest slot (an empty one first).
		i := 0
		if e.c[0].service != "" && (e.c[1].service == "" || e.c[1].bucket < e.c[0].bucket) {
			i = 1
		}
		e.c[i] = claimant{service: strings.Clone(c.Service), kind: c.Kind, bucket: bk}
	}
	return d.update(c.Name, e, bk)
}

// best returns the service a name resolves to at bk, or "" when nobody
// claims it or two services claim it with equal evidence.
func (e *nameEntry) best(bk int64) string {
	a, b := e.c[0], e.c[1]
	if b.service == "" {
		return a.service
	}
	if a.service == "" {
		return b.service
	}
	freshA, freshB := bk-a.bucket <= claimWindow, bk-b.bucket <= claimWindow
	switch {
	case freshA && !freshB:
		return a.service
	case freshB && !freshA:
		return b.service
	case !freshA && !freshB:
		// Both stale: the latest word stands until someone claims it again.
		if a.bucket >= b.bucket {
			return a.service
		}
		return b.service
	case a.kind < b.kind:
		return a.service
	case b.kind < a.kind:
		return b.service
	}
	return ""
}

func (d *directory) update(name string, e *nameEntry, bk int64) bool {
	s := e.best(bk)
	old, had := d.resolved[name]
	switch {
	case s == "" && had:
		delete(d.resolved, name)
	case s != "" && (!had || old != s):
		d.resolved[strings.Clone(name)] = s
	default:
		return false
	}
	d.changed = true
	return true
}

// evict forgets the name claimed least recently.
func (d *directory) evict() {
	var victim string
	oldest := int64(1<<63 - 1)
	for n, e := range d.names {
		last := max(e.c[0].bucket, e.c[1].bucket)
		if last < oldest {
			victim, oldest = n, last
		}
	}
	delete(d.names, victim)
	if _, ok := d.resolved[victim]; ok {
		delete(d.resolved, victim)
		d.changed = true
	}
}

// expire re-judges names whose claims went stale (an ambiguity may end) and
// forgets names nobody claimed for idle buckets. It reports whether any
// resolution changed.
func (d *directory) expire(bk, idle int64) bool {
	changed := false
	for n, e := range d.names {
		last := max(e.c[0].bucket, e.c[1].bucket)
		if bk-last > idle {
			delete(d.names, n)
			if _, ok := d.resolved[n]; ok {
				delete(d.resolved, n)
				d.changed, changed = true, true
			}
			continue
		}
		if e.c[1].service != "" && d.update(n, e, bk) {
			changed = true
		}
	}
	return changed
}

// names returns an immutable copy for the flagged set, rebuilt only after a
// change. services lists the known services.
func (d *directory) snapshotNames(services map[string]*service) *redflag.Names {
	if d.snapshot != nil && !d.changed {
		return d.snapshot
	}
	svc := make(map[string]struct{}, len(services))
	for s := range services {
		svc[s] = struct{}{}
	}
	d.snapshot = redflag.NewNames(maps.Clone(d.resolved), svc)
	d.changed = false
	return d.snapshot
}
