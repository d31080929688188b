package redflag

import (
	"net/netip"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// Kind says what a callee name is, which decides how far it can be trusted
// as a service's identity.
type Kind uint8

// Kinds of callee names, from the most to the least specific.
const (
	// KindNone: the span names no dependency at all.
	KindNone Kind = iota
	// KindService: the instrumentation named the peer service
	// (service.peer.name, peer.service).
	KindService
	// KindHost: a host name (server.address, net.peer.name, the URL's host),
	// often a Kubernetes DNS name.
	KindHost
	// KindAddress: an IP address, typically a pod IP, which says nothing
	// about the service behind it until some telemetry names it.
	KindAddress
	// KindDatabase: a database system and namespace (postgresql/orders).
	KindDatabase
	// KindQueue: a messaging destination.
	KindQueue
	// KindRPC: a gRPC service name taken from rpc.service or rpc.method
	// (ledger.v1.Rates): what is left when the call failed before a
	// connection carried it and the instrumentation set no address.
	KindRPC
)

var kindNames = [...]string{"none", "service", "host", "address", "database", "queue", "rpc"}

// String returns the kind's name.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// UnknownDependency is the callee of a client span that names no dependency
// at all: its failures count against this pseudo-dependency of the caller,
// never against the caller.
const UnknownDependency = "unknown_dependency"

// Peer collects, one attribute at a time, what a client or producer span says
// about the dependency it calls. The zero value is ready; Reset it between
// spans. It holds the attribute strings it was given (no copies).
type Peer struct {
	servicePeer, peerService, serverAddr, netPeer string
	dbSystem, dbNamespace, msgDest, url           string
	rpcService, rpcMethod                         string
}

// Reset forgets everything Set recorded.
func (p *Peer) Reset() { *p = Peer{} }

// Set records the attribute if it names the dependency and reports whether
// it did. Older and newer semantic-convention names are read side by side.
func (p *Peer) Set(key string, v pcommon.Value) bool {
	switch key {
	case "service.peer.name":
		p.servicePeer = v.Str()
	case "peer.service":
		p.peerService = v.Str()
	case "server.address":
		p.serverAddr = v.Str()
	case "net.peer.name":
		p.netPeer = v.Str()
	case "db.system.name":
		p.dbSystem = v.Str()
	case "db.system":
		if p.dbSystem == "" {
			p.dbSystem = v.Str()
		}
	case "db.namespace":
		p.dbNamespace = v.Str()
	case "db.name":
		if p.dbNamespace == "" {
			p.dbNamespace = v.Str()
		}
	case "messaging.destination.name":
		p.msgDest = v.Str()
	case "url.full", "http.url":
		p.url = v.Str()
	case "rpc.service":
		p.rpcService = v.Str()
	case "rpc.method":
		p.rpcMethod = v.Str()
	default:
		return false
	}
	return true
}

// Callee names the dependency: the first present of service.peer.name,
// peer.service, a host name in server.address (net.peer.name), the database
// (system/namespace), the messaging destination, the URL's host, an IP
// address, and the gRPC service of rpc.service or rpc.method. An address
// ranks below a database, destination or host name, which say more about
// what is called. Ports are left out: on Kubernetes one name is one service,
// and a stable name keeps alert labels and cardinality stable. A span that
// names nothing gets ("", KindNone).
func (p *Peer) Callee() (string, Kind) {
	switch {
	case p.servicePeer != "":
		return p.servicePeer, KindService
	case p.peerService != "":
		return p.peerService, KindService
	}
	addr := p.serverAddr
	if addr == "" {
		addr = p.netPeer
	}
	addr = stripPort(addr)
	isIP := addr != "" && IsAddress(addr)
	if addr != "" && !isIP {
		return addr, KindHost
	}
	switch {
	case p.dbSystem != "" && p.dbNamespace != "":
		return p.dbSystem + "/" + p.dbNamespace, KindDatabase
	case p.dbSystem != "":
		return p.dbSystem, KindDatabase
	case p.msgDest != "":
		return p.msgDest, KindQueue
	}
	if isIP {
		return addr, KindAddress
	}
	if h := URLHost(p.url); h != "" {
		if IsAddress(h) {
			return h, KindAddress
		}
		return h, KindHost
	}
	if s := p.RPCService(); s != "" {
		return s, KindRPC
	}
	return "", KindNone
}

// Database reports whether the span is a database call (db.system), and
// Messaging whether it is a broker's (messaging.destination): protocols a
// service mesh's proxies carry as TCP, without calls, codes or durations.
func (p *Peer) Database() bool  { return p.dbSystem != "" }
func (p *Peer) Messaging() bool { return p.msgDest != "" }

// URL returns the span's url.full (or http.url).
func (p *Peer) URL() string { return p.url }

// Address returns the span's server.address (or net.peer.name) without a
// port: on a server span, the name or address its caller reached it at.
func (p *Peer) Address() string {
	if p.serverAddr != "" {
		return stripPort(p.serverAddr)
	}
	return stripPort(p.netPeer)
}

// RPCService returns the gRPC service the span calls: rpc.service, or the
// part of a fully qualified rpc.method ("ledger.v1.Rates/Get") before its
// slash, as current instrumentations write it.
func (p *Peer) RPCService() string {
	if p.rpcService != "" {
		return p.rpcService
	}
	return RPCServiceOf(p.rpcMethod)
}

// RPCServiceOf returns the service part of a fully qualified gRPC method
// ("pkg.Service/Method" or "/pkg.Service/Method"), or "".
func RPCServiceOf(method string) string {
	method = strings.TrimPrefix(method, "/")
	if i := strings.IndexByte(method, '/'); i > 0 {
		return method[:i]
	}
	return ""
}

// CalleeOf names the dependency of a client or producer span from its
// attributes (see Peer.Callee).
func CalleeOf(attrs pcommon.Map) (string, Kind) {
	var p Peer
	for k, v := range attrs.All() {
		p.Set(k, v)
	}
	return p.Callee()
}

// IsAddress reports whether s is an IP address literal (v4 or v6, without
// brackets or port).
func IsAddress(s string) bool {
	if s == "" || (s[0] != ':' && (s[0] < '0' || s[0] > '9') && !strings.ContainsRune(s, ':')) {
		return false // fast path: host names start with a letter
	}
	_, err := netip.ParseAddr(s)
	return err == nil
}

// stripPort removes a trailing :port from a host (and the brackets of an
// IPv6 literal); a bare IPv6 address is left as it is.
func stripPort(h string) string {
	if h == "" {
		return h
	}
	if h[0] == '[' {
		if i := strings.IndexByte(h, ']'); i > 0 {
			return h[1:i]
		}
		return h
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 && strings.IndexByte(h, ':') == i {
		return h[:i]
	}
	return h
}

// URLHost returns the host of an absolute URL, without user info, port or
// IPv6 brackets; "" when u is not absolute.
func URLHost(u string) string {
	_, rest, ok := strings.Cut(u, "://")
	if !ok {
		return ""
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		rest = rest[i+1:]
	}
	return stripPort(rest)
}
