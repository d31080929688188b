package edges

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigilhq/vigil/connectors/redflagconnector/internal/detect"
	"github.com/vigilhq/vigil/internal/redflag"
)

type span struct {
	kind            ptrace.SpanKind
	id, parent      byte
	status          ptrace.StatusCode
	attrs           map[string]any
	durationMs      int64
	startMs         int64 // offset from the common start
	traceID         byte
	serviceOverride string
	resource        map[string]any
	name            string
	msg             string
}

func traces(service string, spans ...span) ptrace.Traces {
	td := ptrace.NewTraces()
	bySvc := map[string]ptrace.SpanSlice{}
	for _, s := range spans {
		svc := service
		if s.serviceOverride != "" {
			svc = s.serviceOverride
		}
		ss, ok := bySvc[svc]
		if !ok {
			rs := td.ResourceSpans().AppendEmpty()
			_ = rs.Resource().Attributes().FromRaw(s.resource)
			rs.Resource().Attributes().PutStr("service.name", svc)
			ss = rs.ScopeSpans().AppendEmpty().Spans()
			bySvc[svc] = ss
		}
		sp := ss.AppendEmpty()
		sp.SetKind(s.kind)
		sp.SetTraceID(pcommon.TraceID{s.traceID + 1})
		sp.SetSpanID(pcommon.SpanID{s.id})
		if s.parent != 0 {
			sp.SetParentSpanID(pcommon.SpanID{s.parent})
		}
		sp.Status().SetCode(s.status)
		sp.Status().SetMessage(s.msg)
		sp.SetName(s.name)
		start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(s.startMs) * time.Millisecond)
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Duration(s.durationMs) * time.Millisecond)))
		_ = sp.Attributes().FromRaw(s.attrs)
	}
	return td
}

