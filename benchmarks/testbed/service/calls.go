package service

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sony/gobreaker/v2"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/vigilhq/vigil/benchmarks/testbed/topo"
)

// call makes one outbound call with its pattern: a breaker with a fallback,
// a hedged request, HTTP retries, or a single attempt. gRPC retries are the
// channel's (service config), invisible here.
func (r *Replica) call(ctx context.Context, c topo.CallSpec, req request) error {
	callee, ok := r.topo.Service(c.Service)
	if !ok {
		return status.Errorf(codes.Internal, "cannot call %s: unknown service", c.Service)
	}
	switch {
	case c.Breaker:
		cb := r.breakers[c.Service+" "+c.Method]
		_, err := cb.Execute(func() (struct{}, error) { return struct{}{}, r.attempt(ctx, c, callee, req) })
		if err != nil {
			// The fallback: a cached/default answer; the caller's request
			// goes on.
			r.stats.fallbacks.Add(1)
		}
		return nil
	case c.Hedge > 0:
		return r.hedged(ctx, c, callee, req)
	case c.HTTPRetries > 0 && callee.Protocol == topo.HTTP:
		return r.retried(ctx, c, callee, req)
	}
	return r.attempt(ctx, c, callee, req)
}

// newBreaker is the breaker of one call site: it opens after 5 consecutive
// failures (or half of at least 10 calls in a 10 s window) for 5 s.
func newBreaker(name string) *gobreaker.CircuitBreaker[struct{}] {
	return gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        name,
		MaxRequests: 2,
		Interval:    10 * time.Second,
		Timeout:     5 * time.Second,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.ConsecutiveFailures >= 5 || (c.Requests >= 10 && c.TotalFailures*2 >= c.Requests)
		},
	})
}

// hedged sends a second attempt if the first has not answered after c.Hedge
// and takes the first success; returning cancels the loser (its span ends
// CANCELLED).
func (r *Replica) hedged(ctx context.Context, c topo.CallSpec, callee *topo.Service, req request) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan error, 2)
	launch := func() {
		go func() { results <- r.attempt(ctx, c, callee, req) }()
	}
	launch()
	timer := time.NewTimer(c.Hedge)
	defer timer.Stop()
	inflight, hedgedYet := 1, false
	var last error
	for inflight > 0 {
		select {
		case err := <-results:
			inflight--
			if err == nil {
				return nil
			}
			last = err
		case <-timer.C:
			if !hedgedYet {
				hedgedYet = true
				inflight++
				launch()
			}
		}
	}
	return last
}

// resendKey carries http.request.resend_count to the otelhttp client span
// (set through otelhttp.WithClientTrace, which sees the span's context).
type resendKey struct{}

// retried retries an HTTP call on 5xx and connection errors, with
// exponential backoff and jitter; each attempt is its own client span, the
// retries with http.request.resend_count.
func (r *Replica) retried(ctx context.Context, c topo.CallSpec, callee *topo.Service, req request) error {
	backoff := 50 * time.Millisecond
	for i := 0; ; i++ {
		actx := ctx
		if i > 0 {
			actx = context.WithValue(ctx, resendKey{}, i)
		}
		err := r.attempt(actx, c, callee, req)
		code := status.Code(err)
		if err == nil || i >= c.HTTPRetries || (code != codes.Internal && code != codes.Unavailable) {
			return err
		}
		if serr := sleep(ctx, time.Duration(float64(backoff)*(0.5+rand.Float64()))); serr != nil {
			return err
		}
		backoff *= 2
	}
}

// markResend sets http.request.resend_count on the client span in ctx if the
// request is a retry.
func markResend(ctx context.Context) {
	if n, ok := ctx.Value(resendKey{}).(int); ok && n > 0 {
		trace.SpanFromContext(ctx).SetAttributes(semconv.HTTPRequestResendCount(n))
	}
}

// attempt makes one attempt of a call, under the call's own timeout (which
// the inbound deadline may shorten).
func (r *Replica) attempt(ctx context.Context, c topo.CallSpec, callee *topo.Service, req request) error {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	if callee.Protocol == topo.GRPC {
		conn := r.conns[callee.Name]
		in, err := structpb.NewStruct(map[string]any{"id": req.ID, "bad": req.Bad})
		if err != nil {
			return status.Errorf(codes.Internal, "cannot encode request: %v", err)
		}
		out := new(structpb.Struct)
		if err := conn.Invoke(ctx, topo.FullMethod(callee, c.Method), in, out); err != nil {
			return status.Error(status.Code(err), "cannot call "+callee.Name+"."+c.Method+": "+status.Convert(err).Message())
		}
		return nil
	}
	return r.httpAttempt(ctx, c, callee, req)
}

func (r *Replica) httpAttempt(ctx context.Context, c topo.CallSpec, callee *topo.Service, req request) error {
	method, path := topo.SplitRoute(c.Method)
	host := topo.DNSName(r.cfg.Topology, callee.Name)
	if c.ByIP {
		ip, ok := r.peers.pick(callee.Name)
		if !ok {
			return status.Errorf(codes.Unavailable, "cannot call %s: no replicas", callee.Name)
		}
		host = ip
	}
	u := url.URL{Scheme: "http", Host: net.JoinHostPort(host, strconv.Itoa(topo.HTTPPort)), Path: topo.FillPath(path, req.ID)}
	var body io.Reader
	if method == http.MethodPost || method == http.MethodPut {
		b, err := json.Marshal(req)
		if err != nil {
			return status.Errorf(codes.Internal, "cannot encode request: %v", err)
		}
		body = bytes.NewReader(b)
	} else {
		q := url.Values{}
		if !strings.Contains(path, "{") {
			q.Set("id", req.ID)
		}
		if req.Bad != "" {
			q.Set("bad", req.Bad)
		}
		u.RawQuery = q.Encode()
	}
	hreq, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return status.Errorf(codes.Internal, "cannot build request: %v", err)
	}
	if body != nil {
		hreq.Header.Set("Content-Type", "application/json")
	}
	resp, err := r.http.Do(hreq)
	if err != nil {
		return status.Errorf(codeFromErr(err), "cannot call %s: %v", callee.Name, err)
	}
	defer resp.Body.Close()
	// Read to the end so the otelhttp span ends and the connection is reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 400 {
		return status.Errorf(codeFromHTTP(resp.StatusCode), "cannot call %s: %s", callee.Name, resp.Status)
	}
	return nil
}
