package simulate

import (
	"fmt"
	"time"
)

// Protocol is how a service is called.
type Protocol uint8

// The protocols a service speaks.
const (
	HTTP Protocol = iota
	GRPC
)

// Generation selects which semantic-convention attribute names a service's
// instrumentation writes. Real fleets mix them: an old Java agent next to a
// freshly upgraded Go SDK.
type Generation uint8

// The semantic-convention generations.
const (
	// Old is pre-1.20: http.method, http.status_code, http.url, net.peer.name,
	// net.peer.port, db.system, db.name, db.statement.
	Old Generation = iota
	// Stable is the 1.26-era stable HTTP conventions: http.request.method,
	// http.response.status_code, url.full, server.address, server.port,
	// error.type, http.request.resend_count, db.system, db.namespace.
	Stable
	// Latest adds db.system.name, db.operation.name, db.query.summary and
	// rpc.response.status_code (string gRPC code) next to rpc.grpc.status_code.
	Latest
)

// External kinds: how an external dependency is spoken to.
const (
	ExternalPostgres = "postgresql"
	ExternalRedis    = "redis"
	ExternalHTTP     = "http"
)

// Topology is the system a simulation runs: its services, their operations and
// call sites, and the external dependencies they use. It is plain data; New
// validates it and never keeps a reference to the caller's copy.
type Topology struct {
	// Namespace is the Kubernetes namespace of every service (k8s.namespace.name,
	// and the "<svc>.<ns>.svc.cluster.local" addresses callers may use).
	Namespace string
	// Entry is the name of the edge service that receives root requests; its
	// operations' Weight fields split the root traffic.
	Entry string
	// Services are the instrumented services (they emit spans, logs, metrics).
	Services []Service
	// Externals are dependencies without spans of their own: databases,
	// caches, third-party APIs. Callers emit CLIENT spans to them.
	Externals []External
}

// Service is one instrumented microservice.
type Service struct {
	Name     string
	Version  string
	Protocol Protocol
	Semconv  Generation
	// Language picks exception type names ("java", "go", "python", "dotnet").
	Language string
	// Instances is the number of replicas (pods).
	Instances int
	// Workers is the per-instance concurrency (threads); a request holds a
	// worker for its whole life, including time waiting on dependencies.
	Workers int
	// Queue bounds the requests waiting for a worker; beyond it requests are
	// rejected at once (HTTP 503, gRPC RESOURCE_EXHAUSTED).
	Queue int
	// CPU is the container CPU limit in cores; own compute time queues for it.
	CPU float64
	// MemoryLimit and MemoryBase are bytes; each in-flight request adds
	// MemoryPerRequest to the working set.
	MemoryLimit, MemoryBase, MemoryPerRequest int64
	// ErrorRate is the background share of requests that fail on their own
	// (a bug on a rare path), before any fault.
	ErrorRate float64
	// PeerService makes this service's CLIENT spans carry peer.service.
	PeerService bool
	// FQDN makes this service address internal callees as
	// "<name>.<namespace>.svc.cluster.local" instead of "<name>".
	FQDN bool
	// DialByIP makes this service's gRPC client spans name the callee by
	// the pod IP its connection reached, and by nothing at all (only the
	// method) when the call failed before a connection carried it, as
	// otelgrpc's stats handler does for a headless Service.
	DialByIP bool
	// PodIP makes this service state its pod IP (k8s.pod.ip) on its
	// resource, as the downward API or the k8s_attributes processor set it.
	PodIP bool
	// Ops are the operations (HTTP routes or gRPC methods) it serves.
	Ops []Operation
}

// Operation is one HTTP route ("GET /api/cart") or gRPC method ("GetCart").
type Operation struct {
	Name string
	// Weight is the operation's share of root traffic (Entry service only).
	Weight float64
	// CPU is the median own compute time of one request (lognormal, sigma 0.5).
	CPU time.Duration
	// Steps run one after another; the calls of one step run in parallel.
	Steps [][]Call
	// FailFast cancels a step's calls still in flight when one of them fails
	// (an errgroup): their client spans end CANCELLED.
	FailFast bool
}