func TestCalleeAndClassAcrossSemconv(t *testing.T) {
	cases := []struct {
		name      string
		attrs     map[string]any
		status    ptrace.StatusCode
		callee    string
		failed    bool
		class     detect.Class
		client4xx bool
		msg       string
		cancelled bool
		kind      redflag.Kind
	}{
		{"new http 200", map[string]any{"server.address": "payments", "server.port": 8080, "http.response.status_code": 200}, 0, "payments", false, 0, false, "", false, 0},
		{"old http 503", map[string]any{"net.peer.name": "payments.shop.svc.cluster.local", "http.status_code": 503}, 0, "payments.shop.svc.cluster.local", true, detect.ClassOverload, false, "", false, 0},
		{"http 504 timeout", map[string]any{"server.address": "a", "http.response.status_code": 504}, 2, "a", true, detect.ClassTimeout, false, "", false, 0},
		{"http 408 timeout", map[string]any{"server.address": "a", "http.response.status_code": "408"}, 0, "a", true, detect.ClassTimeout, false, "", false, 0},
		{"http 429 overload", map[string]any{"server.address": "a", "http.response.status_code": 429}, 2, "a", true, detect.ClassOverload, false, "", false, 0},
		{"http 404 counted apart despite status error", map[string]any{"server.address": "a", "http.response.status_code": 404, "error.type": "404"}, 2, "a", false, detect.ClassOther, true, "", false, 0},
		{"http 500", map[string]any{"server.address": "a", "http.response.status_code": 500, "error.type": "500"}, 2, "a", true, detect.ClassOther, false, "", false, 0},
		{"peer.service wins", map[string]any{"peer.service": "bank", "server.address": "10.0.0.1"}, 0, "bank", false, 0, false, "", false, 0},
		{"service.peer.name wins", map[string]any{"service.peer.name": "bank2", "peer.service": "bank"}, 0, "bank2", false, 0, false, "", false, 0},
		{"grpc deadline", map[string]any{"rpc.system": "grpc", "server.address": "inventory", "rpc.grpc.status_code": 4}, 2, "inventory", true, detect.ClassTimeout, false, "", false, 0},
		{"grpc unavailable (new name, string)", map[string]any{"server.address": "inventory", "rpc.response.status_code": "UNAVAILABLE"}, 2, "inventory", true, detect.ClassOverload, false, "", false, 0},
		{"grpc resource exhausted", map[string]any{"server.address": "inventory", "rpc.grpc.status_code": 8}, 2, "inventory", true, detect.ClassOverload, false, "", false, 0},
		{"grpc not found is client", map[string]any{"server.address": "inventory", "rpc.grpc.status_code": 5}, 2, "inventory", false, 0, true, "", false, 0},
		{"db new names", map[string]any{"db.system.name": "postgresql", "db.namespace": "inventory"}, 0, "postgresql/inventory", false, 0, false, "", false, 0},
		{"db old names", map[string]any{"db.system": "redis", "db.name": "0"}, 0, "redis/0", false, 0, false, "", false, 0},
		{"db with address", map[string]any{"db.system.name": "postgresql", "server.address": "inventory-db", "server.port": 5432}, 0, "inventory-db", false, 0, false, "", false, 0},
		{"messaging", map[string]any{"messaging.system": "kafka", "messaging.destination.name": "orders"}, 0, "orders", false, 0, false, "", false, 0},
		{"url host fallback", map[string]any{"http.url": "https://user@api.bank.example:443/v1/pay?x=1"}, 0, "api.bank.example", false, 0, false, "", false, 0},
		{"error.type connect", map[string]any{"server.address": "a", "error.type": "java.net.ConnectException"}, 2, "a", true, detect.ClassConnect, false, "", false, 0},
		{"error.type circuit", map[string]any{"server.address": "a", "error.type": "circuit_breaker_open"}, 2, "a", true, detect.ClassCircuitOpen, false, "", false, 0},
		{"error.type timeout", map[string]any{"server.address": "a", "error.type": "timeout"}, 0, "a", true, detect.ClassTimeout, false, "", false, 0},
		{"status error only", map[string]any{"server.address": "a"}, 2, "a", true, detect.ClassOther, false, "", false, 0},
		{"no callee", map[string]any{"http.request.method": "GET"}, 0, "", false, 0, false, "", false, redflag.KindNone},
		// What current instrumentations emit (otelgrpc v0.70, otelhttp v0.71).
		{"otelgrpc: peer IP", map[string]any{"rpc.system.name": "grpc", "rpc.method": "ledger.v1.Rates/Get", "server.address": "10.1.0.7", "server.port": 50051, "rpc.response.status_code": "OK"}, 0, "10.1.0.7", false, 0, false, "", false, redflag.KindAddress},
		{"otelgrpc: refused before a connection carried it", map[string]any{"rpc.system.name": "grpc", "rpc.method": "ledger.v1.Rates/Get", "rpc.response.status_code": "UNAVAILABLE"}, 2, "ledger.v1.Rates", true, detect.ClassOverload, false, "connection error: desc = \"transport: Error while dialing: dial tcp 10.1.0.7:50051: connect: connection refused\"", false, redflag.KindRPC},
		{"otelgrpc: sibling cancelled by errgroup", map[string]any{"rpc.method": "search.v1.Shard/Query", "server.address": "10.1.0.9", "rpc.response.status_code": "CANCELLED"}, 2, "10.1.0.9", false, 0, false, "context canceled", true, redflag.KindAddress},
		{"old grpc cancelled", map[string]any{"rpc.service": "search.Shard", "server.address": "shard-1", "rpc.grpc.status_code": 1}, 2, "shard-1", false, 0, false, "", true, redflag.KindHost},
		{"otelhttp: caller cancelled", map[string]any{"http.request.method": "GET", "url.full": "http://10.1.0.4:8080/rank", "server.address": "10.1.0.4", "error.type": "*url.Error"}, 2, "10.1.0.4", false, 0, false, "Get \"http://10.1.0.4:8080/rank\": context canceled", true, redflag.KindAddress},
		{"otelhttp: deadline", map[string]any{"server.address": "ranker.search.svc.cluster.local", "error.type": "*url.Error"}, 2, "ranker.search.svc.cluster.local", true, detect.ClassTimeout, false, "Get \"http://ranker.search.svc.cluster.local:8080/rank\": context deadline exceeded", false, redflag.KindHost},
		{"otelhttp: client timeout naming cancel", map[string]any{"server.address": "ranker", "error.type": "*url.Error"}, 2, "ranker", true, detect.ClassTimeout, false, "net/http: request canceled (Client.Timeout exceeded while awaiting headers)", false, redflag.KindHost},
		{"otelhttp: refused", map[string]any{"server.address": "10.1.0.4", "error.type": "*url.Error"}, 2, "10.1.0.4", true, detect.ClassConnect, false, "dial tcp 10.1.0.4:8080: connect: connection refused", false, redflag.KindAddress},
		{"dotnet timeout is not a cancellation", map[string]any{"server.address": "a", "error.type": "System.Threading.Tasks.TaskCanceledException"}, 2, "a", true, detect.ClassTimeout, false, "The request was canceled due to the configured HttpClient.Timeout of 2 seconds elapsing.", false, redflag.KindHost},
		{"java cancellation", map[string]any{"server.address": "a", "error.type": "java.util.concurrent.CancellationException"}, 2, "a", false, 0, false, "", true, redflag.KindHost},
		{"http 499 client closed", map[string]any{"server.address": "a", "http.response.status_code": 499}, 0, "a", false, 0, false, "", true, redflag.KindHost},
		{"otelsql: database at an IP", map[string]any{"db.system.name": "postgresql", "db.namespace": "fulfil", "server.address": "127.0.0.200", "server.port": 5432, "db.query.text": "SELECT 1"}, 0, "postgresql/fulfil", false, 0, false, "", false, redflag.KindDatabase},
		{"ipv6 address", map[string]any{"server.address": "fd00::7"}, 0, "fd00::7", false, 0, false, "", false, redflag.KindAddress},
		{"url with ipv6 host", map[string]any{"url.full": "http://[fd00::7]:8080/x"}, 0, "fd00::7", false, 0, false, "", false, redflag.KindAddress},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var f facts
			m := pcommon.NewMap()
			require.NoError(t, m.FromRaw(c.attrs))
			f.read(m)
			callee, kind := f.peer.Callee()
			assert.Equal(t, c.callee, callee)
			if c.kind != redflag.KindNone || c.callee == "" {
				assert.Equal(t, c.kind.String(), kind.String(), "kind")
			}
			o := f.outcome(c.status, c.msg)
			assert.Equal(t, c.failed, o.Failed, "failed")
			assert.Equal(t, c.cancelled, o.Cancelled, "cancelled")
			if c.failed {
				assert.Equal(t, c.class.String(), o.Class.String(), "class")
			}
			assert.Equal(t, c.client4xx, o.Client4xx, "client4xx")
		})
	}
}

