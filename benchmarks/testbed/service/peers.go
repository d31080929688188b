package service

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"

	"google.golang.org/grpc/resolver"

	"github.com/vigilhq/vigil/benchmarks/testbed/topo"
)

// peers holds the replica IPs of every service of the topology, as the
// orchestrator last pushed them (the Endpoints of headless Services). Safe for
// concurrent use.
type peers struct {
	mu       sync.Mutex
	ips      map[string][]string
	next     map[string]int
	watchers map[string]map[int]func([]string)
	id       int
}

func newPeers(initial map[string][]string) *peers {
	p := &peers{ips: map[string][]string{}, next: map[string]int{}, watchers: map[string]map[int]func([]string){}}
	p.set(initial)
	return p
}

// set replaces the map and tells the watchers of every service whose IPs
// changed. Watchers run with the lock held, so they see updates in order;
// they must not call back into p.
func (p *peers) set(m map[string][]string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for svc, ips := range m {
		ips = slices.Clone(ips)
		if slices.Equal(p.ips[svc], ips) {
			continue
		}
		p.ips[svc] = ips
		for _, fn := range p.watchers[svc] {
			fn(ips)
		}
	}
}

// get returns a service's IPs.
func (p *peers) get(svc string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.ips[svc])
}

// pick returns the next IP of a service, round robin.
func (p *peers) pick(svc string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ips := p.ips[svc]
	if len(ips) == 0 {
		return "", false
	}
	i := p.next[svc] % len(ips)
	p.next[svc] = i + 1
	return ips[i], true
}

// watch calls fn with the service's IPs now and on every change, until the
// returned function is called.
func (p *peers) watch(svc string, fn func([]string)) func() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.id++
	id := p.id
	if p.watchers[svc] == nil {
		p.watchers[svc] = map[int]func([]string){}
	}
	p.watchers[svc][id] = fn
	fn(slices.Clone(p.ips[svc]))
	return func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		delete(p.watchers[svc], id)
	}
}

// resolverScheme is the scheme of gRPC targets ("testbed:///accounts").
const resolverScheme = "testbed"

// resolverBuilder resolves testbed:///<service> to the service's replica
// IPs, like DNS for a headless Service: clients connect to pod IPs.
type resolverBuilder struct{ p *peers }

var _ resolver.Builder = resolverBuilder{}

// Build starts watching the target service.
func (b resolverBuilder) Build(target resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	svc := target.Endpoint()
	if svc == "" {
		return nil, fmt.Errorf("cannot resolve %q: no service name", target.URL.String())
	}
	stop := b.p.watch(svc, func(ips []string) {
		addrs := make([]resolver.Address, len(ips))
		for i, ip := range ips {
			addrs[i] = resolver.Address{Addr: net.JoinHostPort(ip, strconv.Itoa(topo.GRPCPort))}
		}
		if len(addrs) == 0 {
			cc.ReportError(fmt.Errorf("cannot resolve %s: no replicas", svc))
			return
		}
		_ = cc.UpdateState(resolver.State{Addresses: addrs})
	})
	return serviceResolver{stop: stop}, nil
}

// Scheme is "testbed".
func (resolverBuilder) Scheme() string { return resolverScheme }

type serviceResolver struct{ stop func() }

// ResolveNow does nothing: updates are pushed.
func (serviceResolver) ResolveNow(resolver.ResolveNowOptions) {}

// Close stops watching the service.
func (r serviceResolver) Close() { r.stop() }

// dialer resolves in-cluster DNS names (<svc>.<topology>.svc.cluster.local)
// to one replica IP, round robin per new connection, like a ClusterIP
// Service; other addresses are dialled as they are.
type dialer struct {
	p *peers
	d net.Dialer
}

// DialContext dials addr, an in-cluster name resolved to a replica IP first.
func (d *dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("cannot dial %s: %w", addr, err)
	}
	if svc, _, ok := topo.ServiceFromDNS(host); ok {
		ip, found := d.p.pick(svc)
		if !found {
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
		addr = net.JoinHostPort(ip, port)
	}
	return d.d.DialContext(ctx, network, addr)
}
