package traces

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// templateMagic marks the trace IDs written into templates, so the wire walk
// can tell which trace slot each span belongs to: the first 8 bytes are the
// magic, the last 8 the slot number.
const templateMagic uint64 = 0x5649_4749_4c42_4e43 // "VIGILBNC"

// service is one application process: its resource and its semantic
// convention generation (half the fleet still emits the pre-1.21 names).
type service struct {
	name    string
	version string
	newConv bool
}

var services = []service{
	{"frontend", "2.14.1", true},
	{"checkout", "1.8.0", false},
	{"payment", "3.2.7", true},
	{"cart", "0.9.12", false},
	{"inventory", "5.0.3", true},
}

// hop is one position in the shape of a trace: which service emits the span,
// what it does, and which earlier hop is its parent.
type hop struct {
	svc    int
	kind   ptrace.SpanKind
	what   string // "http-server", "grpc-client", "grpc-server", "db", "http-client", "internal"
	parent int
	peer   int // the called service, for client spans
}

// shape is the call tree of a 10-span trace; longer traces repeat the cart
// branch under the root, shorter ones are its prefix.
var shape = []hop{
	{0, ptrace.SpanKindServer, "http-server", -1, -1},
	{0, ptrace.SpanKindClient, "grpc-client", 0, 1},
	{1, ptrace.SpanKindServer, "grpc-server", 1, -1},
	{1, ptrace.SpanKindClient, "db", 2, -1},
	{1, ptrace.SpanKindClient, "grpc-client", 2, 2},
	{2, ptrace.SpanKindServer, "grpc-server", 4, -1},
	{2, ptrace.SpanKindClient, "http-client", 5, -1},
	{1, ptrace.SpanKindInternal, "internal", 2, -1},
	{0, ptrace.SpanKindClient, "grpc-client", 0, 3},
	{3, ptrace.SpanKindServer, "grpc-server", 8, -1},
}

var extraHops = []hop{
	{0, ptrace.SpanKindClient, "grpc-client", 0, 4},
	{4, ptrace.SpanKindServer, "grpc-server", -2, -1}, // parent: the hop before
	{4, ptrace.SpanKindClient, "db", -2, -1},
}

func hopAt(i int) hop {
	if i < len(shape) {
		return shape[i]
	}
	h := extraHops[(i-len(shape))%len(extraHops)]
	if h.parent == -2 {
		h.parent = i - 1
	}
	return h
}

var (
	routes  = []string{"/api/orders/{id}", "/api/cart", "/api/products/{id}", "/api/checkout", "/api/users/{id}/profile"}
	methods = []string{"GET", "GET", "GET", "POST", "PUT"}
	rpcs    = [][2]string{
		{"checkout.CheckoutService", "PlaceOrder"},
		{"payment.PaymentService", "Charge"},
		{"cart.CartService", "GetCart"},
		{"inventory.InventoryService", "Reserve"},
	}
	queries = [][3]string{
		{"postgresql", "SELECT", "SELECT id, status, total FROM orders WHERE customer_id = $1 LIMIT 20"},
		{"postgresql", "INSERT", "INSERT INTO orders (customer_id, total, status) VALUES ($1, $2, $3)"},
		{"redis", "GET", "GET cart:$1"},
		{"mysql", "UPDATE", "UPDATE stock SET reserved = reserved + ? WHERE sku = ?"},
	}
	agents = []string{
		"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36",
		"okhttp/4.12.0",
		"Go-http-client/1.1",
	}
)

// traceSpec is what varies per trace in a template.
type traceSpec struct {
	slot     uint64
	duration time.Duration
	errAt    int // index of the failing span, -1 for none
}

