package redflag

import "strings"

// Directory is what resolving a callee name consults: the aliases learned
// from telemetry (an address, host or gRPC service name that some telemetry
// tied to a service) and the services known by their own telemetry.
type Directory interface {
	// Alias returns the service a callee name stands for, if known.
	Alias(name string) (service string, ok bool)
	// IsService reports whether name is a service's own service.name.
	IsService(name string) bool
}

// Resolve maps a callee name to the service behind it where the directory
// knows it: a learned alias, the name of a known service, or the first label
// of a Kubernetes DNS name of a known service (payments.shop.svc.cluster.local,
// payments.shop.svc and payments.shop -> payments). A name with a port is
// tried without it. Anything else is returned as it is.
func Resolve(d Directory, callee string) string {
	if d == nil || callee == "" {
		return callee
	}
	if s, ok := d.Alias(callee); ok {
		return s
	}
	if d.IsService(callee) {
		return callee
	}
	if i := strings.IndexByte(callee, '.'); i > 0 {
		rest := callee[i+1:]
		if strings.HasSuffix(rest, ".svc.cluster.local") || strings.HasSuffix(rest, ".svc") || !strings.Contains(rest, ".") {
			if d.IsService(callee[:i]) {
				return callee[:i]
			}
		}
	}
	if h := stripPort(callee); h != callee && h != "" {
		return Resolve(d, h)
	}
	return callee
}

// Names is an immutable Directory: a copy of the connector's at one
// evaluation, published with the flagged set so the sampler resolves callees
// exactly as the connector did. Safe for concurrent use.
type Names struct {
	aliases  map[string]string
	services map[string]struct{}
}

// NewNames returns a Names that owns the maps given (the caller must not
// change them afterwards).
func NewNames(aliases map[string]string, services map[string]struct{}) *Names {
	return &Names{aliases: aliases, services: services}
}

// Alias implements Directory.
func (n *Names) Alias(name string) (string, bool) {
	if n == nil {
		return "", false
	}
	s, ok := n.aliases[name]
	return s, ok
}

// IsService implements Directory.
func (n *Names) IsService(name string) bool {
	if n == nil {
		return false
	}
	_, ok := n.services[name]
	return ok
}

// Len returns the number of aliases and services held.
func (n *Names) Len() (aliases, services int) {
	if n == nil {
		return 0, 0
	}
	return len(n.aliases), len(n.services)
}