// Call is a call site: one outbound call an operation makes.
type Call struct {
	// Target is a service or external name; Op the callee's operation (for an
	// external: the database operation and collection, "SELECT stock", or the
	// HTTP route "POST /v1/charges").
	Target, Op string
	// Prob is the probability the call is made at all; 0 means always.
	Prob float64
	// Timeout bounds one attempt; the client span ends at it with an error.
	Timeout time.Duration
	// Attempts is the maximum number of attempts, the first included (>= 1).
	Attempts int
	// Backoff is the base of the exponential backoff between attempts
	// (doubling, capped at MaxBackoff, with equal jitter).
	Backoff, MaxBackoff time.Duration
	// RetryTimeouts makes timed-out attempts retryable (overload responses,
	// 502/503/504/429 and connection errors always are when Attempts > 1).
	RetryTimeouts bool
	// Fallback turns a final failure into a degraded OK answer.
	Fallback bool
	// Breaker, when set, guards the call site per caller instance.
	Breaker *Breaker
}

// Breaker is a circuit breaker: it opens after Consecutive failures in a row,
// or when the failure ratio of the last Window calls reaches Ratio; it stays
// open for Open, then lets one trial call through (half-open).
type Breaker struct {
	Consecutive int
	Ratio       float64
	Window      int
	Open        time.Duration
}

// External is a dependency without spans of its own.
type External struct {
	// Name is its server.address ("inventory-db", "api.bank.example").
	Name string
	// Kind is ExternalPostgres, ExternalRedis or ExternalHTTP.
	Kind string
	Port int
	// Namespace is db.namespace (database name, or redis db index).
	Namespace string
	// Capacity is how many requests it serves at once; Queue bounds those
	// waiting (beyond it: a fast error, 429 for HTTP).
	Capacity, Queue int
	// Latency is the median service time (lognormal with Sigma).
	Latency time.Duration
	Sigma   float64
	// ErrorRate is its background share of failed requests.
	ErrorRate float64
	// Pool is the client connection pool per caller instance (PostgreSQL
	// only; 0 = none) and PoolTimeout how long a caller waits for a
	// connection before failing.
	Pool        int
	PoolTimeout time.Duration
}

