package simulate

// rkind is the outcome of a request or of one call attempt.
type rkind uint8

const (
	rOK          rkind = iota
	rClient            // 4xx: result.code is 400 or 404
	rInternal          // a bug: 500 / INTERNAL
	rUnavailable       // 503 / UNAVAILABLE
	rOverload          // rejected, queue full: 503 / RESOURCE_EXHAUSTED (429 from an external API)
	rDepTimeout        // a dependency timed out: 504 / DEADLINE_EXCEEDED
	rDepFailed         // a dependency failed: 500 (502 at the entry) / UNKNOWN
	rPoolTimeout       // no database connection in time: 500 / UNKNOWN
	rExtError          // an external dependency answered with an error
	rTimeout           // client side: the attempt timed out
	rConnect           // client side: connection refused
	rBreaker           // client side: circuit breaker open
	rCancelled         // client side: the caller cancelled the call (a failed sibling)
)

type result struct {
	kind rkind
	code int16 // rClient: the HTTP status
	// late is how long (ns) a CPU-starved caller took to handle the answer
	// after it arrived: in its client span, not in what a sidecar measures.
	late int64
}

func (r result) ok() bool     { return r.kind == rOK }
func (r result) failed() bool { return r.kind != rOK && r.kind != rClient && r.kind != rCancelled }

// propagate maps a failed call to the caller's own outcome.
func propagate(r result) result {
	switch r.kind {
	case rTimeout, rDepTimeout:
		return result{kind: rDepTimeout}
	case rUnavailable, rOverload, rBreaker, rConnect:
		return result{kind: rUnavailable}
	case rClient:
		return r
	}
	return result{kind: rDepFailed}
}

// retryable says whether a client retries after r (when attempts remain).
func (s *site) retryable(r result) bool {
	switch r.kind {
	case rConnect, rUnavailable:
		return true
	case rTimeout:
		return s.spec.RetryTimeouts
	case rOverload:
		// HTTP clients retry 503 and 429; gRPC retry policies usually only
		// name UNAVAILABLE.
		return s.svc == nil || s.svc.spec.Protocol == HTTP
	case rExtError:
		// A third-party API's 502, 503, 408 and 429 are worth another try.
		return s.ext != nil && s.ext.spec.Kind == ExternalHTTP && r.code != 500
	case rDepTimeout, rDepFailed:
		// 504 and 502 are retried by HTTP clients; gRPC UNKNOWN and
		// DEADLINE_EXCEEDED are not.
		return s.svc != nil && s.svc.spec.Protocol == HTTP && s.svc.httpStatus(r) != 500
	}
	return false
}
