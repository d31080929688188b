package service

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigilhq/vigil/benchmarks/testbed/topo"
)

// Values of a request's "bad" field: the load generator's invalid requests.
const (
	// BadMalformed requests are rejected by the front door (400).
	BadMalformed = "malformed"
	// BadUnknown requests name an unknown entity: the first validating
	// service rejects them (INVALID_ARGUMENT / 404) and callers pass the
	// client error back.
	BadUnknown = "unknown"
)

// request is what every operation takes.
type request struct {
	ID  string `json:"id"`
	Bad string `json:"bad,omitempty"`
}

// handle serves one inbound request (or a job) and counts it. A server-side
// failure is logged as an error with the request's context (so the log
// record carries its trace and span id).
func (r *Replica) handle(ctx context.Context, what string, op *topo.Op, steps []topo.Step, req request) error {
	start := time.Now()
	r.stats.requests.Add(1)
	err := r.run(ctx, op, steps, req)
	r.stats.latencyMicros.Add(time.Since(start).Microseconds())
	switch code := status.Code(err); {
	case err == nil:
	case clientError(code):
		r.stats.rejected.Add(1)
	case code == codes.Canceled:
		// The caller gave up (a hedge's loser, a cancelled fan-out sibling).
		r.stats.cancelled.Add(1)
	default:
		r.stats.failed.Add(1)
		r.tel.log.ErrorContext(ctx, "cannot "+what, "error", err.Error(), "rpc.response.status_code", code.String(), "request.id", req.ID)
	}
	return err
}

// run applies the replica's fault, validates, works and runs the steps.
func (r *Replica) run(ctx context.Context, op *topo.Op, steps []topo.Step, req request) error {
	f := r.faults.get()
	if f.DelayMS > 0 {
		if err := sleep(ctx, time.Duration(f.DelayMS*(0.9+0.2*rand.Float64())*float64(time.Millisecond))); err != nil {
			return status.FromContextError(err).Err()
		}
	}
	name := ""
	if op != nil {
		name = op.Name
	}
	if f.ErrorShare > 0 && (f.ErrorMethod == "" || f.ErrorMethod == name) && rand.Float64() < f.ErrorShare {
		r.stats.injected.Add(1)
		return status.Error(codes.Internal, "internal error: invariant violated while processing "+req.ID)
	}
	if op != nil && op.Front && req.Bad == BadMalformed {
		return status.Error(codes.InvalidArgument, "malformed request")
	}
	if op != nil && op.Validates && req.Bad == BadUnknown {
		if r.svc.Protocol == topo.HTTP {
			return status.Error(codes.NotFound, "unknown id "+req.ID)
		}
		return status.Error(codes.InvalidArgument, "unknown id "+req.ID)
	}
	r.work.burn()
	if op != nil && op.Sleep > 0 {
		if err := sleep(ctx, time.Duration(float64(op.Sleep)*(0.7+0.6*rand.Float64()))); err != nil {
			return status.FromContextError(err).Err()
		}
	}
	for _, st := range steps {
		if err := r.step(ctx, st, req); err != nil {
			return err
		}
	}
	return nil
}

// step runs one step of an operation.
func (r *Replica) step(ctx context.Context, st topo.Step, req request) error {
	switch st.Kind {
	case topo.Call:
		return r.call(ctx, st.Calls[0], req)
	case topo.FanOut:
		// errgroup.WithContext cancels the siblings' context when one call
		// fails: their in-flight RPCs end CANCELLED.
		g, gctx := errgroup.WithContext(ctx)
		for _, c := range st.Calls {
			g.Go(func() error { return r.call(gctx, c, req) })
		}
		return g.Wait()
	case topo.Query:
		return r.db.query(ctx, st.SQL, req.ID)
	case topo.Publish:
		return r.publish(ctx, st.Queue, req)
	case topo.Async:
		c := st.Calls[0]
		if c.Share > 0 && rand.Float64() >= c.Share {
			return nil
		}
		select {
		case r.async <- struct{}{}:
		default:
			// At most cap(r.async) calls in the background; drop the rest
			// rather than pile up goroutines.
			return nil
		}
		actx := context.WithoutCancel(ctx)
		go func() {
			defer func() { <-r.async }()
			if err := r.call(actx, c, req); err != nil {
				r.tel.log.WarnContext(actx, "cannot notify "+c.Service, "error", err.Error())
			}
		}()
		return nil
	}
	return status.Errorf(codes.Internal, "unknown step kind %d", st.Kind)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// clientError says whether a code is the client's fault (4xx).
func clientError(c codes.Code) bool {
	switch c {
	case codes.InvalidArgument, codes.NotFound, codes.AlreadyExists, codes.FailedPrecondition, codes.OutOfRange:
		return true
	}
	return false
}

// httpStatus maps a handler error to an HTTP status code.
func httpStatus(err error) int {
	switch status.Code(err) {
	case codes.OK:
		return http.StatusOK
	case codes.InvalidArgument, codes.OutOfRange, codes.FailedPrecondition:
		return http.StatusBadRequest
	case codes.NotFound:
		return http.StatusNotFound
	case codes.Canceled:
		return 499 // client closed the request, as nginx says it
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	case codes.Unavailable, codes.ResourceExhausted:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// codeFromHTTP maps a callee's HTTP status to a code.
func codeFromHTTP(s int) codes.Code {
	switch {
	case s == http.StatusBadRequest:
		return codes.InvalidArgument
	case s == http.StatusNotFound:
		return codes.NotFound
	case s == http.StatusGatewayTimeout:
		return codes.DeadlineExceeded
	case s == http.StatusServiceUnavailable || s == http.StatusBadGateway:
		return codes.Unavailable
	case s == 499:
		return codes.Canceled
	case s >= 400 && s < 500:
		return codes.InvalidArgument
	}
	return codes.Internal
}

// codeFromErr maps a transport or context error to a code.
func codeFromErr(err error) codes.Code {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	}
	return codes.Unavailable
}
