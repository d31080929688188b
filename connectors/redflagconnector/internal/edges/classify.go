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
)

// facts are the attributes of one span that matter, read in a single pass.
type facts struct {
	servicePeer, peerService, serverAddr, netPeer string
	dbSystem, dbNamespace, msgDest, url           string
	httpStatus                                    int64 // -1 absent
	grpcCode                                      int64 // -1 absent
	errorType                                     string
	resend                                        int64
}

func (f *facts) reset() {
	*f = facts{httpStatus: -1, grpcCode: -1}
}

// read fills f from the span's attributes: one pass, no allocation.
func (f *facts) read(attrs pcommon.Map) {
	f.reset()
	for k, v := range attrs.All() {
		switch k {
		case "service.peer.name":
			f.servicePeer = v.Str()
		case "peer.service":
			f.peerService = v.Str()
		case "server.address":
			f.serverAddr = v.Str()
		case "net.peer.name":
			f.netPeer = v.Str()
		case "db.system.name":
			f.dbSystem = v.Str()
		case "db.system":
			if f.dbSystem == "" {
				f.dbSystem = v.Str()
			}
		case "db.namespace":
			f.dbNamespace = v.Str()
		case "db.name":
			if f.dbNamespace == "" {
				f.dbNamespace = v.Str()
			}
		case "messaging.destination.name":
			f.msgDest = v.Str()
		case "url.full", "http.url":
			f.url = v.Str()
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

// callee names the dependency of a client span: the first present of
// service.peer.name, peer.service, server.address (net.peer.name), the
// database (system/namespace), the messaging destination, or the URL's host.
// The port is left out: on Kubernetes one name is one service, and a stable
// name keeps alert labels and cardinality stable.
func (f *facts) callee() string {
	switch {
	case f.servicePeer != "":
		return f.servicePeer
	case f.peerService != "":
		return f.peerService
	case f.serverAddr != "":
		return f.serverAddr
	case f.netPeer != "":
		return f.netPeer
	case f.dbSystem != "" && f.dbNamespace != "":
		return f.dbSystem + "/" + f.dbNamespace
	case f.dbSystem != "":
		return f.dbSystem
	case f.msgDest != "":
		return f.msgDest
	case f.url != "":
		return urlHost(f.url)
	}
	return ""
}

func urlHost(u string) string {
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
	if h, _, ok := strings.Cut(rest, ":"); ok && !strings.HasPrefix(rest, "[") {
		rest = h
	}
	return rest
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
// 429), a gRPC code other than OK and the client-fault codes, or error.type.
// HTTP 4xx and client-fault gRPC codes count apart (Client4xx), even where an
// instrumentation set status ERROR on a client span for them, as the
// semantic conventions tell it to.
func (f *facts) outcome(status ptrace.StatusCode) detect.Outcome {
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
		if grpcClientCode(c) {
			o.Client4xx = o.Client4xx || !o.Failed
		} else {
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
	return o
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
