package redflagconnector

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/connector/connectortest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor/processortest"

	"github.com/vigilhq/vigil/connectors/redflagconnector/internal/metadata"
	"github.com/vigilhq/vigil/extensions/statusextension"
	"github.com/vigilhq/vigil/internal/redflag"
	"github.com/vigilhq/vigil/processors/tailsamplingprocessor"
)

// contractHost offers one vigil_status extension to the connector and the
// sampler, as the collector's host does.
type contractHost struct {
	component.Host
	exts map[component.ID]component.Component
}

func (h contractHost) GetExtensions() map[component.ID]component.Component { return h.exts }

// dependencies are the calls checkout makes, one of each way a client span
// names its callee: a pod IP (otelgrpc), a Kubernetes DNS name, a database at
// an IP, a queue, and a gRPC call that failed before a connection carried it
// (no address at all).
var dependencies = []struct {
	name  string
	kind  ptrace.SpanKind
	attrs map[string]any
	// callee is the name the connector should resolve it to.
	callee string
}{
	{"pod IP", ptrace.SpanKindClient, map[string]any{"rpc.method": "shop.v1.Orders/Place", "server.address": "10.0.0.7", "server.port": 50051}, "orders"},
	{"DNS name", ptrace.SpanKindClient, map[string]any{"server.address": "payments.shop.svc.cluster.local", "url.full": "http://payments.shop.svc.cluster.local:8080/pay"}, "payments"},
	{"database", ptrace.SpanKindClient, map[string]any{"db.system.name": "postgresql", "db.namespace": "fulfil", "server.address": "10.0.0.200", "db.query.text": "SELECT 1"}, "postgresql/fulfil"},
	{"queue", ptrace.SpanKindProducer, map[string]any{"messaging.system": "kafka", "messaging.destination.name": "fulfil.jobs"}, "fulfil.jobs"},
	{"no address", ptrace.SpanKindClient, map[string]any{"rpc.method": "shop.v1.Rates/Get"}, "rates"},
}

// contractTraffic is one ten-second bucket of checkout's requests, each
// calling every dependency, with the callees' own server spans (which name
// their addresses and gRPC services). fail makes the calls fail.
func contractTraffic(n int, fail bool) ptrace.Traces {
	td := ptrace.NewTraces()
	now := time.Now()
	add := func(svc string, res map[string]any) ptrace.SpanSlice {
		rs := td.ResourceSpans().AppendEmpty()
		_ = rs.Resource().Attributes().FromRaw(res)
		rs.Resource().Attributes().PutStr("service.name", svc)
		return rs.ScopeSpans().AppendEmpty().Spans()
	}
	checkout := add("checkout", nil)
	orders := add("orders", map[string]any{"k8s.pod.ip": "10.0.0.7"})
	payments := add("payments", nil)
	rates := add("rates", nil)
	for i := range n {
		span := func(ss ptrace.SpanSlice, kind ptrace.SpanKind, self, parent byte, attrs map[string]any, failed bool) {
			sp := ss.AppendEmpty()
			sp.SetKind(kind)
			sp.SetTraceID(pcommon.TraceID{byte(i), byte(i >> 8), 7})
			sp.SetSpanID(pcommon.SpanID{self, byte(i), byte(i >> 8), 2})
			if parent != 0 {
				sp.SetParentSpanID(pcommon.SpanID{parent, byte(i), byte(i >> 8), 2})
			}
			sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now))
			sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now.Add(5 * time.Millisecond)))
			if failed {
				sp.Status().SetCode(ptrace.StatusCodeError)
			}
			_ = sp.Attributes().FromRaw(attrs)
		}
		span(checkout, ptrace.SpanKindServer, 1, 0, nil, fail)
		for j, d := range dependencies {
			span(checkout, d.kind, byte(10+j), 1, d.attrs, fail)
		}
		span(orders, ptrace.SpanKindServer, 20, 10, map[string]any{"rpc.method": "shop.v1.Orders/Place", "server.address": "10.0.0.7"}, fail)
		span(payments, ptrace.SpanKindServer, 21, 11, nil, fail)
		span(rates, ptrace.SpanKindServer, 24, 0, map[string]any{"rpc.method": "shop.v1.Rates/Get"}, fail)
	}
	return td
}

