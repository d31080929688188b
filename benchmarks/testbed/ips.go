package testbed

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"

	"github.com/vigilhq/vigil/benchmarks/testbed/topo"
)

// ipPool hands out "pod IPs" 127.0.0.N. It is package state on purpose: two
// runs (or tests) in one process must never get the same address; across
// processes, an address is only taken if every port a replica uses is free
// on it.
type ipPool struct {
	mu   sync.Mutex
	used map[int]bool
	next int
}

var podIPs = &ipPool{used: map[int]bool{}, next: 10 + rand.IntN(180)}

// replicaPorts are the ports a replica (or a database proxy) binds on its IP.
var replicaPorts = []int{topo.GRPCPort, topo.GRPCServicePort, topo.HTTPPort, topo.HTTPServicePort, topo.AdminPort, topo.DBPort}

// take returns a free address: never 127.0.0.1 (shared with everything
// else) nor pgIP.
func (p *ipPool) take() (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for range 245 {
		n := p.next
		p.next++
		if p.next > 254 {
			p.next = 10
		}
		ip := "127.0.0." + strconv.Itoa(n)
		if p.used[n] || ip == pgIP || !portsFree(ip) {
			continue
		}
		p.used[n] = true
		return ip, nil
	}
	return "", fmt.Errorf("cannot find a free address in 127.0.0.10-254 with ports %v free", replicaPorts)
}

func (p *ipPool) release(ip string) {
	parsed := net.ParseIP(ip).To4()
	if parsed == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.used, int(parsed[3]))
}

func portsFree(ip string) bool {
	for _, port := range replicaPorts {
		ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
		if err != nil {
			return false
		}
		_ = ln.Close()
	}
	return true
}
