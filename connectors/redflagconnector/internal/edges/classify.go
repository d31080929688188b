// Package edges turns spans, logs and metrics into the pre-aggregated
// observations the detector core consumes: caller -> callee edges from client
// spans (callee and error class across semantic-convention generations),
// inbound health from server spans, parent/child joins inside one process
// (propagation, sibling retries, fan-out, own failures), error-log counts and
// templates, and saturation samples.
package edges

import (
	"strconv"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigilhq/vigil/connectors/redflagconnector/internal/detect"
	"github.com/vigilhq/vigil/internal/redflag"
)

// facts are the attributes of one span that matter, read in a single pass.
type facts struct {
	peer       redflag.Peer
	httpStatus int64 // -1 absent
	grpcCode   int64 // -1 absent
	errorType  string
	resend     int64
	// For claims on server spans: the address the service was reached at.
	localAddr, hostName string
	// For the operation of a client call (retries repeat one).
	route, statement string
}

func (f *facts) reset() {
	*f = facts{httpStatus: -1, grpcCode: -1}
}

// read fills f from the span's attributes: one pass, no allocation.
func (f *facts) read(attrs pcommon.Map) {
	f.reset()
	for k, v := range attrs.All() {
		if f.peer.Set(k, v) {
			continue
		}
		switch k {
		case "http.response.status_code", "http.status_code":
			f.httpStatus = intValue(v)
		case "rpc.grpc.status_code":
			f.grpcCode = intValue(v)
		case "rpc.response.status_code":
			if f.grpcCode < 0 {
				f.grpcCode = grpcCodeValue(v)
			}
		case "error.type":
			f.errorType = v.Str()
		case "http.request.resend_count":
			f.resend = intValue(v)
		case "network.local.address", "net.host.ip", "net.sock.host.addr":
			f.localAddr = v.Str()
		case "net.host.name":
			f.hostName = v.Str()
		case "http.route", "url.template":
			f.route = v.Str()
		case "db.query.text", "db.statement":
			f.statement = v.Str()
		}
	}
}

func intValue(v pcommon.Value) int64 {
	switch v.Type() {
	case pcommon.ValueTypeInt:
		return v.Int()
	case pcommon.ValueTypeStr:
		n, err := strconv.ParseInt(v.Str(), 10, 64)
		if err == nil {
			return n
		}
	case pcommon.ValueTypeDouble:
		return int64(v.Double())
	}
	return -1
}

var grpcCodes = map[string]int64{
	"OK": 0, "CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4, "NOT_FOUND": 5,
	"ALREADY_EXISTS": 6, "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8, "FAILED_PRECONDITION": 9,
	"ABORTED": 10, "OUT_OF_RANGE": 11, "UNIMPLEMENTED": 12, "INTERNAL": 13, "UNAVAILABLE": 14,
	"DATA_LOSS": 15, "UNAUTHENTICATED": 16,
}

func grpcCodeValue(v pcommon.Value) int64 {
	if v.Type() == pcommon.ValueTypeStr {
		if c, ok := grpcCodes[strings.ToUpper(v.Str())]; ok {
			return c
		}
	}
	return intValue(v)
}

// gRPC codes that are the caller's fault, counted apart like HTTP 4xx.
func grpcClientCode(c int64) bool {
	switch c {
	case 3, 5, 6, 7, 9, 11, 16: // INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, PERMISSION_DENIED, FAILED_PRECONDITION, OUT_OF_RANGE, UNAUTHENTICATED
		return true
	}
	return false
}