func newTestExtractor() *Extractor {
	return New(Settings{JoinSampleRatio: 1, MaxJoinEntries: 1000, MetricNames: map[string]bool{"db.client.connection.count": true}})
}

func TestTracesEdgesServicesAndJoins(t *testing.T) {
	x := newTestExtractor()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	pay := map[string]any{"server.address": "payments", "http.response.status_code": 503}
	payOK := map[string]any{"server.address": "payments", "http.response.status_code": 200}
	td := traces("checkout",
		// Request 1 (span 1): two failed attempts at payments (a sibling retry
		// without resend_count), then the request fails: propagated.
		span{kind: ptrace.SpanKindClient, id: 11, parent: 1, attrs: pay, durationMs: 5, status: 2},
		span{kind: ptrace.SpanKindClient, id: 12, parent: 1, attrs: pay, durationMs: 5, status: 2},
		span{kind: ptrace.SpanKindServer, id: 1, status: 2, durationMs: 20},
		// Request 2: one failed call, but a fallback keeps the request OK.
		span{kind: ptrace.SpanKindClient, id: 21, parent: 2, attrs: pay, durationMs: 5, status: 2},
		span{kind: ptrace.SpanKindServer, id: 2, durationMs: 20},
		// Request 3: an HTTP retry marked with resend_count that succeeds.
		span{kind: ptrace.SpanKindClient, id: 31, parent: 3, attrs: pay, durationMs: 5, status: 2},
		span{kind: ptrace.SpanKindClient, id: 32, parent: 3, attrs: map[string]any{"server.address": "payments", "http.response.status_code": 200, "http.request.resend_count": 1}, durationMs: 5},
		span{kind: ptrace.SpanKindServer, id: 3, durationMs: 20},
		// Request 4: fails with no failed child: its own failure.
		span{kind: ptrace.SpanKindClient, id: 41, parent: 4, attrs: payOK, durationMs: 5},
		span{kind: ptrace.SpanKindServer, id: 4, status: 2, durationMs: 20},
		// An internal span is ignored.
		span{kind: ptrace.SpanKindInternal, id: 50, parent: 4},
	)
	var b detect.Batch
	x.Traces(td, now, &b)

	require.Len(t, b.Edges, 1)
	e := b.Edges[0]
	assert.Equal(t, "checkout", e.Caller)
	assert.Equal(t, "payments", e.Callee)
	assert.Equal(t, uint32(6), e.Calls)
	assert.Equal(t, uint32(4), e.Errors)
	assert.Equal(t, uint32(4), e.Class[detect.ClassOverload])
	assert.Equal(t, uint32(2), e.Retries, "one flagged by resend_count, one sibling retry")
	assert.Equal(t, uint32(4), e.JoinedParents)
	assert.Equal(t, uint32(6), e.JoinedCalls)
	assert.Equal(t, uint32(2), e.JoinedErr, "requests 1 and 2 saw every call to payments fail")
	assert.Equal(t, uint32(1), e.JoinedPropagated, "only request 1 failed because of it")

	require.Len(t, b.Services, 1)
	s := b.Services[0]
	assert.Equal(t, uint32(4), s.Calls)
	assert.Equal(t, uint32(2), s.Errors)
	assert.Equal(t, uint32(4), s.Joined)
	assert.Equal(t, uint32(2), s.JoinedErr)
	assert.Equal(t, uint32(1), s.OwnErrors)
	assert.NotEqual(t, [16]byte{}, s.ErrTrace)
}

