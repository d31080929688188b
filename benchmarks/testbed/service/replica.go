package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptrace"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/vigilhq/vigil/benchmarks/testbed/topo"
)

// Replica is one running replica of a service: its servers, clients, pool,
// consumers and admin endpoint. Start it with Start and stop it with Stop.
type Replica struct {
	cfg    Config
	topo   *topo.Topology
	svc    *topo.Service
	tel    *telemetry
	peers  *peers
	faults faultState
	stats  counters
	work   *burner
	spin   spinner
	ready  atomic.Bool

	conns    map[string]*grpc.ClientConn
	http     *http.Client
	breakers map[string]*gobreaker.CircuitBreaker[struct{}]
	db       *database
	async    chan struct{}

	grpcSrv  *grpc.Server
	httpSrv  *http.Server
	adminSrv *http.Server
	cancel   context.CancelFunc // stops the consumers
	wg       sync.WaitGroup
	stopOnce sync.Once
}

// Start starts a replica: telemetry, clients, pool, then the listeners; it
// returns once they accept connections.
func Start(ctx context.Context, cfg Config) (*Replica, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t, _ := topo.Get(cfg.Topology)
	svc, _ := t.Service(cfg.Service)
	r := &Replica{cfg: cfg, topo: t, svc: svc, peers: newPeers(cfg.Peers), async: make(chan struct{}, 64),
		conns: map[string]*grpc.ClientConn{}, breakers: map[string]*gobreaker.CircuitBreaker[struct{}]{}}
	r.work = newBurner(cfg.Seed, svc.Name, svc.Work[0], svc.Work[1])
	tel, err := newTelemetry(ctx, cfg, svc.PodIP)
	if err != nil {
		return nil, err
	}
	r.tel = tel
	if err := r.start(); err != nil {
		r.Stop(context.Background())
		return nil, err
	}
	r.ready.Store(true)
	return r, nil
}

func (r *Replica) start() error {
	if err := r.dialCallees(); err != nil {
		return err
	}
	if r.svc.DB != nil {
		db, err := openDB(r.tel, r.cfg.DBAddr, r.cfg.DBUser, r.svc.DB.Database, r.svc.DB.MaxOpen)
		if err != nil {
			return err
		}
		r.db = db
	}
	admin := &adminHandler{ready: &r.ready, faults: &r.faults, stats: r.Stats, onFault: r.applyFault, onPeers: r.peers.set}
	r.adminSrv = &http.Server{Handler: admin.mux(), ReadHeaderTimeout: 5 * time.Second}
	if err := r.listen(r.adminSrv.Serve, topo.AdminPort); err != nil {
		return err
	}
	switch r.svc.Protocol {
	case topo.GRPC:
		r.grpcSrv = grpc.NewServer(grpc.StatsHandler(otelgrpc.NewServerHandler(
			otelgrpc.WithTracerProvider(r.tel.tp), otelgrpc.WithMeterProvider(r.tel.mp), otelgrpc.WithPropagators(r.tel.prop))))
		r.grpcSrv.RegisterService(r.serviceDesc(), r)
		if err := r.listen(r.grpcSrv.Serve, topo.GRPCServicePort); err != nil {
			return err
		}
	case topo.HTTP:
		r.httpSrv = &http.Server{
			Handler: otelhttp.NewHandler(r.mux(), r.svc.Name,
				otelhttp.WithTracerProvider(r.tel.tp), otelhttp.WithMeterProvider(r.tel.mp), otelhttp.WithPropagators(r.tel.prop)),
			ReadHeaderTimeout: 5 * time.Second,
			IdleTimeout:       90 * time.Second,
		}
		if err := r.listen(r.httpSrv.Serve, topo.HTTPServicePort); err != nil {
			return err
		}
	}
	if r.svc.Jobs != nil {
		ctx, cancel := context.WithCancel(context.Background())
		r.cancel = cancel
		for range r.svc.Jobs.Workers {
			r.wg.Go(func() { r.consume(ctx) })
		}
	}
	return nil
}