// buildTemplate returns one request's worth of traces: nTraces traces of
// spansPerTrace spans, plus nLate single late spans, grouped by service into
// ResourceSpans like a gateway receives them. firstSlot numbers the traces.
func buildTemplate(rng *rand.Rand, cfg *Config, firstSlot uint64, nTraces, nLate int) ptrace.Traces {
	td := ptrace.NewTraces()
	now := time.Now()
	scopes := make([]ptrace.SpanSlice, len(services))
	for i, s := range services {
		rs := td.ResourceSpans().AppendEmpty()
		a := rs.Resource().Attributes()
		a.PutStr("service.name", s.name)
		a.PutStr("service.version", s.version)
		pod := s.name + "-" + strconv.FormatUint(rng.Uint64()%0xfffff, 36) + "-" + strconv.FormatUint(rng.Uint64()%0xfffff, 36)
		a.PutStr("k8s.pod.name", pod)
		a.PutStr("host.name", "node-"+strconv.Itoa(rng.IntN(40)))
		ss := rs.ScopeSpans().AppendEmpty()
		ss.Scope().SetName("io.opentelemetry.instrumentation")
		ss.Scope().SetVersion("2.10.0")
		scopes[i] = ss.Spans()
	}
	for t := 0; t < nTraces; t++ {
		spec := traceSpec{slot: firstSlot + uint64(t), errAt: -1}
		switch {
		case rng.Float64() < cfg.SlowRatio:
			// Slow: 1.2x to 4x the threshold.
			spec.duration = time.Duration(float64(cfg.SlowThreshold) * (1.2 + 2.8*rng.Float64()))
		default:
			// Log-normal around 40 ms, kept under 90% of the slow threshold.
			d := time.Duration(40e6 * math.Exp(rng.NormFloat64()*0.9))
			spec.duration = min(d, cfg.SlowThreshold*9/10)
		}
		if rng.Float64() < cfg.ErrorRatio {
			spec.errAt = 1 + rng.IntN(max(cfg.SpansPerTrace-1, 1))
			if cfg.SpansPerTrace == 1 {
				spec.errAt = 0
			}
		}
		addTrace(rng, scopes, cfg.SpansPerTrace, spec, now)
	}
	for l := 0; l < nLate; l++ {
		// A late span: an asynchronous child that reaches the agent after the
		// trace's decision; its parent is unknown to the agent.
		slot := firstSlot + uint64(nTraces+l)
		sp := scopes[1].AppendEmpty()
		sp.SetTraceID(slotID(slot))
		sp.SetSpanID(spanID(rng))
		sp.SetParentSpanID(spanID(rng))
		sp.SetName("checkout.publish_receipt")
		sp.SetKind(ptrace.SpanKindProducer)
		start := now.Add(-time.Duration(rng.IntN(50)) * time.Millisecond)
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(3 * time.Millisecond)))
		a := sp.Attributes()
		a.PutStr("messaging.system", "kafka")
		a.PutStr("messaging.destination.name", "receipts")
		a.PutStr("messaging.operation", "publish")
		a.PutInt("messaging.message.body.size", int64(200+rng.IntN(2000)))
		a.PutStr("server.address", "kafka-0.kafka")
	}
	return td
}

func slotID(slot uint64) pcommon.TraceID {
	var id pcommon.TraceID
	binary.BigEndian.PutUint64(id[:8], templateMagic)
	binary.BigEndian.PutUint64(id[8:], slot)
	return id
}

func spanID(rng *rand.Rand) pcommon.SpanID {
	var id pcommon.SpanID
	binary.BigEndian.PutUint64(id[:], rng.Uint64()|1)
	return id
}

func addTrace(rng *rand.Rand, scopes []ptrace.SpanSlice, n int, spec traceSpec, now time.Time) {
	tid := slotID(spec.slot)
	ids := make([]pcommon.SpanID, n)
	starts := make([]time.Time, n)
	ends := make([]time.Time, n)
	failed := make([]bool, n)
	if spec.errAt >= 0 {
		// The failure propagates to every ancestor, as instrumented code reports it.
		for i := spec.errAt; i >= 0; i = hopAt(i).parent {
			failed[i] = true
		}
	}
	routeIdx := rng.IntN(len(routes))
	for i := 0; i < n; i++ {
		h := hopAt(i)
		ids[i] = spanID(rng)
		if h.parent < 0 {
			starts[i] = now.Add(-spec.duration)
			ends[i] = now
		} else {
			// Children start after their parent and end before it.
			ps, pe := starts[h.parent], ends[h.parent]
			span := pe.Sub(ps)
			off := time.Duration(rng.Float64() * 0.2 * float64(span))
			d := time.Duration((0.3 + 0.5*rng.Float64()) * float64(span-off))
			starts[i] = ps.Add(off)
			ends[i] = starts[i].Add(d)
		}
		svc := services[h.svc]
		sp := scopes[h.svc].AppendEmpty()
		sp.SetTraceID(tid)
		sp.SetSpanID(ids[i])
		if h.parent >= 0 {
			sp.SetParentSpanID(ids[h.parent])
		}
		sp.SetKind(h.kind)
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(starts[i]))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(ends[i]))
		if failed[i] {
			sp.Status().SetCode(ptrace.StatusCodeError)
		}
		setAttributes(rng, sp, h, svc.newConv, failed[i], routeIdx)
	}
}