// The contract between the connector and the sampler's red_flag policy:
// every edge the connector flags is matched by the policy on the very spans
// that made it, whatever named the callee (a pod IP, a DNS name, a
// database, a queue, a gRPC service with no address), and a flag on an edge
// does not keep the caller's every trace.
func TestFlaggedEdgesAreMatchedBySampler(t *testing.T) {
	ctx := context.Background()
	statusID := component.MustNewID("vigil_status")
	sf := statusextension.NewFactory()
	scfg := sf.CreateDefaultConfig()
	require.NoError(t, confmap.NewFromStringMap(map[string]any{"endpoint": "127.0.0.1:0"}).Unmarshal(scfg))
	status, err := sf.Create(ctx, extensiontest.NewNopSettings(sf.Type()), scfg)
	require.NoError(t, err)
	host := contractHost{Host: componenttest.NewNopHost(), exts: map[component.ID]component.Component{statusID: status}}
	require.NoError(t, status.Start(ctx, host))
	defer func() { require.NoError(t, status.Shutdown(ctx)) }()

	cl := newClocked()
	cl.cfg.Status = &statusID
	conn, err := cl.f.tracesToMetrics(ctx, connectortest.NewNopSettings(metadata.Type), cl.cfg, new(consumertest.MetricsSink))
	require.NoError(t, err)
	require.NoError(t, conn.Start(ctx, host))
	defer func() { require.NoError(t, conn.Shutdown(ctx)) }()
	for range 12 {
		cl.step(t, contractTraffic(20, false), conn)
	}
	src := status.(redflag.FlagSource)
	var flags *redflag.FlagSet
	for range 12 {
		cl.step(t, contractTraffic(20, true), conn)
		cl.idle(t)
		flags = src.FlaggedSet()
		done := true
		for _, d := range dependencies {
			done = done && flags.HasEdge("checkout", d.callee)
		}
		if done {
			break
		}
	}
	for _, d := range dependencies {
		require.True(t, flags.HasEdge("checkout", d.callee), "%s: the connector flags checkout -> %s (flagged: %v)", d.name, d.callee, flags.Edges())
	}
	require.False(t, flags.HasService("checkout"), "a symptom on checkout's calls flags those calls, not checkout")

	// The sampler keeps the trace of each flagged call, from the client span
	// alone, and not the trace of a healthy call of the same caller.
	pf := tailsamplingprocessor.NewFactory()
	pcfg := pf.CreateDefaultConfig()
	require.NoError(t, confmap.NewFromStringMap(map[string]any{
		"decision_wait": "200ms",
		"policies":      []any{map[string]any{"name": "red-flags", "type": "red_flag", "red_flag": map[string]any{"status": "vigil_status"}}},
	}).Unmarshal(pcfg))
	sink := new(consumertest.TracesSink)
	proc, err := pf.CreateTraces(ctx, processortest.NewNopSettings(pf.Type()), pcfg, sink)
	require.NoError(t, err)
	require.NoError(t, proc.Start(ctx, host))
	defer func() { require.NoError(t, proc.Shutdown(ctx)) }()
	time.Sleep(300 * time.Millisecond) // the flagged set is read on the decision ticker

	one := func(id byte, kind ptrace.SpanKind, attrs map[string]any) ptrace.Traces {
		td := ptrace.NewTraces()
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", "checkout")
		sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
		sp.SetKind(kind)
		sp.SetTraceID(pcommon.TraceID{id, 99})
		sp.SetSpanID(pcommon.SpanID{id, 99})
		_ = sp.Attributes().FromRaw(attrs)
		return td
	}
	for j, d := range dependencies {
		require.NoError(t, proc.ConsumeTraces(ctx, one(byte(j+1), d.kind, d.attrs)))
	}
	require.NoError(t, proc.ConsumeTraces(ctx, one(100, ptrace.SpanKindClient, map[string]any{"server.address": "catalog"})))
	require.Eventually(t, func() bool { return sink.SpanCount() >= len(dependencies) }, 5*time.Second, 20*time.Millisecond)
	time.Sleep(400 * time.Millisecond)
	kept := map[byte]bool{}
	for _, td := range sink.AllTraces() {
		for _, rs := range td.ResourceSpans().All() {
			for _, ss := range rs.ScopeSpans().All() {
				for _, sp := range ss.Spans().All() {
					kept[sp.TraceID()[0]] = true
				}
			}
		}
	}
	for j, d := range dependencies {
		assert.True(t, kept[byte(j+1)], "%s: the policy keeps the flagged call checkout -> %s", d.name, d.callee)
	}
	assert.False(t, kept[100], "a healthy call of checkout is not kept by the red_flag policy")
}