func TestJoinAcrossBatchesAndAliases(t *testing.T) {
	x := newTestExtractor()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var b detect.Batch
	// The children arrive first; the parent server span in a later batch.
	x.Traces(traces("checkout",
		span{kind: ptrace.SpanKindClient, id: 11, parent: 1, attrs: map[string]any{"server.address": "10.1.2.3"}, durationMs: 5},
	), now, &b)
	require.Empty(t, b.Claims)
	b.Reset()
	// The callee's server span (another service, parent = the client span)
	// teaches that 10.1.2.3 is payments.
	x.Traces(traces("payments",
		span{kind: ptrace.SpanKindServer, id: 77, parent: 11, durationMs: 3},
	), now.Add(time.Second), &b)
	require.Equal(t, []detect.Claim{{Name: "10.1.2.3", Service: "payments", Kind: detect.ClaimJoin}}, b.Claims)
	b.Reset()
	x.Traces(traces("checkout",
		span{kind: ptrace.SpanKindServer, id: 1, durationMs: 9},
	), now.Add(2*time.Second), &b)
	require.Len(t, b.Edges, 1)
	assert.Equal(t, uint32(1), b.Edges[0].JoinedParents)
	assert.Equal(t, uint32(0), b.Edges[0].Calls, "the call itself was counted in its own batch")

	// Entries expire after two TTLs and are counted.
	b.Reset()
	x.Traces(traces("checkout", span{kind: ptrace.SpanKindClient, id: 91, parent: 9, attrs: map[string]any{"server.address": "x"}}), now.Add(time.Minute), &b)
	x.Traces(traces("checkout", span{kind: ptrace.SpanKindClient, id: 92, parent: 8, attrs: map[string]any{"server.address": "x"}}), now.Add(2*time.Minute), &b)
	x.Traces(traces("checkout", span{kind: ptrace.SpanKindClient, id: 93, parent: 7, attrs: map[string]any{"server.address": "x"}}), now.Add(3*time.Minute), &b)
	assert.Positive(t, x.Stats().Expired)
}