// DefaultTopology returns a ten-service shop: frontend -> {catalog,
// recommendation, currency, cart, checkout}; checkout -> {cart, inventory,
// payments, shipping}; payments -> api.bank.example; inventory ->
// inventory-db; cart -> cart-cache; catalog -> {catalog-db, search};
// recommendation -> catalog with a fallback. At 30 root requests/s the busiest
// resource (catalog's CPU) runs at about a quarter of its capacity.
func DefaultTopology() Topology {
	const ms = time.Millisecond
	mb := int64(1 << 20)
	grpcRetry := func(target, op string, timeout time.Duration, attempts int) Call {
		return Call{Target: target, Op: op, Timeout: timeout, Attempts: attempts, Backoff: 50 * ms, MaxBackoff: time.Second}
	}
	return Topology{
		Namespace: "shop",
		Entry:     "frontend",
		Services: []Service{
			{
				Name: "frontend", Version: "2.14.1", Protocol: HTTP, Semconv: Latest, Language: "go",
				Instances: 3, Workers: 200, Queue: 500, CPU: 1,
				MemoryLimit: 512 * mb, MemoryBase: 120 * mb, MemoryPerRequest: 256 << 10,
				ErrorRate: 0.0004, DialByIP: true,
				Ops: []Operation{
					{Name: "GET /api/products/{id}", Weight: 0.45, CPU: 2 * ms, FailFast: true, Steps: [][]Call{{
						{Target: "catalog", Op: "GET /products/{id}", Timeout: 1500 * ms, Attempts: 2, Backoff: 100 * ms, MaxBackoff: time.Second, RetryTimeouts: true},
						{Target: "recommendation", Op: "GET /recommendations", Timeout: 800 * ms, Attempts: 1, Fallback: true,
							Breaker: &Breaker{Consecutive: 10, Ratio: 0.5, Window: 40, Open: 15 * time.Second}},
						{Target: "currency", Op: "Convert", Timeout: 300 * ms, Attempts: 2, Backoff: 20 * ms, MaxBackoff: 200 * ms},
					}}},
					{Name: "GET /api/search", Weight: 0.15, CPU: 2 * ms, Steps: [][]Call{{
						{Target: "catalog", Op: "GET /search", Timeout: 2 * time.Second, Attempts: 2, Backoff: 100 * ms, MaxBackoff: time.Second, RetryTimeouts: true},
					}}},
					{Name: "GET /api/cart", Weight: 0.25, CPU: 1500 * time.Microsecond, Steps: [][]Call{{
						grpcRetry("cart", "GetCart", 500*ms, 3),
					}}},
					{Name: "POST /api/checkout", Weight: 0.08, CPU: 3 * ms, Steps: [][]Call{{
						{Target: "checkout", Op: "POST /orders", Timeout: 8 * time.Second, Attempts: 2, Backoff: 200 * ms, MaxBackoff: 2 * time.Second},
					}}},
					{Name: "GET /", Weight: 0.07, CPU: 3 * ms, FailFast: true, Steps: [][]Call{{
						{Target: "catalog", Op: "GET /products", Timeout: 1500 * ms, Attempts: 2, Backoff: 100 * ms, MaxBackoff: time.Second, RetryTimeouts: true},
						{Target: "recommendation", Op: "GET /recommendations", Timeout: 800 * ms, Attempts: 1, Fallback: true,
							Breaker: &Breaker{Consecutive: 10, Ratio: 0.5, Window: 40, Open: 15 * time.Second}},
					}}},
				},
			},
			{
				Name: "checkout", Version: "1.9.3", Protocol: HTTP, Semconv: Old, Language: "java",
				Instances: 2, Workers: 100, Queue: 200, CPU: 1,
				MemoryLimit: 1024 * mb, MemoryBase: 420 * mb, MemoryPerRequest: 1 * mb,
				ErrorRate: 0.0002, PeerService: true, FQDN: true,
				Ops: []Operation{
					{Name: "POST /orders", CPU: 4 * ms, FailFast: true, Steps: [][]Call{
						{grpcRetry("cart", "GetCart", 500*ms, 2)},
						{grpcRetry("inventory", "Reserve", time.Second, 3), grpcRetry("shipping", "GetQuote", time.Second, 2)},
						{{Target: "payments", Op: "POST /v1/charges", Timeout: 3 * time.Second, Attempts: 3, Backoff: 100 * ms, MaxBackoff: 2 * time.Second}},
						{grpcRetry("cart", "EmptyCart", 500*ms, 2)},
					}},
				},
			},
			{
				Name: "payments", Version: "3.2.0", Protocol: HTTP, Semconv: Stable, Language: "go",
				Instances: 2, Workers: 64, Queue: 100, CPU: 0.5,
				MemoryLimit: 256 * mb, MemoryBase: 60 * mb, MemoryPerRequest: 128 << 10,
				ErrorRate: 0.0002,
				Ops: []Operation{
					{Name: "POST /v1/charges", CPU: 2 * ms, Steps: [][]Call{{
						{Target: "api.bank.example", Op: "POST /v1/charges", Timeout: 2 * time.Second, Attempts: 2, Backoff: 200 * ms, MaxBackoff: time.Second,
							Breaker: &Breaker{Consecutive: 8, Ratio: 0.6, Window: 30, Open: 20 * time.Second}},
					}}},
				},
			},
			{
				Name: "inventory", Version: "5.0.7", Protocol: GRPC, Semconv: Latest, Language: "java",
				Instances: 2, Workers: 50, Queue: 100, CPU: 0.5,
				MemoryLimit: 768 * mb, MemoryBase: 380 * mb, MemoryPerRequest: 512 << 10,
				ErrorRate: 0.0002,
				Ops: []Operation{
					{Name: "Reserve", CPU: 2 * ms, Steps: [][]Call{
						{{Target: "inventory-db", Op: "SELECT stock", Timeout: time.Second, Attempts: 1}},
						{{Target: "inventory-db", Op: "UPDATE stock", Timeout: time.Second, Attempts: 1}},
					}},
				},
			},
			{
				Name: "cart", Version: "4.1.0", Protocol: GRPC, Semconv: Old, Language: "dotnet",
				Instances: 2, Workers: 100, Queue: 200, CPU: 0.5,
				MemoryLimit: 256 * mb, MemoryBase: 90 * mb, MemoryPerRequest: 64 << 10,
				ErrorRate: 0.0001,
				Ops: []Operation{
					{Name: "GetCart", CPU: 1 * ms, Steps: [][]Call{{{Target: "cart-cache", Op: "HGETALL", Timeout: 200 * ms, Attempts: 2, Backoff: 10 * ms, MaxBackoff: 50 * ms, RetryTimeouts: true}}}},
					{Name: "EmptyCart", CPU: 1 * ms, Steps: [][]Call{{{Target: "cart-cache", Op: "DEL", Timeout: 200 * ms, Attempts: 2, Backoff: 10 * ms, MaxBackoff: 50 * ms, RetryTimeouts: true}}}},
				},
			},
			{
				Name: "catalog", Version: "7.3.2", Protocol: HTTP, Semconv: Old, Language: "java",
				Instances: 2, Workers: 100, Queue: 200, CPU: 0.5,
				MemoryLimit: 1024 * mb, MemoryBase: 500 * mb, MemoryPerRequest: 512 << 10,
				ErrorRate: 0.0001,
				Ops: []Operation{
					{Name: "GET /products/{id}", CPU: 6 * ms, Steps: [][]Call{{{Target: "catalog-db", Op: "SELECT products", Timeout: time.Second, Attempts: 1}}}},
					{Name: "GET /products", CPU: 10 * ms, Steps: [][]Call{{{Target: "catalog-db", Op: "SELECT products", Timeout: time.Second, Attempts: 1}}}},
					{Name: "GET /search", CPU: 3 * ms, Steps: [][]Call{{grpcRetry("search", "Query", time.Second, 2)}}},
				},
			},
			{
				Name: "search", Version: "0.12.4", Protocol: GRPC, Semconv: Latest, Language: "go",
				Instances: 2, Workers: 64, Queue: 128, CPU: 0.5,
				MemoryLimit: 512 * mb, MemoryBase: 200 * mb, MemoryPerRequest: 1 * mb,
				ErrorRate: 0.0002, PodIP: true,
				Ops: []Operation{{Name: "Query", CPU: 15 * ms}},
			},
			{
				Name: "recommendation", Version: "1.4.0", Protocol: HTTP, Semconv: Stable, Language: "python",
				Instances: 2, Workers: 16, Queue: 64, CPU: 0.5,
				MemoryLimit: 384 * mb, MemoryBase: 150 * mb, MemoryPerRequest: 2 * mb,
				ErrorRate: 0.0002, PeerService: true,
				Ops: []Operation{{Name: "GET /recommendations", CPU: 6 * ms, Steps: [][]Call{{
					{Target: "catalog", Op: "GET /products/{id}", Timeout: 400 * ms, Attempts: 2, Backoff: 50 * ms, MaxBackoff: 500 * ms, RetryTimeouts: true, Fallback: true},
				}}}},
			},
			{
				Name: "shipping", Version: "2.0.1", Protocol: GRPC, Semconv: Latest, Language: "go",
				Instances: 2, Workers: 64, Queue: 128, CPU: 0.25,
				MemoryLimit: 128 * mb, MemoryBase: 30 * mb, MemoryPerRequest: 64 << 10,
				ErrorRate: 0.0002, PodIP: true,
				Ops: []Operation{{Name: "GetQuote", CPU: 2 * ms}},
			},
			{
				Name: "currency", Version: "1.1.9", Protocol: GRPC, Semconv: Stable, Language: "go",
				Instances: 2, Workers: 64, Queue: 128, CPU: 0.25,
				MemoryLimit: 128 * mb, MemoryBase: 25 * mb, MemoryPerRequest: 32 << 10,
				ErrorRate: 0.0001, PodIP: true,
				Ops: []Operation{{Name: "Convert", CPU: 500 * time.Microsecond}},
			},
		},
		Externals: []External{
			{Name: "api.bank.example", Kind: ExternalHTTP, Port: 443, Capacity: 40, Queue: 0, Latency: 180 * ms, Sigma: 0.35, ErrorRate: 0.0003},
			{Name: "inventory-db", Kind: ExternalPostgres, Port: 5432, Namespace: "inventory", Capacity: 16, Queue: 500, Latency: 2 * ms, Sigma: 0.6, ErrorRate: 0.00002, Pool: 10, PoolTimeout: 800 * ms},
			{Name: "catalog-db", Kind: ExternalPostgres, Port: 5432, Namespace: "catalog", Capacity: 24, Queue: 1000, Latency: 3 * ms, Sigma: 0.6, ErrorRate: 0.00002, Pool: 20, PoolTimeout: time.Second},
			{Name: "cart-cache", Kind: ExternalRedis, Port: 6379, Namespace: "0", Capacity: 64, Queue: 1000, Latency: 400 * time.Microsecond, Sigma: 0.4, ErrorRate: 0.00002},
		},
	}
}

