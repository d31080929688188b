package redflag

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

func attrs(t *testing.T, m map[string]any) pcommon.Map {
	a := pcommon.NewMap()
	if err := a.FromRaw(m); err != nil {
		t.Fatal(err)
	}
	return a
}

func TestCalleeOf(t *testing.T) {
	for _, c := range []struct {
		name  string
		attrs map[string]any
		want  string
		kind  Kind
	}{
		{"declared peer", map[string]any{"peer.service": "bank", "server.address": "10.0.0.1"}, "bank", KindService},
		{"host name with port", map[string]any{"server.address": "payments.shop.svc.cluster.local:8080"}, "payments.shop.svc.cluster.local", KindHost},
		{"pod IP", map[string]any{"server.address": "10.1.0.7", "rpc.method": "a.B/C"}, "10.1.0.7", KindAddress},
		{"database at an IP", map[string]any{"server.address": "10.0.0.200", "db.system.name": "postgresql", "db.namespace": "orders"}, "postgresql/orders", KindDatabase},
		{"database by host", map[string]any{"server.address": "orders-db", "db.system": "postgresql"}, "orders-db", KindHost},
		{"queue", map[string]any{"messaging.destination.name": "jobs", "server.address": "10.0.0.9"}, "jobs", KindQueue},
		{"url", map[string]any{"url.full": "https://u:p@[fd00::1]:8443/x?y"}, "fd00::1", KindAddress},
		{"old url", map[string]any{"http.url": "http://api.bank.example/v1"}, "api.bank.example", KindHost},
		{"grpc without address", map[string]any{"rpc.method": "ledger.v1.Rates/Get"}, "ledger.v1.Rates", KindRPC},
		{"old grpc service", map[string]any{"rpc.service": "ledger.Rates", "rpc.method": "Get"}, "ledger.Rates", KindRPC},
		{"nothing", map[string]any{"http.request.method": "GET"}, "", KindNone},
	} {
		got, kind := CalleeOf(attrs(t, c.attrs))
		assert.Equal(t, c.want, got, c.name)
		assert.Equal(t, c.kind, kind, c.name)
	}
}

type dir struct {
	aliases  map[string]string
	services map[string]bool
}

func (d dir) Alias(n string) (string, bool) { s, ok := d.aliases[n]; return s, ok }
func (d dir) IsService(n string) bool       { return d.services[n] }

func TestResolve(t *testing.T) {
	d := dir{aliases: map[string]string{"10.0.0.7": "orders", "ledger.v1.Rates": "rates"}, services: map[string]bool{"payments": true, "orders": true}}
	for in, want := range map[string]string{
		"10.0.0.7":                        "orders",
		"10.0.0.7:50051":                  "orders",
		"ledger.v1.Rates":                 "rates",
		"payments":                        "payments",
		"payments.shop.svc.cluster.local": "payments",
		"payments.shop.svc":               "payments",
		"payments.shop":                   "payments",
		"payments:8080":                   "payments",
		"payments.example.com":            "payments.example.com",
		"10.0.0.8":                        "10.0.0.8",
		"":                                "",
	} {
		assert.Equal(t, want, Resolve(d, in), in)
	}
	assert.Equal(t, "x", Resolve(nil, "x"))
}

func TestFlagSetMatch(t *testing.T) {
	names := NewNames(map[string]string{"10.0.0.7": "orders"}, map[string]struct{}{"orders": {}, "payments": {}})
	fs := NewFlagSet([]Edge{{"checkout", "orders"}, {"checkout", "postgresql/fulfil"}, {"checkout", UnknownDependency}}, []string{"payments"}, names)
	span := func(kind ptrace.SpanKind, m map[string]any) ptrace.Span {
		sp := ptrace.NewSpan()
		sp.SetKind(kind)
		_ = sp.Attributes().FromRaw(m)
		return sp
	}
	assert.True(t, fs.Match("checkout", span(ptrace.SpanKindClient, map[string]any{"server.address": "10.0.0.7"})), "an IP the connector resolved")
	assert.True(t, fs.Match("checkout", span(ptrace.SpanKindClient, map[string]any{"db.system.name": "postgresql", "db.namespace": "fulfil", "server.address": "10.9.9.9"})))
	assert.True(t, fs.Match("checkout", span(ptrace.SpanKindClient, nil)), "a call that names nothing")
	assert.True(t, fs.Match("payments", span(ptrace.SpanKindServer, nil)), "a flagged service's own span")
	assert.True(t, fs.Match("frontend", span(ptrace.SpanKindClient, map[string]any{"server.address": "payments.shop.svc.cluster.local"})), "a call into a flagged service")
	assert.False(t, fs.Match("checkout", span(ptrace.SpanKindServer, nil)), "the caller of a flagged edge is not flagged")
	assert.False(t, fs.Match("checkout", span(ptrace.SpanKindClient, map[string]any{"server.address": "catalog"})))
	assert.False(t, fs.Match("frontend", span(ptrace.SpanKindClient, map[string]any{"server.address": "10.0.0.7"})), "another caller of the flagged edge's callee")

	// A union resolves each part with its own names.
	other := NewFlagSet([]Edge{{"web", "search"}}, nil, NewNames(map[string]string{"10.0.0.7": "search"}, nil))
	u := Union(fs, nil, other)
	assert.True(t, u.Match("web", span(ptrace.SpanKindClient, map[string]any{"server.address": "10.0.0.7"})))
	assert.True(t, u.Match("checkout", span(ptrace.SpanKindClient, map[string]any{"server.address": "10.0.0.7"})))
	assert.Len(t, u.Edges(), 4)
	assert.Equal(t, []string{"payments"}, u.Services())
	assert.True(t, (*FlagSet)(nil).Empty())
	assert.False(t, (*FlagSet)(nil).Match("x", span(ptrace.SpanKindClient, nil)))
	assert.Same(t, fs, Union(nil, fs))
}

// FuzzCallee: naming a callee from arbitrary attribute values never panics,
// and a name, when there is one, comes with a kind.
func FuzzCallee(f *testing.F) {
	f.Add("10.0.0.7:50051", "", "", "a.B/C")
	f.Add("", "http://[::1]:80/x", "postgresql", "")
	f.Add("[fd00::1", "://@", "", "/")
	f.Fuzz(func(t *testing.T, addr, url, db, method string) {
		m := pcommon.NewMap()
		m.PutStr("server.address", addr)
		m.PutStr("url.full", url)
		m.PutStr("db.system.name", db)
		m.PutStr("rpc.method", method)
		name, kind := CalleeOf(m)
		if (name == "") != (kind == KindNone) {
			t.Fatalf("name %q with kind %s", name, kind)
		}
		_ = Resolve(dir{}, name)
	})
}
