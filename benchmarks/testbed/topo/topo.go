// Package topo holds the testbed's topologies as data: the services, what each
// operation calls and how (timeouts, retries, fan-out, hedging, breakers), the
// databases, the load mix and the faults and controls each topology's plan
// draws from. The orchestrator (package testbed) and the service runtime
// (package service) both read it, so a replica process needs only the names of
// its topology and service to know what to serve. Everything here is
// immutable after package initialisation.
package topo

import (
	"fmt"
	"strings"
	"time"
)

// Protocol is how a service is reached.
type Protocol uint8

// Protocols.
const (
	// GRPC services serve a hand-written grpc.ServiceDesc whose messages are
	// structpb.Struct.
	GRPC Protocol = iota + 1
	// HTTP services serve an http.ServeMux with Go 1.22 patterns.
	HTTP
	// Worker services serve nothing: they consume a queue.
	Worker
)

// String names the protocol.
func (p Protocol) String() string {
	switch p {
	case GRPC:
		return "gRPC"
	case HTTP:
		return "HTTP"
	case Worker:
		return "worker"
	}
	return "unknown"
}

// Ports every replica uses on its own IP. Clients reach the public port, which
// is the replica's toxiproxy proxy; the proxy forwards to the service port.
const (
	GRPCPort        = 50051
	GRPCServicePort = 50052
	HTTPPort        = 8080
	HTTPServicePort = 8081
	AdminPort       = 9901
	DBPort          = 5432
)

// Topology is one application, deployed in its own Kubernetes-like namespace
// (its Name).
type Topology struct {
	Name        string
	Description string
	// Front is the service the load generator calls.
	Front string
	// Rate is the nominal root rate of the main flows, in requests per second.
	Rate     float64
	Flows    []Flow
	Services []Service
	// Databases are the PostgreSQL databases the topology needs; Schema is
	// run in each when it is created.
	Databases []string
	Schema    string
	// Plan is the full plan's sequence of slots; Short holds the short plan's
	// failing and latency-only slots.
	Plan  []Slot
	Short [2]Slot
}

// Flow is one kind of request the load generator sends.
type Flow struct {
	Name    string
	Service string
	// Route is an HTTP pattern ("GET /api/orders/{id}").
	Route string
	// Weight is the flow's share of Topology.Rate; Rate, when set, is a
	// fixed rate in requests per second instead (back-office flows).
	Weight float64
	Rate   float64
}

// Service is one deployment.
type Service struct {
	Name     string
	Protocol Protocol
	// GRPCName is the fully qualified gRPC service name ("ledger.v1.Accounts").
	GRPCName string
	Replicas int
	// PodIP says the service sets k8s.pod.ip on its resource (as if from the
	// downward API); the others do not.
	PodIP   bool
	Version string
	// Work is the range of CPU time (hashing) each inbound request costs; a
	// replica draws its value from the run's seed.
	Work [2]time.Duration
	// DB is the database the service uses, if any.
	DB   *DBUse
	Ops  []Op
	Jobs *Consumer
}

// DBUse is a service's connection pool to a database.
type DBUse struct {
	Database string
	MaxOpen  int
}

// Op is one operation a service serves: a gRPC method name or an HTTP
// pattern.
type Op struct {
	Name string
	// Front ops reject malformed requests with 400 themselves.
	Front bool
	// Validates ops reject requests for unknown entities with
	// INVALID_ARGUMENT (gRPC) or 404 (HTTP).
	Validates bool
	// Sleep is an I/O-like wait, on top of the CPU work.
	Sleep time.Duration
	Steps []Step
}

// Consumer is a queue consumer: Workers goroutines per replica poll Queue and
// run Steps for each job.
type Consumer struct {
	Queue   string
	Workers int
	Steps   []Step
}

// StepKind says what a step does.
type StepKind uint8

// Step kinds.
const (
	// Call makes one call (Calls[0]).
	Call StepKind = iota + 1
	// FanOut makes Calls concurrently in an errgroup that cancels the others
	// when one fails.
	FanOut
	// Query runs SQL on the service's database.
	Query
	// Publish inserts a job into Queue, under a PRODUCER span.
	Publish
	// Async makes Calls[0] in the background: the request does not wait.
	Async
)

// Step is one step of an operation, run in order.
type Step struct {
	Kind  StepKind
	Calls []CallSpec
	// SQL is the statement of a Query step; $1 is the request id.
	SQL   string
	Queue string
}

// CallSpec is one outbound call.
type CallSpec struct {
	Service string
	// Method is the gRPC method name, or the HTTP pattern to call.
	Method  string
	Timeout time.Duration
	// GRPCRetry adds a service-config retry policy on this method
	// (UNAVAILABLE, maxAttempts 3).
	GRPCRetry bool
	// HTTPRetries is how many times a 5xx or a connection error is retried,
	// with exponential backoff.
	HTTPRetries int
	// Hedge sends a second attempt after this delay if the first has not
	// answered; the loser is cancelled.
	Hedge time.Duration
	// Breaker wraps the call in a circuit breaker with a fallback answer: its
	// failures do not fail the caller.
	Breaker bool
	// ByIP addresses an HTTP callee by a replica IP; otherwise by its
	// in-cluster DNS name, resolved by the caller's dialer.
	ByIP bool
	// Share is the probability the call is made (0: always).
	Share float64
}