// Two distinct statements to one database in one request are two calls,
// not a retry; the same statement twice is a retry. A sibling an errgroup
// cancelled is neither a failure nor a retry, and the request's failure is
// not its own when a call beneath it failed.
func TestJoinOperations(t *testing.T) {
	x := newTestExtractor()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	db := func(q string) map[string]any {
		return map[string]any{"db.system.name": "postgresql", "db.namespace": "fulfil", "db.query.text": q}
	}
	shard := func(code string) map[string]any {
		return map[string]any{"rpc.method": "search.v1.Shard/Query", "server.address": "10.0.0.9", "rpc.response.status_code": code}
	}
	var b detect.Batch
	x.Traces(traces("stock",
		span{kind: ptrace.SpanKindClient, id: 11, parent: 1, name: "SELECT", attrs: db("SELECT qty FROM stock WHERE sku = $1"), durationMs: 2},
		span{kind: ptrace.SpanKindClient, id: 12, parent: 1, name: "UPDATE", attrs: db("UPDATE stock SET qty = qty - $1 WHERE sku = $2"), durationMs: 2},
		span{kind: ptrace.SpanKindServer, id: 1, durationMs: 10},
		span{kind: ptrace.SpanKindClient, id: 21, parent: 2, name: "SELECT", attrs: db("SELECT qty FROM stock WHERE sku = $1"), durationMs: 2, status: 2},
		span{kind: ptrace.SpanKindClient, id: 22, parent: 2, name: "SELECT", attrs: db("SELECT qty FROM stock WHERE sku = $1"), durationMs: 2},
		span{kind: ptrace.SpanKindServer, id: 2, durationMs: 10},
	), now, &b)
	require.Len(t, b.Edges, 1)
	assert.Equal(t, "postgresql/fulfil", b.Edges[0].Callee)
	assert.Equal(t, uint32(1), b.Edges[0].Retries, "only the repeated SELECT")

	b.Reset()
	x.Traces(traces("aggregator",
		span{kind: ptrace.SpanKindClient, id: 31, parent: 3, attrs: shard("INTERNAL"), status: 2, durationMs: 3},
		span{kind: ptrace.SpanKindClient, id: 32, parent: 3, attrs: map[string]any{"rpc.method": "search.v1.Shard/Query", "server.address": "10.0.0.8", "rpc.response.status_code": "CANCELLED"}, status: 2, msg: "context canceled", durationMs: 3},
		span{kind: ptrace.SpanKindServer, id: 3, status: 2, durationMs: 5},
	), now, &b)
	byCallee := map[string]detect.EdgeDelta{}
	for _, e := range b.Edges {
		byCallee[e.Callee] = e
	}
	assert.Equal(t, uint32(1), byCallee["10.0.0.9"].Errors)
	assert.Equal(t, uint32(1), byCallee["10.0.0.9"].JoinedPropagated)
	sib := byCallee["10.0.0.8"]
	assert.Equal(t, uint32(0), sib.Errors, "a cancelled sibling is not a failure")
	assert.Equal(t, uint32(1), sib.Cancelled)
	assert.Equal(t, uint32(0), sib.JoinedErr)
	require.Len(t, b.Services, 1)
	assert.Equal(t, uint32(0), b.Services[0].OwnErrors, "the failed shard call explains the failed request")
}

