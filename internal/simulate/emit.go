package simulate

import (
	"strconv"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// batch accumulates one Advance call's telemetry, one ResourceSpans and one
// ResourceLogs per instance that emitted something.
type batch struct {
	traces   ptrace.Traces
	logs     plog.Logs
	metrics  pmetric.Metrics
	gen      uint32
	spanSlot []ptrace.SpanSlice
	spanGen  []uint32
	logSlot  []plog.LogRecordSlice
	logGen   []uint32
	scratch  []byte
}

func (b *batch) reset(n int) {
	b.gen++
	b.traces, b.logs, b.metrics = ptrace.NewTraces(), plog.NewLogs(), pmetric.NewMetrics()
	b.grow(n)
}

func (b *batch) grow(n int) {
	for len(b.spanSlot) < n {
		b.spanSlot = append(b.spanSlot, ptrace.SpanSlice{})
		b.spanGen = append(b.spanGen, 0)
		b.logSlot = append(b.logSlot, plog.LogRecordSlice{})
		b.logGen = append(b.logGen, 0)
	}
}

func (inst *instance) putResource(m pcommon.Map) {
	m.EnsureCapacity(len(inst.resourceAttr) + 1)
	for _, kv := range inst.resourceAttr {
		m.PutStr(kv[0], kv[1])
	}
	m.PutStr("k8s.container.name", inst.svc.spec.Name)
}

func (s *Sim) spans(inst *instance) ptrace.SpanSlice {
	b := &s.b
	b.grow(inst.slot + 1)
	if b.spanGen[inst.slot] != b.gen {
		rs := b.traces.ResourceSpans().AppendEmpty()
		inst.putResource(rs.Resource().Attributes())
		ss := rs.ScopeSpans().AppendEmpty()
		ss.Scope().SetName(inst.svc.scope)
		b.spanSlot[inst.slot] = ss.Spans()
		b.spanGen[inst.slot] = b.gen
	}
	return b.spanSlot[inst.slot]
}

func (s *Sim) logRecords(inst *instance) plog.LogRecordSlice {
	b := &s.b
	b.grow(inst.slot + 1)
	if b.logGen[inst.slot] != b.gen {
		rl := b.logs.ResourceLogs().AppendEmpty()
		inst.putResource(rl.Resource().Attributes())
		sl := rl.ScopeLogs().AppendEmpty()
		sl.Scope().SetName(inst.svc.scope)
		b.logSlot[inst.slot] = sl.LogRecords()
		b.logGen[inst.slot] = b.gen
	}
	return b.logSlot[inst.slot]
}

func scopeName(sp *Service) string {
	switch {
	case sp.Language == "java" && sp.Protocol == GRPC:
		return "io.opentelemetry.grpc-1.6"
	case sp.Language == "java":
		return "io.opentelemetry.tomcat-10.0"
	case sp.Language == "go" && sp.Protocol == GRPC:
		return "go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	case sp.Language == "go":
		return "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	case sp.Language == "python":
		return "opentelemetry.instrumentation.flask"
	case sp.Language == "dotnet":
		return "OpenTelemetry.Instrumentation.AspNetCore"
	}
	return "vigil.simulate"
}

func dbQuery(kind, op, table string) string {
	switch {
	case kind == ExternalRedis:
		return op + " cart:?"
	case op == "SELECT":
		return "SELECT id, name, price, qty FROM " + table + " WHERE id = $1"
	case op == "UPDATE":
		return "UPDATE " + table + " SET qty = qty - $1 WHERE id = $2 AND qty >= $1"
	}
	return op + " " + table
}

// httpStatus is the status a service of this protocol answers with.
func (svc *service) httpStatus(r result) int64 {
	switch r.kind {
	case rOK:
		return 200
	case rClient:
		return int64(r.code)
	case rUnavailable, rOverload, rConnect, rBreaker:
		return 503
	case rDepTimeout, rTimeout:
		return 504
	case rDepFailed:
		if svc.isEntry {
			return 502
		}
	}
	return 500
}

func grpcCode(r result) int64 {
	switch r.kind {
	case rOK:
		return 0
	case rCancelled:
		return 1
	case rClient:
		if r.code == 404 {
			return 5
		}
		return 3
	case rInternal:
		return 13
	case rUnavailable, rConnect, rBreaker:
		return 14
	case rOverload:
		return 8
	case rDepTimeout, rTimeout:
		return 4
	}
	return 2
}

var grpcNames = map[int64]string{0: "OK", 1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED", 5: "NOT_FOUND", 8: "RESOURCE_EXHAUSTED", 13: "INTERNAL", 14: "UNAVAILABLE"}

// grpcServerError lists the codes a gRPC server span marks as ERROR (semconv).
func grpcServerError(code int64) bool {
	switch code {
	case 2, 4, 12, 13, 14, 15:
		return true
	}
	return false
}

var statusText = map[int64]string{}

func codeStr(code int64) string {
	if s, ok := statusText[code]; ok {
		return s
	}
	return strconv.FormatInt(code, 10)
}

func init() {
	for _, c := range []int64{200, 400, 404, 408, 429, 500, 502, 503, 504} {
		statusText[c] = strconv.FormatInt(c, 10)
	}
}

func exceptionType(lang string, k rkind) string {
	switch k {
	case rInternal:
		switch lang {
		case "java":
			return "java.lang.NullPointerException"
		case "python":
			return "KeyError"
		case "dotnet":
			return "System.NullReferenceException"
		}
		return "*errors.errorString"
	case rPoolTimeout:
		if lang == "java" {
			return "java.sql.SQLTransientConnectionException"
		}
		return "*pgconn.ConnectError"
	case rTimeout:
		switch lang {
		case "java":
			return "java.net.SocketTimeoutException"
		case "python":
			return "requests.exceptions.ReadTimeout"
		case "dotnet":
			return "System.Threading.Tasks.TaskCanceledException"
		}
		return "*url.Error"
	case rCancelled:
		switch lang {
		case "java":
			return "java.util.concurrent.CancellationException"
		case "python":
			return "asyncio.exceptions.CancelledError"
		case "dotnet":
			return "System.Threading.Tasks.TaskCanceledException"
		}
		return "*url.Error"
	case rConnect:
		switch lang {
		case "java":
			return "java.net.ConnectException"
		case "python":
			return "requests.exceptions.ConnectionError"
		case "dotnet":
			return "System.Net.Http.HttpRequestException"
		}
		return "*net.OpError"
	}
	return ""
}

func errMessage(lang string, k rkind) string {
	switch k {
	case rInternal:
		switch lang {
		case "java":
			return "Cannot invoke \"com.shop.Order.getItems()\" because \"order\" is null"
		case "python":
			return "'sku'"
		case "dotnet":
			return "Object reference not set to an instance of an object."
		}
		return "runtime error: invalid memory address or nil pointer dereference"
	case rUnavailable:
		return "Service Unavailable: overloaded, try again later"
	case rOverload:
		return "request rejected: work queue full"
	case rDepTimeout:
		return "upstream request timeout"
	case rDepFailed:
		return "upstream call failed"
	case rPoolTimeout:
		return "HikariPool-1 - Connection is not available, request timed out"
	case rTimeout:
		switch lang {
		case "java":
			return "Read timed out"
		case "python":
			return "Read timed out. (read timeout)"
		case "dotnet":
			return "The request was canceled due to the configured HttpClient.Timeout"
		}
		return "context deadline exceeded"
	case rConnect:
		return "Connection refused"
	case rCancelled:
		if lang == "dotnet" {
			return "A task was canceled."
		}
		return "context canceled"
	case rBreaker:
		return "CircuitBreaker is OPEN and does not permit further calls"
	case rExtError:
		return "upstream returned an error"
	}
	return ""
}

func (s *Sim) path(route string, id int64) string {
	for i := 0; i+4 <= len(route); i++ {
		if route[i:i+4] == "{id}" {
			b := append(s.b.scratch[:0], route[:i]...)
			b = strconv.AppendInt(b, id, 10)
			b = append(b, route[i+4:]...)
			s.b.scratch = b
			return string(b)
		}
	}
	return route
}

func addException(sp ptrace.Span, typ, msg string, at int64) {
	ev := sp.Events().AppendEmpty()
	ev.SetName("exception")
	ev.SetTimestamp(pcommon.Timestamp(at))
	ev.Attributes().PutStr("exception.type", typ)
	ev.Attributes().PutStr("exception.message", msg)
}

// emitServer writes the SERVER span of a finished request.
func (s *Sim) emitServer(r *request) {
	inst := r.inst
	svc := inst.svc
	op := r.op
	sp := s.spans(inst).AppendEmpty()
	s.stats.Spans++
	sp.SetTraceID(r.trace)
	sp.SetSpanID(r.span)
	if r.from.c != nil {
		sp.SetParentSpanID(r.parent)
	}
	sp.SetName(op.spanName)
	sp.SetKind(ptrace.SpanKindServer)
	start := r.start
	if svc.spec.Language == "go" {
		start = r.arrive // net/http starts a goroutine per request at once
	}
	sp.SetStartTimestamp(pcommon.Timestamp(start))
	// A rejection still takes a moment (accept, parse, answer).
	sp.SetEndTimestamp(pcommon.Timestamp(max(s.now, start+50_000)))
	a := sp.Attributes()
	a.EnsureCapacity(9)
	gen := svc.spec.Semconv
	isErr := false
	if svc.spec.Protocol == HTTP {
		code := svc.httpStatus(r.res)
		isErr = code >= 500
		p := op.route
		if op.idInPath {
			p = s.path(op.route, r.id)
		}
		if gen == Old {
			a.PutStr("http.method", op.method)
			a.PutStr("http.route", op.route)
			a.PutStr("http.target", p)
			a.PutStr("http.scheme", "http")
			a.PutStr("net.host.name", svc.short)
			a.PutInt("net.host.port", 8080)
			a.PutInt("http.status_code", code)
		} else {
			a.PutStr("http.request.method", op.method)
			a.PutStr("http.route", op.route)
			a.PutStr("url.path", p)
			a.PutStr("url.scheme", "http")
			a.PutStr("server.address", svc.short)
			a.PutInt("server.port", 8080)
			a.PutInt("http.response.status_code", code)
			if isErr {
				a.PutStr("error.type", codeStr(code))
			}
		}
	} else {
		code := grpcCode(r.res)
		isErr = grpcServerError(code)
		switch gen {
		case Old:
			a.PutStr("rpc.system", "grpc")
			a.PutStr("rpc.service", svc.rpcSvc)
			a.PutStr("rpc.method", op.rpcName)
			a.PutStr("net.host.name", svc.short)
			a.PutInt("net.host.port", 8080)
			a.PutInt("rpc.grpc.status_code", code)
		case Stable:
			a.PutStr("rpc.system", "grpc")
			a.PutStr("rpc.service", svc.rpcSvc)
			a.PutStr("rpc.method", op.rpcName)
			a.PutStr("server.address", serverAddress(inst))
			a.PutInt("server.port", 8080)
			a.PutInt("rpc.grpc.status_code", code)
		default:
			// The current conventions: a fully qualified rpc.method, no
			// rpc.service.
			a.PutStr("rpc.system.name", "grpc")
			a.PutStr("rpc.method", svc.rpcSvc+"/"+op.rpcName)
			a.PutStr("server.address", serverAddress(inst))
			a.PutInt("server.port", 8080)
			a.PutStr("rpc.response.status_code", grpcNames[code])
			if isErr {
				a.PutStr("error.type", grpcNames[code])
			}
		}
	}
	if isErr {
		sp.Status().SetCode(ptrace.StatusCodeError)
		sp.Status().SetMessage(errMessage(svc.spec.Language, r.res.kind))
		if k := r.res.kind; k == rInternal || k == rPoolTimeout {
			addException(sp, exceptionType(svc.spec.Language, k), errMessage(svc.spec.Language, k), s.now)
		}
	}
}

// emitClient writes the CLIENT span of one call attempt.
// HandledLateAttr is set on the client spans of a CPU-starved caller: how
// long (ns) the caller took to handle the answer after it arrived, a part of
// the span's duration that a sidecar proxy, measuring the call on the wire,
// does not see. Nothing but the red-flag evaluation's mesh emulator reads it.
const HandledLateAttr = "vigil.simulate.handled_late_ns"

func (s *Sim) emitClient(c *call, res result) {
	st := c.site
	caller := c.r.inst
	lang := caller.svc.spec.Language
	gen := caller.svc.spec.Semconv
	sp := s.spans(caller).AppendEmpty()
	s.stats.Spans++
	sp.SetTraceID(c.r.trace)
	sp.SetSpanID(c.span)
	sp.SetParentSpanID(c.r.span)
	sp.SetKind(ptrace.SpanKindClient)
	sp.SetStartTimestamp(pcommon.Timestamp(c.start))
	sp.SetEndTimestamp(pcommon.Timestamp(s.now))
	a := sp.Attributes()
	a.EnsureCapacity(10)
	if res.late > 0 {
		// Only the evaluation's mesh emulator reads it (a sidecar sees the
		// answer when it arrives): see HandledLateAttr.
		a.PutInt(HandledLateAttr, res.late)
	}
	local := res.kind == rTimeout || res.kind == rConnect || res.kind == rBreaker || res.kind == rCancelled
	isErr := false
	errType := ""
	switch {
	case st.ext != nil && st.ext.spec.Kind != ExternalHTTP:
		e := st.ext
		switch gen {
		case Old:
			sp.SetName(st.dbOp + " " + e.spec.Namespace + "." + st.dbTable)
			if e.spec.Kind == ExternalRedis {
				sp.SetName(st.dbOp)
			}
			a.PutStr("db.system", e.spec.Kind)
			a.PutStr("db.name", e.spec.Namespace)
			a.PutStr("db.operation", st.dbOp)
			a.PutStr("db.statement", st.dbQuery)
			a.PutStr("net.peer.name", e.spec.Name)
			a.PutInt("net.peer.port", int64(e.spec.Port))
		default:
			if gen == Latest {
				a.PutStr("db.system.name", e.spec.Kind)
			} else {
				a.PutStr("db.system", e.spec.Kind)
			}
			sp.SetName(st.dbOp + " " + st.dbTable)
			if e.spec.Kind == ExternalRedis {
				sp.SetName(st.dbOp)
			} else {
				a.PutStr("db.collection.name", st.dbTable)
			}
			a.PutStr("db.namespace", e.spec.Namespace)
			a.PutStr("db.operation.name", st.dbOp)
			a.PutStr("db.query.text", st.dbQuery)
			a.PutStr("server.address", e.spec.Name)
			a.PutInt("server.port", int64(e.spec.Port))
		}
		if !res.ok() {
			isErr = true
			switch res.kind {
			case rTimeout:
				errType = "timeout"
				if gen == Latest && e.spec.Kind == ExternalPostgres {
					a.PutStr("db.response.status_code", "57014")
				}
			case rOverload:
				errType = "53300"
				if e.spec.Kind == ExternalRedis {
					errType = "ERR"
				}
			default:
				errType = "40001"
				if e.spec.Kind == ExternalRedis {
					errType = "ERR"
				}
			}
		}
	case st.ext != nil || st.svc.spec.Protocol == HTTP:
		method, url := st.method, st.url
		if st.op != nil && st.op.idInPath {
			url = s.path(url+"{id}", c.r.id)
		}
		var code int64
		if !local {
			if st.svc != nil {
				code = st.svc.httpStatus(res)
			} else {
				code = extHTTPStatus(res)
			}
			isErr = code >= 400
			errType = codeStr(code)
		} else {
			isErr = true
		}
		if gen == Old {
			sp.SetName("HTTP " + method)
			a.PutStr("http.method", method)
			a.PutStr("http.url", url)
			a.PutStr("net.peer.name", st.addr)
			a.PutInt("net.peer.port", st.port)
			if code != 0 {
				a.PutInt("http.status_code", code)
			}
			errType = "" // the old conventions have no error.type
		} else {
			sp.SetName(method)
			a.PutStr("http.request.method", method)
			a.PutStr("url.full", url)
			a.PutStr("server.address", st.addr)
			a.PutInt("server.port", st.port)
			if code != 0 {
				a.PutInt("http.response.status_code", code)
			}
			if c.attempt > 1 {
				a.PutInt("http.request.resend_count", int64(c.attempt-1))
			}
		}
	default: // gRPC
		callee := st.svc
		sp.SetName(st.op.spanName)
		code := grpcCode(res)
		isErr = code != 0
		if res.kind == rBreaker {
			code = -1 // never sent: no gRPC status
		}
		addr := st.addr
		if caller.svc.spec.DialByIP && gen != Old {
			// otelgrpc's stats handler: the peer's address from the
			// connection, none when no connection carried the call.
			addr = ""
			if c.inst != nil && res.kind != rConnect && res.kind != rBreaker {
				addr = c.inst.ip
			}
		}
		switch gen {
		case Old:
			a.PutStr("rpc.system", "grpc")
			a.PutStr("rpc.service", callee.rpcSvc)
			a.PutStr("rpc.method", st.op.rpcName)
			a.PutStr("net.peer.name", st.addr)
			a.PutInt("net.peer.port", st.port)
			if code >= 0 {
				a.PutInt("rpc.grpc.status_code", code)
			}
		case Stable:
			a.PutStr("rpc.system", "grpc")
			a.PutStr("rpc.service", callee.rpcSvc)
			a.PutStr("rpc.method", st.op.rpcName)
			if addr != "" {
				a.PutStr("server.address", addr)
				a.PutInt("server.port", st.port)
			}
			if code >= 0 {
				a.PutInt("rpc.grpc.status_code", code)
			}
		default:
			a.PutStr("rpc.system.name", "grpc")
			a.PutStr("rpc.method", callee.rpcSvc+"/"+st.op.rpcName)
			if addr != "" {
				a.PutStr("server.address", addr)
				a.PutInt("server.port", st.port)
			}
			if code >= 0 {
				a.PutStr("rpc.response.status_code", grpcNames[code])
			}
		}
		if isErr && code >= 0 {
			errType = grpcNames[code]
		}
	}
	if caller.svc.spec.PeerService {
		a.PutStr("peer.service", st.spec.Target)
	}
	if !isErr {
		return
	}
	switch res.kind {
	case rTimeout:
		if st.svc != nil && st.svc.spec.Protocol == GRPC {
			errType = "DEADLINE_EXCEEDED"
		} else if st.svc != nil || (st.ext != nil && st.ext.spec.Kind == ExternalHTTP) {
			errType = "timeout"
		}
	case rConnect:
		errType = exceptionType(lang, rConnect)
	case rBreaker:
		errType = "circuit_breaker_open"
	case rCancelled:
		if st.svc != nil && st.svc.spec.Protocol == GRPC {
			errType = "CANCELLED"
		} else {
			errType = exceptionType(lang, rCancelled)
		}
	}
	sp.Status().SetCode(ptrace.StatusCodeError)
	sp.Status().SetMessage(clientMessage(lang, res))
	if gen == Old {
		// Old Java agents record the exception, not error.type.
		if res.kind == rTimeout || res.kind == rConnect {
			addException(sp, exceptionType(lang, res.kind), errMessage(lang, res.kind), s.now)
		}
		if res.kind == rBreaker {
			a.PutStr("error.type", errType)
		}
		return
	}
	if errType != "" {
		a.PutStr("error.type", errType)
	}
}

func extHTTPStatus(r result) int64 {
	switch r.kind {
	case rOK:
		return 200
	case rOverload:
		return 429
	case rExtError:
		if r.code != 0 {
			return int64(r.code)
		}
		return 502
	}
	return 500
}

func clientMessage(lang string, r result) string {
	switch r.kind {
	case rTimeout, rConnect, rBreaker, rCancelled:
		return errMessage(lang, r.kind)
	case rClient:
		return ""
	}
	return "upstream returned an error"
}

// --- logs ----------------------------------------------------------------------

func (s *Sim) log(inst *instance, sev plog.SeverityNumber, body string, trace [16]byte, span [8]byte) plog.LogRecord {
	lr := s.logRecords(inst).AppendEmpty()
	s.stats.Logs++
	lr.SetTimestamp(pcommon.Timestamp(s.now))
	lr.SetObservedTimestamp(pcommon.Timestamp(s.now))
	lr.SetSeverityNumber(sev)
	switch sev {
	case plog.SeverityNumberError:
		lr.SetSeverityText("ERROR")
	case plog.SeverityNumberWarn:
		lr.SetSeverityText("WARN")
	default:
		lr.SetSeverityText("INFO")
	}
	lr.Body().SetStr(body)
	if trace != ([16]byte{}) {
		lr.SetTraceID(trace)
		lr.SetSpanID(span)
	}
	return lr
}

func (s *Sim) sb() []byte { return s.b.scratch[:0] }

func (s *Sim) logRetry(c *call, res result, backoff int64) {
	b := append(s.sb(), "Retrying "...)
	b = append(b, c.site.spec.Target...)
	b = append(b, ' ')
	b = append(b, c.site.spec.Op...)
	b = append(b, " (attempt "...)
	b = strconv.AppendInt(b, int64(c.attempt+1), 10)
	b = append(b, '/')
	b = strconv.AppendInt(b, int64(c.site.spec.Attempts), 10)
	b = append(b, ") in "...)
	b = strconv.AppendInt(b, backoff/1e6, 10)
	b = append(b, "ms after: "...)
	b = s.appendErr(b, c, res)
	s.b.scratch = b
	s.log(c.r.inst, plog.SeverityNumberWarn, string(b), c.r.trace, c.r.span)
}

func (s *Sim) appendErr(b []byte, c *call, res result) []byte {
	switch res.kind {
	case rTimeout:
		b = append(b, "timed out after "...)
		b = strconv.AppendInt(b, int64(c.site.spec.Timeout/time.Millisecond), 10)
		return append(b, "ms"...)
	case rConnect:
		b = append(b, "connection refused: "...)
		b = append(b, c.site.addr...)
		return append(b, ':', '8', '0', '8', '0')
	case rBreaker:
		return append(b, "circuit breaker open"...)
	case rPoolTimeout:
		return append(b, "connection is not available, request timed out"...)
	}
	if st := c.site; st.svc != nil {
		if st.svc.spec.Protocol == GRPC {
			return append(b, grpcNames[grpcCode(res)]...)
		}
		b = append(b, "status "...)
		return strconv.AppendInt(b, st.svc.httpStatus(res), 10)
	}
	return append(b, errMessage("", res.kind)...)
}

func (s *Sim) logFallback(c *call, res result) {
	b := append(s.sb(), "Falling back for "...)
	b = append(b, c.site.spec.Target...)
	b = append(b, ": "...)
	b = s.appendErr(b, c, res)
	b = append(b, "; serving a degraded response"...)
	s.b.scratch = b
	s.log(c.r.inst, plog.SeverityNumberWarn, string(b), c.r.trace, c.r.span)
}

func (s *Sim) logBreakerOpen(c *call) {
	b := append(s.sb(), "CircuitBreaker '"...)
	b = append(b, c.site.spec.Target...)
	b = append(b, "' changed state from CLOSED to OPEN"...)
	s.b.scratch = b
	s.log(c.r.inst, plog.SeverityNumberWarn, string(b), [16]byte{}, [8]byte{})
}

func (s *Sim) logLifecycle(inst *instance, msg string) {
	s.log(inst, plog.SeverityNumberInfo, msg, [16]byte{}, [8]byte{})
}

// infoShare is the share of successful requests that write an INFO line.
const infoShare = 0.01

// recordRequest counts a finished request in its instance's metrics and
// writes its log lines.
func (s *Sim) recordRequest(r *request) {
	inst, svc := r.inst, r.inst.svc
	dur := float64(s.now-r.arrive) / 1e9
	var code int64
	if svc.spec.Protocol == HTTP {
		code = svc.httpStatus(r.res)
	} else {
		code = grpcCode(r.res)
	}
	var sr *series
	for _, x := range inst.series {
		if x.op == r.op.metricIx && x.code == code {
			sr = x
			break
		}
	}
	if sr == nil && len(inst.series) < 64 {
		sr = &series{op: r.op.metricIx, code: code}
		inst.series = append(inst.series, sr)
	}
	if sr != nil {
		sr.count++
		sr.sum += dur
		i := 0
		for i < len(durBounds) && dur > durBounds[i] {
			i++
		}
		sr.buckets[i]++
	}
	switch {
	case r.res.failed():
		b := append(s.sb(), r.op.spanName...)
		b = append(b, " failed: "...)
		b = append(b, errMessage(svc.spec.Language, r.res.kind)...)
		if r.res.kind == rPoolTimeout {
			b = append(b, " after "...)
			b = strconv.AppendInt(b, int64(inst.pools[0].ext.spec.PoolTimeout/time.Millisecond), 10)
			b = append(b, "ms"...)
		}
		b = append(b, " (order "...)
		b = strconv.AppendInt(b, r.id, 10)
		b = append(b, ')')
		s.b.scratch = b
		lr := s.log(inst, plog.SeverityNumberError, string(b), r.trace, r.span)
		if t := exceptionType(svc.spec.Language, r.res.kind); t != "" {
			lr.Attributes().PutStr("exception.type", t)
		}
	case r.res.kind == rClient:
		if s.rng.Float64() < 0.1 {
			b := append(s.sb(), r.op.spanName...)
			b = append(b, " rejected: "...)
			b = strconv.AppendInt(b, int64(r.res.code), 10)
			if r.res.code == 404 {
				b = append(b, " product "...)
				b = strconv.AppendInt(b, r.id, 10)
				b = append(b, " not found"...)
			} else {
				b = append(b, " invalid request body"...)
			}
			s.b.scratch = b
			s.log(inst, plog.SeverityNumberInfo, string(b), r.trace, r.span)
		}
	case s.rng.Float64() < infoShare:
		b := s.sb()
		switch svc.spec.Name {
		case "checkout":
			b = append(b, "Order "...)
			b = strconv.AppendInt(b, r.id, 10)
			b = append(b, " placed with "...)
			b = strconv.AppendInt(b, 1+r.id%5, 10)
			b = append(b, " items, total "...)
			b = strconv.AppendInt(b, 10+r.id%400, 10)
			b = append(b, ".99 USD"...)
		case "payments":
			b = append(b, "Charge authorized for order "...)
			b = strconv.AppendInt(b, r.id, 10)
			b = append(b, ", card ending "...)
			b = strconv.AppendInt(b, 1000+r.id%9000, 10)
		default:
			b = append(b, r.op.spanName...)
			b = append(b, " completed in "...)
			b = strconv.AppendInt(b, int64(dur*1000), 10)
			b = append(b, "ms"...)
		}
		s.b.scratch = b
		s.log(inst, plog.SeverityNumberInfo, string(b), r.trace, r.span)
	}
}

// --- metrics -------------------------------------------------------------------

// durBounds are the request duration histogram bounds, in seconds.
var durBounds = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}

type series struct {
	op      int
	code    int64
	count   uint64
	sum     float64
	buckets [15]uint64
}

// idleCPU is the CPU an idle container uses (GC, health checks), in cores.
const idleCPU = 0.01

func (s *Sim) emitMetrics() {
	now := pcommon.Timestamp(s.now)
	interval := float64(metricInterval)
	for _, inst := range s.insts {
		if inst.gone || inst.started > s.now {
			continue
		}
		svc := inst.svc
		sp := svc.spec
		rm := s.b.metrics.ResourceMetrics().AppendEmpty()
		inst.putResource(rm.Resource().Attributes())
		sm := rm.ScopeMetrics().AppendEmpty()
		sm.Scope().SetName(svc.scope)
		ms := sm.Metrics()
		start := pcommon.Timestamp(inst.started)
		gauge := func(name, unit string, v float64) pmetric.NumberDataPoint {
			m := ms.AppendEmpty()
			m.SetName(name)
			m.SetUnit(unit)
			dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
			dp.SetTimestamp(now)
			dp.SetDoubleValue(v)
			s.stats.DataPoints++
			return dp
		}
		sum := func(name, unit string, monotonic bool) pmetric.NumberDataPointSlice {
			m := ms.AppendEmpty()
			m.SetName(name)
			m.SetUnit(unit)
			sm := m.SetEmptySum()
			sm.SetIsMonotonic(monotonic)
			sm.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
			return sm.DataPoints()
		}
		point := func(dps pmetric.NumberDataPointSlice) pmetric.NumberDataPoint {
			dp := dps.AppendEmpty()
			dp.SetStartTimestamp(start)
			dp.SetTimestamp(now)
			s.stats.DataPoints++
			return dp
		}
		used := inst.cpuNs - inst.lastCPU + idleCPU*interval
		inst.lastCPU = inst.cpuNs
		gauge("k8s.container.cpu_limit_utilization", "1", min(1, used/(sp.CPU*interval)))
		gauge("k8s.container.cpu_limit", "{cpu}", sp.CPU)
		point(sum("container.cpu.time", "s", true)).SetDoubleValue((inst.cpuNs + idleCPU*float64(s.now-inst.started)) / 1e9)
		inflight := int64(inst.busy + inst.queue.len())
		mem := sp.MemoryBase + int64(float64(sp.MemoryBase)*0.05*inst.memNoise) + inflight*sp.MemoryPerRequest
		mem = min(mem, sp.MemoryLimit*99/100)
		gauge("container.memory.working_set", "By", 0).SetIntValue(mem)
		gauge("k8s.container.memory_limit", "By", 0).SetIntValue(sp.MemoryLimit)
		if sp.Protocol == HTTP {
			point(sum("http.server.active_requests", "{request}", false)).SetIntValue(int64(inst.busy))
		} else {
			point(sum("rpc.server.active_requests", "{request}", false)).SetIntValue(int64(inst.busy))
		}
		s.durationHistogram(ms, inst, start, now)
		for _, p := range inst.pools {
			name := p.ext.spec.Name
			idle := int64(p.max - p.used)
			if sp.Semconv == Old {
				dps := sum("db.client.connections.usage", "{connection}", false)
				for _, st := range [...]struct {
					state string
					v     int64
				}{{"idle", idle}, {"used", int64(p.used)}} {
					dp := point(dps)
					dp.Attributes().PutStr("pool.name", name)
					dp.Attributes().PutStr("state", st.state)
					dp.SetIntValue(st.v)
				}
				pt := point(sum("db.client.connections.max", "{connection}", false))
				pt.Attributes().PutStr("pool.name", name)
				pt.SetIntValue(int64(p.max))
				pt = point(sum("db.client.connections.pending_requests", "{request}", false))
				pt.Attributes().PutStr("pool.name", name)
				pt.SetIntValue(int64(p.pending))
				pt = point(sum("db.client.connections.timeouts", "{timeout}", true))
				pt.Attributes().PutStr("pool.name", name)
				pt.SetIntValue(p.timeouts)
				continue
			}
			dps := sum("db.client.connection.count", "{connection}", false)
			for _, st := range [...]struct {
				state string
				v     int64
			}{{"idle", idle}, {"used", int64(p.used)}} {
				dp := point(dps)
				dp.Attributes().PutStr("db.client.connection.pool.name", name)
				dp.Attributes().PutStr("db.client.connection.state", st.state)
				dp.SetIntValue(st.v)
			}
			pt := point(sum("db.client.connection.max", "{connection}", false))
			pt.Attributes().PutStr("db.client.connection.pool.name", name)
			pt.SetIntValue(int64(p.max))
			pt = point(sum("db.client.connection.pending_requests", "{request}", false))
			pt.Attributes().PutStr("db.client.connection.pool.name", name)
			pt.SetIntValue(int64(p.pending))
			pt = point(sum("db.client.connection.timeouts", "{timeout}", true))
			pt.Attributes().PutStr("db.client.connection.pool.name", name)
			pt.SetIntValue(p.timeouts)
		}
	}
}

func (s *Sim) durationHistogram(ms pmetric.MetricSlice, inst *instance, start, now pcommon.Timestamp) {
	if len(inst.series) == 0 {
		return
	}
	sp := inst.svc.spec
	m := ms.AppendEmpty()
	scale := 1.0
	switch {
	case sp.Protocol == HTTP && sp.Semconv == Old:
		m.SetName("http.server.duration")
		m.SetUnit("ms")
		scale = 1000
	case sp.Protocol == HTTP:
		m.SetName("http.server.request.duration")
		m.SetUnit("s")
	case sp.Semconv == Latest:
		m.SetName("rpc.server.call.duration")
		m.SetUnit("s")
	default:
		m.SetName("rpc.server.duration")
		m.SetUnit("ms")
		scale = 1000
	}
	h := m.SetEmptyHistogram()
	h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	bounds := make([]float64, len(durBounds))
	for i, b := range durBounds {
		bounds[i] = b * scale
	}
	for _, sr := range inst.series {
		dp := h.DataPoints().AppendEmpty()
		s.stats.DataPoints++
		dp.SetStartTimestamp(start)
		dp.SetTimestamp(now)
		dp.SetCount(sr.count)
		dp.SetSum(sr.sum * scale)
		dp.ExplicitBounds().FromRaw(bounds)
		dp.BucketCounts().FromRaw(sr.buckets[:])
		op := inst.svc.ops[sr.op]
		a := dp.Attributes()
		switch {
		case sp.Protocol == HTTP && sp.Semconv == Old:
			a.PutStr("http.method", op.method)
			a.PutStr("http.route", op.route)
			a.PutInt("http.status_code", sr.code)
		case sp.Protocol == HTTP:
			a.PutStr("http.request.method", op.method)
			a.PutStr("http.route", op.route)
			a.PutInt("http.response.status_code", sr.code)
		case sp.Semconv == Latest:
			a.PutStr("rpc.system.name", "grpc")
			a.PutStr("rpc.method", op.rpcName)
			a.PutStr("rpc.response.status_code", grpcNames[sr.code])
		default:
			a.PutStr("rpc.system", "grpc")
			a.PutStr("rpc.service", inst.svc.rpcSvc)
			a.PutStr("rpc.method", op.rpcName)
			a.PutInt("rpc.grpc.status_code", sr.code)
		}
	}
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

// serverAddress is what a Go gRPC server's span names as its own address:
// the pod IP its connection arrived at (otelgrpc reads the local address);
// other servers name the service.
func serverAddress(inst *instance) string {
	if inst.svc.spec.Language == "go" {
		return inst.ip
	}
	return inst.svc.short
}