// setAttributes writes the five attributes a span of this kind carries, in the
// semantic convention generation of its service.
func setAttributes(rng *rand.Rand, sp ptrace.Span, h hop, newConv, failed bool, routeIdx int) {
	a := sp.Attributes()
	pick := func(newName, oldName string) string {
		if newConv {
			return newName
		}
		return oldName
	}
	switch h.what {
	case "http-server":
		method, route := methods[routeIdx], routes[routeIdx]
		status := int64(200)
		if failed {
			status = 500
		}
		sp.SetName(method + " " + route)
		a.PutStr(pick("http.request.method", "http.method"), method)
		a.PutStr(pick("url.path", "http.target"), routeWithID(rng, route))
		a.PutStr("http.route", route)
		a.PutInt(pick("http.response.status_code", "http.status_code"), status)
		a.PutStr(pick("user_agent.original", "http.user_agent"), agents[rng.IntN(len(agents))])
	case "grpc-client", "grpc-server":
		r := rpcs[(max(h.peer, 1)-1+routeIdx)%len(rpcs)]
		code := int64(0)
		if failed {
			code = 14
		}
		sp.SetName(r[0] + "/" + r[1])
		a.PutStr("rpc.system", "grpc")
		a.PutStr("rpc.service", r[0])
		a.PutStr("rpc.method", r[1])
		a.PutInt("rpc.grpc.status_code", code)
		if h.what == "grpc-client" {
			a.PutStr(pick("server.address", "net.peer.name"), services[max(h.peer, 0)].name+".shop.svc.cluster.local")
		} else {
			a.PutStr(pick("server.address", "net.host.name"), "0.0.0.0")
		}
	case "db":
		q := queries[rng.IntN(len(queries))]
		sp.SetName(q[1] + " " + q[0])
		a.PutStr(pick("db.system.name", "db.system"), q[0])
		a.PutStr(pick("db.namespace", "db.name"), "shop")
		a.PutStr(pick("db.query.text", "db.statement"), q[2])
		a.PutStr(pick("db.operation.name", "db.operation"), q[1])
		a.PutStr(pick("server.address", "net.peer.name"), q[0]+".shop.svc.cluster.local")
	case "http-client":
		status := int64(200)
		if failed {
			status = 503
		}
		sp.SetName("POST")
		a.PutStr(pick("http.request.method", "http.method"), "POST")
		a.PutStr(pick("url.full", "http.url"), "https://api.payments.example.com/v2/charges/"+strconv.FormatUint(rng.Uint64()%1e9, 10))
		a.PutInt(pick("http.response.status_code", "http.status_code"), status)
		a.PutStr(pick("server.address", "net.peer.name"), "api.payments.example.com")
		a.PutInt(pick("server.port", "net.peer.port"), 443)
	default:
		sp.SetName("checkout.compute_totals")
		a.PutStr("code.function", "computeTotals")
		a.PutStr("code.namespace", "shop.checkout.pricing")
		a.PutInt("app.cart.items", int64(1+rng.IntN(12)))
		a.PutStr("app.currency", "EUR")
		a.PutBool("app.discount.applied", rng.IntN(4) == 0)
	}
}

func routeWithID(rng *rand.Rand, route string) string {
	const id = "{id}"
	for i := 0; i+len(id) <= len(route); i++ {
		if route[i:i+len(id)] == id {
			return route[:i] + fmt.Sprint(100000+rng.IntN(900000)) + route[i+len(id):]
		}
	}
	return route
}