func (r *Replica) listen(serve func(net.Listener) error, port int) error {
	ln, err := net.Listen("tcp", net.JoinHostPort(r.cfg.IP, strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("cannot listen: %w", err)
	}
	go func() { _ = serve(ln) }()
	return nil
}

// dialCallees creates one gRPC channel per gRPC callee (resolved through the
// testbed resolver, round robin, with the call sites' retry policies) and
// the HTTP client.
func (r *Replica) dialCallees() error {
	retried := map[string][]map[string]string{}
	for _, steps := range r.allSteps() {
		for _, st := range steps {
			for _, c := range st.Calls {
				if callee, ok := r.topo.Service(c.Service); ok && callee.Protocol == topo.GRPC && c.GRPCRetry {
					name := map[string]string{"service": callee.GRPCName, "method": c.Method}
					if !slices.ContainsFunc(retried[c.Service], func(m map[string]string) bool { return maps.Equal(m, name) }) {
						retried[c.Service] = append(retried[c.Service], name)
					}
				}
				if c.Breaker {
					r.breakers[c.Service+" "+c.Method] = newBreaker(r.svc.Name + "->" + c.Service)
				}
			}
		}
	}
	rb := resolverBuilder{p: r.peers}
	for _, name := range r.svc.Callees() {
		callee, _ := r.topo.Service(name)
		if callee.Protocol != topo.GRPC {
			continue
		}
		sc, err := serviceConfig(retried[name])
		if err != nil {
			return err
		}
		conn, err := grpc.NewClient(resolverScheme+":///"+name,
			grpc.WithResolvers(rb),
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithStatsHandler(otelgrpc.NewClientHandler(
				otelgrpc.WithTracerProvider(r.tel.tp), otelgrpc.WithMeterProvider(r.tel.mp), otelgrpc.WithPropagators(r.tel.prop))),
			grpc.WithDefaultServiceConfig(sc),
			// Reconnect within 5 s of a callee coming back, not the default
			// two minutes.
			grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{BaseDelay: 500 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 5 * time.Second}, MinConnectTimeout: 2 * time.Second}),
		)
		if err != nil {
			return fmt.Errorf("cannot create client for %s: %w", name, err)
		}
		r.conns[name] = conn
	}
	d := &dialer{p: r.peers, d: net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}}
	base := &http.Transport{DialContext: d.DialContext, MaxIdleConns: 64, MaxIdleConnsPerHost: 16, IdleConnTimeout: 30 * time.Second}
	r.http = &http.Client{Transport: otelhttp.NewTransport(base,
		otelhttp.WithTracerProvider(r.tel.tp), otelhttp.WithMeterProvider(r.tel.mp), otelhttp.WithPropagators(r.tel.prop),
		otelhttp.WithClientTrace(func(ctx context.Context) *httptrace.ClientTrace {
			markResend(ctx)
			return &httptrace.ClientTrace{}
		}))}
	return nil
}

// serviceConfig is a channel's service config: round_robin over the pod IPs
// and, for the listed methods, a retry policy on UNAVAILABLE.
func serviceConfig(retried []map[string]string) (string, error) {
	sc := map[string]any{"loadBalancingConfig": []any{map[string]any{"round_robin": map[string]any{}}}}
	if len(retried) > 0 {
		sc["methodConfig"] = []any{map[string]any{
			"name": retried,
			"retryPolicy": map[string]any{
				"maxAttempts": 3, "initialBackoff": "0.05s", "maxBackoff": "0.5s", "backoffMultiplier": 2,
				"retryableStatusCodes": []string{"UNAVAILABLE"},
			},
		}}
	}
	b, err := json.Marshal(sc)
	if err != nil {
		return "", fmt.Errorf("cannot encode service config: %w", err)
	}
	return string(b), nil
}

func (r *Replica) allSteps() [][]topo.Step {
	var out [][]topo.Step
	for _, op := range r.svc.Ops {
		out = append(out, op.Steps)
	}
	if r.svc.Jobs != nil {
		out = append(out, r.svc.Jobs.Steps)
	}
	return out
}

// serviceDesc is the hand-written descriptor of the replica's gRPC service:
// every method takes and returns a structpb.Struct, so the default proto
// codec works without generated code.
func (r *Replica) serviceDesc() *grpc.ServiceDesc {
	sd := &grpc.ServiceDesc{ServiceName: r.svc.GRPCName, HandlerType: (*any)(nil), Metadata: "testbed"}
	for i := range r.svc.Ops {
		op := &r.svc.Ops[i]
		full := topo.FullMethod(r.svc, op.Name)
		sd.Methods = append(sd.Methods, grpc.MethodDesc{MethodName: op.Name,
			Handler: func(_ any, ctx context.Context, dec func(any) error, icpt grpc.UnaryServerInterceptor) (any, error) {
				in := new(structpb.Struct)
				if err := dec(in); err != nil {
					return nil, err
				}
				h := func(ctx context.Context, req any) (any, error) {
					s, _ := req.(*structpb.Struct)
					rq := request{ID: s.GetFields()["id"].GetStringValue(), Bad: s.GetFields()["bad"].GetStringValue()}
					if err := r.handle(ctx, op.Name, op, op.Steps, rq); err != nil {
						return nil, err
					}
					return structpb.NewStruct(map[string]any{"service": r.svc.Name, "ok": true})
				}
				if icpt == nil {
					return h(ctx, in)
				}
				return icpt(ctx, in, &grpc.UnaryServerInfo{Server: r, FullMethod: full}, h)
			}})
	}
	return sd
}