// validate checks a topology: unique names, known targets and operations,
// sane numbers, and an acyclic call graph.
func (t *Topology) validate() error {
	if len(t.Services) == 0 {
		return fmt.Errorf("topology.services: empty")
	}
	names := map[string]bool{}
	ops := map[string]map[string]bool{}
	for i, s := range t.Services {
		where := fmt.Sprintf("topology.services[%d] (%q)", i, s.Name)
		if s.Name == "" {
			return fmt.Errorf("%s.name: empty", where)
		}
		if names[s.Name] {
			return fmt.Errorf("%s.name: duplicate %q", where, s.Name)
		}
		names[s.Name] = true
		switch {
		case s.Instances < 1 || s.Instances > 1000:
			return fmt.Errorf("%s.instances: %d not in [1, 1000]", where, s.Instances)
		case s.Workers < 1 || s.Workers > 100000:
			return fmt.Errorf("%s.workers: %d not in [1, 100000]", where, s.Workers)
		case s.Queue < 0 || s.Queue > 1000000:
			return fmt.Errorf("%s.queue: %d not in [0, 1000000]", where, s.Queue)
		case !(s.CPU > 0 && s.CPU <= 256):
			return fmt.Errorf("%s.cpu: %v not in (0, 256]", where, s.CPU)
		case !(s.ErrorRate >= 0 && s.ErrorRate <= 1):
			return fmt.Errorf("%s.error_rate: %v not in [0, 1]", where, s.ErrorRate)
		case s.Protocol > GRPC:
			return fmt.Errorf("%s.protocol: unknown %d", where, s.Protocol)
		case s.Semconv > Latest:
			return fmt.Errorf("%s.semconv: unknown %d", where, s.Semconv)
		case len(s.Ops) == 0:
			return fmt.Errorf("%s.ops: empty", where)
		}
		ops[s.Name] = map[string]bool{}
		for _, op := range s.Ops {
			ops[s.Name][op.Name] = true
		}
	}
	for i, e := range t.Externals {
		where := fmt.Sprintf("topology.externals[%d] (%q)", i, e.Name)
		if e.Name == "" {
			return fmt.Errorf("%s.name: empty", where)
		}
		if names[e.Name] {
			return fmt.Errorf("%s.name: duplicate %q", where, e.Name)
		}
		names[e.Name] = true
		switch {
		case e.Kind != ExternalPostgres && e.Kind != ExternalRedis && e.Kind != ExternalHTTP:
			return fmt.Errorf("%s.kind: unknown %q", where, e.Kind)
		case e.Port < 1 || e.Port > 65535:
			return fmt.Errorf("%s.port: %d not in [1, 65535]", where, e.Port)
		case e.Capacity < 1 || e.Capacity > 100000:
			return fmt.Errorf("%s.capacity: %d not in [1, 100000]", where, e.Capacity)
		case e.Queue < 0 || e.Queue > 1000000:
			return fmt.Errorf("%s.queue: %d not in [0, 1000000]", where, e.Queue)
		case e.Latency <= 0:
			return fmt.Errorf("%s.latency: %v must be > 0", where, e.Latency)
		case !(e.Sigma >= 0 && e.Sigma <= 3):
			return fmt.Errorf("%s.sigma: %v not in [0, 3]", where, e.Sigma)
		case !(e.ErrorRate >= 0 && e.ErrorRate <= 1):
			return fmt.Errorf("%s.error_rate: %v not in [0, 1]", where, e.ErrorRate)
		case e.Pool < 0 || e.Pool > 10000:
			return fmt.Errorf("%s.pool: %d not in [0, 10000]", where, e.Pool)
		case e.Pool > 0 && e.PoolTimeout <= 0:
			return fmt.Errorf("%s.pool_timeout: %v must be > 0 with a pool", where, e.PoolTimeout)
		}
	}
	if !names[t.Entry] || ops[t.Entry] == nil {
		return fmt.Errorf("topology.entry: %q is not a service", t.Entry)
	}
	var weight float64
	for _, op := range t.Services[t.serviceIndex(t.Entry)].Ops {
		if !(op.Weight >= 0) {
			return fmt.Errorf("topology.entry: operation %q weight %v < 0", op.Name, op.Weight)
		}
		weight += op.Weight
	}
	if !(weight > 0) {
		return fmt.Errorf("topology.entry: operations of %q have no weight", t.Entry)
	}
	for _, s := range t.Services {
		for _, op := range s.Ops {
			where := fmt.Sprintf("topology: service %q operation %q", s.Name, op.Name)
			if op.CPU < 0 {
				return fmt.Errorf("%s: cpu %v < 0", where, op.CPU)
			}
			for si, step := range op.Steps {
				for ci, c := range step {
					cw := fmt.Sprintf("%s step %d call %d", where, si, ci)
					if !names[c.Target] {
						return fmt.Errorf("%s: unknown target %q", cw, c.Target)
					}
					if ops[c.Target] != nil && !ops[c.Target][c.Op] {
						return fmt.Errorf("%s: target %q has no operation %q", cw, c.Target, c.Op)
					}
					switch {
					case c.Timeout <= 0:
						return fmt.Errorf("%s: timeout %v must be > 0", cw, c.Timeout)
					case c.Attempts < 1 || c.Attempts > 20:
						return fmt.Errorf("%s: attempts %d not in [1, 20]", cw, c.Attempts)
					case c.Attempts > 1 && c.Backoff <= 0:
						return fmt.Errorf("%s: backoff %v must be > 0 with retries", cw, c.Backoff)
					case !(c.Prob >= 0 && c.Prob <= 1):
						return fmt.Errorf("%s: prob %v not in [0, 1]", cw, c.Prob)
					}
					if b := c.Breaker; b != nil && (b.Consecutive < 1 || b.Window < 1 || b.Window > 1024 || !(b.Ratio > 0 && b.Ratio <= 1) || b.Open <= 0) {
						return fmt.Errorf("%s: breaker needs consecutive >= 1, window in [1, 1024], ratio in (0, 1], open > 0", cw)
					}
				}
			}
		}
	}
	// The call graph must be acyclic, or a request could recurse for ever.
	state := map[string]int{}
	var visit func(string) error
	visit = func(name string) error {
		switch state[name] {
		case 1:
			return fmt.Errorf("topology: call cycle through %q", name)
		case 2:
			return nil
		}
		state[name] = 1
		if i := t.serviceIndex(name); i >= 0 {
			for _, op := range t.Services[i].Ops {
				for _, step := range op.Steps {
					for _, c := range step {
						if err := visit(c.Target); err != nil {
							return err
						}
					}
				}
			}
		}
		state[name] = 2
		return nil
	}
	for _, s := range t.Services {
		if err := visit(s.Name); err != nil {
			return err
		}
	}
	return nil
}