// Exclusive time is a request's duration less the time its calls cover
// (overlapping calls counted once); a request without calls is all its own.
func TestJoinExclusiveTime(t *testing.T) {
	x := newTestExtractor()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	call := map[string]any{"server.address": "b"}
	var b detect.Batch
	x.Traces(traces("a",
		// 100 ms request: calls over 10-40 and 30-60 (parallel, overlapping),
		// and 80-90: 60 ms covered, 40 ms its own.
		span{kind: ptrace.SpanKindClient, id: 11, parent: 1, attrs: call, startMs: 10, durationMs: 30},
		span{kind: ptrace.SpanKindClient, id: 12, parent: 1, attrs: call, startMs: 30, durationMs: 30},
		span{kind: ptrace.SpanKindClient, id: 13, parent: 1, attrs: call, startMs: 80, durationMs: 10},
		span{kind: ptrace.SpanKindServer, id: 1, durationMs: 100},
		// 7 ms request with no call.
		span{kind: ptrace.SpanKindServer, id: 2, durationMs: 7},
	), now, &b)
	require.Len(t, b.Services, 1)
	self := b.Services[0].Self
	assert.Equal(t, uint32(1), self[detect.BinOf(40)])
	assert.Equal(t, uint32(1), self[detect.BinOf(7)])
	assert.Equal(t, uint32(2), self.Total())

	var e joinEntry
	for i := 0; i < 40; i++ { // more disjoint calls than intervals kept
		e.addInterval(int64(i*10), int64(i*10+5))
	}
	assert.LessOrEqual(t, int(e.ni), len(e.iv))
	c := e.covered(0, 400)
	assert.GreaterOrEqual(t, c, int64(200), "never less than the calls cover")
	assert.LessOrEqual(t, c, int64(400))
}

// A service's telemetry names the addresses it is reached at: its pod IP on
// the resource, the local address and the gRPC service on its server spans.
// Loopback and unspecified addresses name nobody. Each claim is passed on
// once per refresh period.
func TestClaims(t *testing.T) {
	x := newTestExtractor()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	td := func() ptrace.Traces {
		return traces("rates",
			span{kind: ptrace.SpanKindServer, id: 1, resource: map[string]any{"k8s.pod.ip": "10.0.0.7", "host.ip": []any{"192.168.1.4"}},
				attrs: map[string]any{"rpc.method": "ledger.v1.Rates/Get", "server.address": "10.0.0.7", "server.port": 50051}, durationMs: 2},
			span{kind: ptrace.SpanKindServer, id: 2, attrs: map[string]any{"server.address": "127.0.0.1", "network.local.address": "0.0.0.0"}, durationMs: 2},
		)
	}
	var b detect.Batch
	x.Traces(td(), now, &b)
	assert.ElementsMatch(t, []detect.Claim{
		{Name: "10.0.0.7", Service: "rates", Kind: detect.ClaimAddress},
		{Name: "192.168.1.4", Service: "rates", Kind: detect.ClaimHost},
		{Name: "ledger.v1.Rates", Service: "rates", Kind: detect.ClaimRPC},
	}, b.Claims)
	b.Reset()
	x.Traces(td(), now.Add(time.Second), &b)
	assert.Empty(t, b.Claims, "already passed on")
	x.Traces(td(), now.Add(time.Minute), &b)
	assert.Len(t, b.Claims, 3, "refreshed")
}

// A client span that names no dependency still counts, against the
// caller's unknown_dependency, and is joined to its parent.
func TestNoCallee(t *testing.T) {
	x := newTestExtractor()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var b detect.Batch
	x.Traces(traces("a",
		span{kind: ptrace.SpanKindClient, id: 11, parent: 1, status: 2, durationMs: 3},
		span{kind: ptrace.SpanKindServer, id: 1, status: 2, durationMs: 5},
	), now, &b)
	require.Len(t, b.Edges, 1)
	assert.Equal(t, redflag.UnknownDependency, b.Edges[0].Callee)
	assert.Equal(t, uint32(1), b.Edges[0].Errors)
	assert.Equal(t, uint32(1), b.Edges[0].JoinedPropagated)
	assert.Equal(t, uint32(0), b.Services[0].OwnErrors, "failed beneath it: not the caller's own failure")
	assert.Equal(t, uint64(1), x.Stats().NoCallee)
}