// outcome classifies a span. An error is status ERROR, HTTP >= 500 (and 408,
// 429), a gRPC code other than OK, CANCELLED and the client-fault codes, or
// error.type. HTTP 4xx and client-fault gRPC codes count apart (Client4xx),
// even where an instrumentation set status ERROR on a client span for them,
// as the semantic conventions tell it to. A call its caller abandoned (gRPC
// CANCELLED, HTTP 499, an error naming cancellation) counts apart too
// (Cancelled): an errgroup cancelling the siblings of a failed call, a hedge
// cancelling the slower attempt, a caller giving up are no failure of the
// callee. msg is the span's status message, read only for failures whose
// class the attributes do not tell (otelhttp sets error.type to the Go type,
// *url.Error, and says what happened only in the message).
func (f *facts) outcome(status ptrace.StatusCode, msg string) detect.Outcome {
	o := detect.Outcome{Class: detect.ClassOther}
	switch s := f.httpStatus; {
	case s >= 500:
		o.Failed = true
		switch s {
		case 504:
			o.Class = detect.ClassTimeout
		case 503:
			o.Class = detect.ClassOverload
		}
	case s == 499:
		o.Cancelled = true
		return o
	case s == 408:
		o.Failed, o.Class = true, detect.ClassTimeout
		return o
	case s == 429:
		o.Failed, o.Class = true, detect.ClassOverload
		return o
	case s >= 400:
		o.Client4xx = true
	}
	if c := f.grpcCode; c > 0 {
		switch {
		case c == 1: // CANCELLED
			if !o.Failed {
				return detect.Outcome{Cancelled: true}
			}
		case grpcClientCode(c):
			o.Client4xx = o.Client4xx || !o.Failed
		default:
			o.Failed = true
			switch c {
			case 4:
				o.Class, o.OwnTimeout = detect.ClassTimeout, f.httpStatus < 0
			case 8, 14:
				o.Class = detect.ClassOverload
			}
		}
	}
	if o.Client4xx && !o.Failed {
		return o
	}
	o.Client4xx = false
	if f.errorType != "" && !numeric(f.errorType) {
		o.Failed = true
		if c, ok := errorTypeClass(f.errorType); ok && o.Class == detect.ClassOther {
			o.Class = c
			o.OwnTimeout = c == detect.ClassTimeout && f.httpStatus < 0
		}
	}
	if status == ptrace.StatusCodeError {
		o.Failed = true
	}
	if o.Failed && o.Class == detect.ClassOther && f.httpStatus < 0 && f.grpcCode <= 0 {
		// No status code: the call failed before an answer came, and the
		// error's type or message says why.
		if (mentionsCancel(f.errorType) || mentionsCancel(msg)) && !isTimeout(f.errorType) && !isTimeout(msg) {
			return detect.Outcome{Cancelled: true}
		}
		if c, ok := errorTypeClass(msg); ok {
			o.Class = c
			o.OwnTimeout = c == detect.ClassTimeout
		}
	}
	return o
}

// mentionsCancel reports whether an error type or message names a
// cancellation ("context canceled", "CancellationException", "operation was
// canceled"). A cancellation that names a timeout is a timeout (Go's
// "request canceled (Client.Timeout exceeded ...)", .NET's
// TaskCanceledException "due to the configured HttpClient.Timeout"): the
// caller checks isTimeout too.
func mentionsCancel(s string) bool {
	return s != "" && strings.Contains(strings.ToLower(s), "cancel")
}

func isTimeout(s string) bool {
	c, ok := errorTypeClass(s)
	return ok && c == detect.ClassTimeout
}

func numeric(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return len(s) > 0
}

// errorTypeClass reads a class from error.type values seen in the wild
// ("timeout", "java.net.SocketTimeoutException", "circuit_breaker_open",
// "java.net.ConnectException", "ECONNREFUSED", "RESOURCE_EXHAUSTED", ...).
func errorTypeClass(t string) (detect.Class, bool) {
	l := strings.ToLower(t)
	switch {
	case strings.Contains(l, "timeout") || strings.Contains(l, "deadline") || strings.Contains(l, "timed out") || strings.Contains(l, "timedout"):
		return detect.ClassTimeout, true
	case strings.Contains(l, "circuit") || strings.Contains(l, "breaker") || strings.Contains(l, "bulkhead"):
		return detect.ClassCircuitOpen, true
	case strings.Contains(l, "connect") || strings.Contains(l, "refused") || strings.Contains(l, "reset") ||
		strings.Contains(l, "unreachable") || strings.Contains(l, "dns") || strings.Contains(l, "no such host") || strings.Contains(l, "unknownhost"):
		return detect.ClassConnect, true
	case strings.Contains(l, "exhausted") || strings.Contains(l, "overload") || strings.Contains(l, "throttl") ||
		strings.Contains(l, "rate_limit") || strings.Contains(l, "ratelimit") || strings.Contains(l, "too_many") || strings.Contains(l, "unavailable"):
		return detect.ClassOverload, true
	}
	return detect.ClassOther, false
}

// SpanCall classifies one span as the connector does: how it ended and, for
// a client span, the callee name it gives and what kind of name that is
// (KindDatabase or KindQueue for any database or broker call). The
// evaluation's mesh emulator uses it to say what a sidecar would have
// reported for the same call.
func SpanCall(sp ptrace.Span) (callee string, kind redflag.Kind, o detect.Outcome) {
	var f facts
	f.read(sp.Attributes())
	var msg string
	if sp.Status().Code() == ptrace.StatusCodeError {
		msg = sp.Status().Message()
	}
	callee, kind = f.peer.Callee()
	switch {
	case f.peer.Database():
		kind = redflag.KindDatabase
	case f.peer.Messaging():
		kind = redflag.KindQueue
	}
	return callee, kind, f.outcome(sp.Status().Code(), msg)
}