func (t *Topology) serviceIndex(name string) int {
	for i := range t.Services {
		if t.Services[i].Name == name {
			return i
		}
	}
	return -1
}

// clone deep-copies the topology so scenarios can change it.
func (t Topology) clone() Topology {
	c := t
	c.Services = make([]Service, len(t.Services))
	for i, s := range t.Services {
		s.Ops = make([]Operation, len(s.Ops))
		for j, op := range t.Services[i].Ops {
			op.Steps = make([][]Call, len(op.Steps))
			for k, step := range t.Services[i].Ops[j].Steps {
				op.Steps[k] = make([]Call, len(step))
				for l, call := range step {
					if call.Breaker != nil {
						b := *call.Breaker
						call.Breaker = &b
					}
					op.Steps[k][l] = call
				}
			}
			s.Ops[j] = op
		}
		c.Services[i] = s
	}
	c.Externals = append([]External(nil), t.Externals...)
	return c
}

// callers returns, for each target, the (caller service, call) pairs that call it.
func (t *Topology) callSites(target string) []siteRef {
	var out []siteRef
	for _, s := range t.Services {
		for _, op := range s.Ops {
			for _, step := range op.Steps {
				for _, c := range step {
					if c.Target == target {
						out = append(out, siteRef{caller: s.Name, call: c})
					}
				}
			}
		}
	}
	return out
}

type siteRef struct {
	caller string
	call   Call
}

// spreadsTo lists the services a failure of origin spreads to: callers that
// call it without a fallback, transitively, in breadth-first order.
func (t *Topology) spreadsTo(origin string) []string {
	seen := map[string]bool{origin: true}
	var out []string
	queue := []string{origin}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, ref := range t.callSites(cur) {
			if ref.call.Fallback || seen[ref.caller] {
				continue
			}
			seen[ref.caller] = true
			out = append(out, ref.caller)
			queue = append(queue, ref.caller)
		}
	}
	return out
}
