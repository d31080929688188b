package testbed

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigilhq/vigil/benchmarks/testbed/topo"
)

// TestFulfil checks the database and queue instrumentation and the
// database faults.
func TestFulfil(t *testing.T) {
	t.Parallel()
	te := startTopology(t, "fulfil")
	ctx := context.Background()
	for i := range 5 {
		require.Equal(t, 200, te.request(t, "api", "POST /api/orders", "o"+strconv.Itoa(i)))
	}
	require.Equal(t, 200, te.request(t, "api", "GET /api/orders/{id}", "o1"))
	require.Equal(t, 200, te.request(t, "reports", "GET /reports/daily", "r1"))
	all := waitSpans(t, te.sink, "consumer spans", func(s []span) bool {
		return len(find(s, "picker", "process fulfil.jobs", ptrace.SpanKindConsumer)) >= 5 &&
			len(find(s, "carrier-api", "POST /v2/labels", ptrace.SpanKindServer)) >= 5
	})
	dbHost, _, err := net.SplitHostPort(te.e.dbAddr["fulfil"])
	require.NoError(t, err)

	t.Run("otelsql query spans", func(t *testing.T) {
		var place []span
		for _, s := range find(all, "orders", "sql.conn.query", ptrace.SpanKindClient) {
			if q, _ := s.attr("db.query.text"); strings.Contains(q, "place_order") {
				place = append(place, s)
			}
		}
		require.NotEmpty(t, place)
		for k, want := range map[string]string{"db.system.name": "postgresql", "db.namespace": "fulfil", "server.address": dbHost, "server.port": "5432"} {
			v, _ := place[0].attr(k)
			assert.Equal(t, want, v, k)
		}
		for _, s := range all {
			if strings.HasPrefix(s.s.Name(), "sql.") {
				assert.False(t, s.s.ParentSpanID().IsEmpty(), "no root database spans (the queue's polling is filtered)")
				assert.NotContains(t, []string{"sql.rows", "sql.conn.reset_session", "sql.connector.connect", "sql.conn.ping"}, s.s.Name())
			}
		}
	})

	t.Run("producer and consumer spans link across the queue", func(t *testing.T) {
		producers := find(all, "orders", "publish fulfil.jobs", ptrace.SpanKindProducer)
		require.NotEmpty(t, producers)
		kind, _ := producers[0].attr("messaging.operation.type")
		assert.Equal(t, "send", kind)
		dest, _ := producers[0].attr("messaging.destination.name")
		assert.Equal(t, "fulfil.jobs", dest)
		sys, _ := producers[0].attr("messaging.system")
		assert.Equal(t, "postgresql", sys)
		linked := 0
		for _, c := range find(all, "picker", "process fulfil.jobs", ptrace.SpanKindConsumer) {
			kind, _ := c.attr("messaging.operation.type")
			assert.Equal(t, "process", kind)
			for _, p := range producers {
				if c.s.TraceID() == p.s.TraceID() && c.s.ParentSpanID() == p.s.SpanID() {
					linked++
					assert.NotEmpty(t, children(all, c, "fulfil.v1.Stock/Reserve"), "the consumer's calls run under its span")
				}
			}
		}
		assert.GreaterOrEqual(t, linked, 5)
	})

	t.Run("pool metrics", func(t *testing.T) {
		want := []string{"db.client.connection.count", "db.client.connection.max", "db.client.connection.pending_requests",
			"db.client.connection.wait_time", "db.sql.connection.open", "db.client.operation.duration"}
		var got map[string]pmetric.Metric
		ok := waitFor(15*time.Second, func() bool {
			got = metrics(te, "stock")
			for _, w := range want {
				if _, ok := got[w]; !ok {
					return false
				}
			}
			return true
		})
		require.True(t, ok, "got %v", keys(got))
		states := map[string]bool{}
		dps := got["db.client.connection.count"].Sum().DataPoints()
		for i := range dps.Len() {
			st, _ := dps.At(i).Attributes().Get("db.client.connection.state")
			states[st.AsString()] = true
			pool, _ := dps.At(i).Attributes().Get("db.client.connection.pool.name")
			assert.Equal(t, te.e.dbAddr["fulfil"]+"/fulfil", pool.AsString())
		}
		assert.Equal(t, map[string]bool{"used": true, "idle": true}, states)
	})

	t.Run("pool exhaustion", func(t *testing.T) {
		undo, _, err := te.e.applyFault(ctx, te.c, topo.FaultSpec{Kind: topo.KindPoolExhaustion, Target: "stock", Means: topo.PoolLeak}, 1)
		require.NoError(t, err)
		i := 0
		require.Eventually(t, func() bool {
			i++
			te.request(t, "api", "POST /api/orders", "leak"+strconv.Itoa(i))
			s, err := te.c.stats(ctx, "stock")
			return err == nil && s.Leaked == 12
		}, 20*time.Second, 100*time.Millisecond, "both stock replicas leak their 6 connections")
		assert.Equal(t, 503, te.request(t, "reports", "GET /reports/daily", "r2"), "stock cannot get a connection: RESOURCE_EXHAUSTED")
		require.NoError(t, undo(ctx))
		s, err := te.c.stats(ctx, "stock")
		require.NoError(t, err)
		assert.Zero(t, s.Leaked)
		assert.Equal(t, 200, te.request(t, "reports", "GET /reports/daily", "r3"))
	})

	t.Run("errors on one method only", func(t *testing.T) {
		undo, _, err := te.e.applyFault(ctx, te.c, topo.FaultSpec{Kind: topo.KindErrors, Target: "stock", Method: "Level", Means: topo.ErrorReturns}, 1)
		require.NoError(t, err)
		assert.Equal(t, 500, te.request(t, "reports", "GET /reports/daily", "r4"))
		before, err := te.c.stats(ctx, "picker")
		require.NoError(t, err)
		require.Equal(t, 200, te.request(t, "api", "POST /api/orders", "level"))
		require.Eventually(t, func() bool {
			s, err := te.c.stats(ctx, "picker")
			return err == nil && s.Jobs > before.Jobs
		}, 10*time.Second, 50*time.Millisecond)
		after, err := te.c.stats(ctx, "picker")
		require.NoError(t, err)
		assert.Equal(t, before.JobsFailed, after.JobsFailed, "Reserve still works")
		require.NoError(t, undo(ctx))
		assert.Equal(t, 200, te.request(t, "reports", "GET /reports/daily", "r5"))
	})

	t.Run("slow query", func(t *testing.T) {
		undo, _, err := te.e.applyFault(ctx, te.c, topo.FaultSpec{Kind: topo.KindSlowQuery, Target: topo.DBOrigin("fulfil"), Via: []string{"orders", "stock"}, Means: topo.PGSleep}, 400)
		require.NoError(t, err)
		start := time.Now()
		assert.Equal(t, 200, te.request(t, "api", "POST /api/orders", "slow1"))
		assert.GreaterOrEqual(t, time.Since(start), 400*time.Millisecond)
		require.NoError(t, undo(ctx))
		start = time.Now()
		assert.Equal(t, 200, te.request(t, "api", "POST /api/orders", "slow2"))
		assert.Less(t, time.Since(start), 400*time.Millisecond)
	})
}

// metrics returns the last received metric of each name from svc.
func metrics(te *testEnv, svc string) map[string]pmetric.Metric {
	out := map[string]pmetric.Metric{}
	for _, md := range te.sink.Metrics() {
		rms := md.ResourceMetrics()
		for i := range rms.Len() {
			v, _ := rms.At(i).Resource().Attributes().Get("service.name")
			if v.AsString() != svc {
				continue
			}
			for j := range rms.At(i).ScopeMetrics().Len() {
				ms := rms.At(i).ScopeMetrics().At(j).Metrics()
				for k := range ms.Len() {
					out[ms.At(k).Name()] = ms.At(k)
				}
			}
		}
	}
	return out
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}