// mux routes the replica's HTTP operations (Go 1.22 patterns: otelhttp
// names the server span after the matched pattern).
func (r *Replica) mux() *http.ServeMux {
	m := http.NewServeMux()
	for i := range r.svc.Ops {
		op := &r.svc.Ops[i]
		_, route := topo.SplitRoute(op.Name)
		m.HandleFunc(op.Name, func(w http.ResponseWriter, hr *http.Request) {
			// otelhttp names the span after the matched pattern and puts
			// http.route on its metrics, but not on the span: add it.
			trace.SpanFromContext(hr.Context()).SetAttributes(semconv.HTTPRoute(route))
			req := request{ID: hr.PathValue("id"), Bad: hr.URL.Query().Get("bad")}
			if req.ID == "" {
				req.ID = hr.URL.Query().Get("id")
			}
			var err error
			if hr.Method == http.MethodPost || hr.Method == http.MethodPut {
				if derr := json.NewDecoder(io.LimitReader(hr.Body, 64<<10)).Decode(&req); derr != nil {
					http.Error(w, `{"error":"malformed request"}`, http.StatusBadRequest)
					r.stats.requests.Add(1)
					r.stats.rejected.Add(1)
					return
				}
			}
			err = r.handle(hr.Context(), op.Name, op, op.Steps, req)
			w.Header().Set("Content-Type", "application/json")
			code := httpStatus(err)
			w.WriteHeader(code)
			if err != nil {
				_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
				return
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"service": r.svc.Name, "ok": true})
		})
	}
	return m
}

// applyFault puts a new fault state into effect where it is not read per
// request: the leak and the spinner.
func (r *Replica) applyFault(f Fault) {
	if r.db != nil {
		r.db.setLeak(f.LeakSeconds)
	}
	r.spin.set(f.SpinDuty)
}

// Stats returns the replica's counters.
func (r *Replica) Stats() Stats {
	s := Stats{
		Requests: r.stats.requests.Load(), Failed: r.stats.failed.Load(), Cancelled: r.stats.cancelled.Load(), Rejected: r.stats.rejected.Load(),
		Injected: r.stats.injected.Load(), Fallbacks: r.stats.fallbacks.Load(),
		Jobs: r.stats.jobs.Load(), JobsFailed: r.stats.jobsFailed.Load(),
		LatencyMicros: r.stats.latencyMicros.Load(), Fault: r.faults.get(),
	}
	if r.db != nil {
		s.Leaked = r.db.leakedCount()
	}
	return s
}

// Stop drains and stops the replica: it stops taking requests, lets
// in-flight ones finish (bounded by ctx), stops the consumers, closes the
// clients and the pool and flushes telemetry. It is idempotent.
func (r *Replica) Stop(ctx context.Context) error {
	var errs []error
	r.stopOnce.Do(func() {
		r.ready.Store(false)
		if r.grpcSrv != nil {
			done := make(chan struct{})
			go func() { r.grpcSrv.GracefulStop(); close(done) }()
			select {
			case <-done:
			case <-ctx.Done():
				r.grpcSrv.Stop()
			}
		}
		if r.httpSrv != nil {
			if err := r.httpSrv.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("cannot drain HTTP server: %w", err))
			}
		}
		if r.cancel != nil {
			r.cancel()
		}
		r.wg.Wait()
		r.spin.set(0)
		for _, c := range r.conns {
			_ = c.Close()
		}
		if r.db != nil {
			errs = append(errs, r.db.close())
		}
		if r.tel != nil {
			errs = append(errs, r.tel.shutdown(ctx))
		}
		if r.adminSrv != nil {
			_ = r.adminSrv.Close()
		}
	})
	return errors.Join(errs...)
}