// Contained says whether a failure of the callee stays at the caller.
func (c CallSpec) Contained(kind StepKind) bool { return c.Breaker || kind == Async }

// Service returns the named service.
func (t *Topology) Service(name string) (*Service, bool) {
	for i := range t.Services {
		if t.Services[i].Name == name {
			return &t.Services[i], true
		}
	}
	return nil, false
}

// Op returns the service's operation by name.
func (s *Service) Op(name string) (*Op, bool) {
	for i := range s.Ops {
		if s.Ops[i].Name == name {
			return &s.Ops[i], true
		}
	}
	return nil, false
}

// Callees lists the services s calls, in first-use order.
func (s *Service) Callees() []string {
	var out []string
	seen := map[string]bool{}
	add := func(steps []Step) {
		for _, st := range steps {
			for _, c := range st.Calls {
				if !seen[c.Service] {
					seen[c.Service] = true
					out = append(out, c.Service)
				}
			}
		}
	}
	for _, op := range s.Ops {
		add(op.Steps)
	}
	if s.Jobs != nil {
		add(s.Jobs.Steps)
	}
	return out
}

// DNSName is the in-cluster name of a service, as a ClusterIP Service would
// have it.
func DNSName(topology, service string) string {
	return service + "." + topology + ".svc.cluster.local"
}

// ServiceFromDNS returns the service and topology a DNSName names.
func ServiceFromDNS(host string) (service, topology string, ok bool) {
	rest, found := strings.CutSuffix(host, ".svc.cluster.local")
	if !found {
		return "", "", false
	}
	service, topology, ok = strings.Cut(rest, ".")
	return service, topology, ok && service != "" && topology != ""
}

// FullMethod is the gRPC full method name of a call to a gRPC service.
func FullMethod(s *Service, method string) string { return "/" + s.GRPCName + "/" + method }

// SplitRoute splits an HTTP pattern into its method and path.
func SplitRoute(route string) (method, path string) {
	method, path, ok := strings.Cut(route, " ")
	if !ok {
		return "GET", route
	}
	return method, path
}

// FillPath replaces every {wildcard} segment of path with id.
func FillPath(path, id string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(path, '{')
		if i < 0 {
			b.WriteString(path)
			return b.String()
		}
		j := strings.IndexByte(path[i:], '}')
		if j < 0 {
			b.WriteString(path)
			return b.String()
		}
		b.WriteString(path[:i])
		b.WriteString(id)
		path = path[i+j+1:]
	}
}

// Validate checks that every call names an existing service and operation,
// and that every service with a Query or Publish step has a database.
func (t *Topology) Validate() error {
	var errs []string
	check := func(from string, steps []Step, db bool) {
		for _, st := range steps {
			if (st.Kind == Query || st.Kind == Publish) && !db {
				errs = append(errs, fmt.Sprintf("%s: %v step without a database", from, st.Kind))
			}
			for _, c := range st.Calls {
				callee, ok := t.Service(c.Service)
				if !ok {
					errs = append(errs, fmt.Sprintf("%s: calls unknown service %q", from, c.Service))
					continue
				}
				if _, ok := callee.Op(c.Method); !ok {
					errs = append(errs, fmt.Sprintf("%s: calls unknown operation %s %q", from, c.Service, c.Method))
				}
				if c.Timeout <= 0 {
					errs = append(errs, fmt.Sprintf("%s: call to %s has no timeout", from, c.Service))
				}
			}
		}
	}
	for _, s := range t.Services {
		if s.Replicas < 1 {
			errs = append(errs, fmt.Sprintf("%s: %d replicas", s.Name, s.Replicas))
		}
		if s.Protocol == GRPC && s.GRPCName == "" {
			errs = append(errs, fmt.Sprintf("%s: gRPC service without a gRPC name", s.Name))
		}
		for _, op := range s.Ops {
			check(s.Name+" "+op.Name, op.Steps, s.DB != nil)
		}
		if s.Jobs != nil {
			check(s.Name+" consumer", s.Jobs.Steps, s.DB != nil)
		}
	}
	if _, ok := t.Service(t.Front); !ok {
		errs = append(errs, fmt.Sprintf("front service %q does not exist", t.Front))
	}
	for _, f := range t.Flows {
		s, ok := t.Service(f.Service)
		if !ok {
			errs = append(errs, fmt.Sprintf("flow %s: unknown service %q", f.Name, f.Service))
			continue
		}
		if _, ok := s.Op(f.Route); !ok {
			errs = append(errs, fmt.Sprintf("flow %s: unknown route %q", f.Name, f.Route))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid topology %s: %s", t.Name, strings.Join(errs, "; "))
	}
	return nil
}

var all = []*Topology{ledger, search, fulfil}

// All returns every topology, in a fixed order.
func All() []*Topology { return all }

// Get returns the named topology.
func Get(name string) (*Topology, bool) {
	for _, t := range all {
		if t.Name == name {
			return t, true
		}
	}
	return nil, false
}

// Names lists the topology names.
func Names() []string {
	out := make([]string, len(all))
	for i, t := range all {
		out[i] = t.Name
	}
	return out
}