func TestJoinCacheBounded(t *testing.T) {
	x := New(Settings{JoinSampleRatio: 1, MaxJoinEntries: 2})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var b detect.Batch
	x.Traces(traces("a",
		span{kind: ptrace.SpanKindClient, id: 11, parent: 1, attrs: map[string]any{"server.address": "x"}},
		span{kind: ptrace.SpanKindClient, id: 12, parent: 2, attrs: map[string]any{"server.address": "x"}},
		span{kind: ptrace.SpanKindClient, id: 13, parent: 3, attrs: map[string]any{"server.address": "x"}},
	), now, &b)
	assert.Equal(t, uint64(1), x.Stats().JoinDropped)
	assert.Equal(t, uint32(3), b.Edges[0].Calls, "edges count every span, joined or not")
}

func TestJoinSampleFollowsSpanIDs(t *testing.T) {
	x := New(Settings{JoinSampleRatio: 0.25, MaxJoinEntries: 1 << 20})
	in := 0
	for i := 0; i < 40000; i++ {
		var id pcommon.SpanID
		id[0], id[1], id[7] = byte(i), byte(i>>8), byte(i*31)
		if x.sampled(id) {
			in++
		}
	}
	assert.InDelta(t, 0.25, float64(in)/40000, 0.02)
	assert.False(t, x.sampled(pcommon.SpanID{}))
}

func TestLogs(t *testing.T) {
	x := newTestExtractor()
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "payments")
	lrs := rl.ScopeLogs().AppendEmpty().LogRecords()
	add := func(sev plog.SeverityNumber, text, body string) {
		lr := lrs.AppendEmpty()
		lr.SetSeverityNumber(sev)
		lr.SetSeverityText(text)
		lr.Body().SetStr(body)
	}
	add(plog.SeverityNumberInfo, "INFO", "served order 1")
	add(plog.SeverityNumberError, "ERROR", "card declined for order 17")
	add(plog.SeverityNumberError, "ERROR", "card declined for order 18")
	add(plog.SeverityNumberFatal, "FATAL", "out of memory")
	add(plog.SeverityNumberUnspecified, "error", "pool exhausted after 30s")
	add(plog.SeverityNumberUnspecified, "warn", "slow")
	alert := lrs.AppendEmpty()
	alert.SetEventName("vigil.alert")
	alert.SetSeverityNumber(plog.SeverityNumberError)

	var b detect.Batch
	x.Logs(ld, &b)
	require.Len(t, b.Logs, 1)
	d := b.Logs[0]
	assert.Equal(t, uint32(6), d.Total, "vigil's own alert events are not counted")
	assert.Equal(t, uint32(4), d.Errors)
	assert.Equal(t, map[string]uint32{"card declined for order <*>": 2, "out of memory": 1, "pool exhausted after <*>": 1}, d.Templates)
}

func TestMetrics(t *testing.T) {
	x := newTestExtractor()
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("k8s.deployment.name", "inventory")
	rm.Resource().Attributes().PutStr("k8s.pod.name", "inventory-1")
	ms := rm.ScopeMetrics().AppendEmpty().Metrics()
	m := ms.AppendEmpty()
	m.SetName("db.client.connection.count")
	dp := m.SetEmptySum().DataPoints().AppendEmpty()
	dp.SetIntValue(19)
	dp.Attributes().PutStr("state", "used")
	other := ms.AppendEmpty()
	other.SetName("something.else")
	other.SetEmptyGauge().DataPoints().AppendEmpty().SetDoubleValue(1)
	var b detect.Batch
	x.Metrics(md, &b)
	require.Equal(t, []detect.MetricSample{{Service: "inventory", Instance: "inventory-1", Metric: "db.client.connection.count", Attrs: map[string]string{"state": "used"}, Value: 19}}, b.Metrics)
}
