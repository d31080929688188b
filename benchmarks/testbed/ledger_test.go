package testbed

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigilhq/vigil/benchmarks/testbed/topo"
)

// TestLedger runs the ledger topology through toxiproxy and checks what the
// instrumentation libraries put on the spans, and that faults toggle.
func TestLedger(t *testing.T) {
	t.Parallel()
	te := startTopology(t, "ledger")
	ctx := context.Background()
	for i := range 6 {
		require.Equal(t, 200, te.request(t, "gateway", "POST /api/transfers", "t"+strconv.Itoa(i)))
		require.Equal(t, 200, te.request(t, "gateway", "GET /api/accounts/{id}", "a"+strconv.Itoa(i)))
	}
	// Each service exports its spans in its own batches, so wait for every
	// span the checks below read, not only for the last hop's.
	all := waitSpans(t, te.sink, "the requests' spans", func(s []span) bool {
		return len(find(s, "fx", "ledger.v1.FX/Convert", ptrace.SpanKindServer)) >= 12 &&
			len(find(s, "accounts", "ledger.v1.Postings/Post", ptrace.SpanKindClient)) >= 6 &&
			len(find(s, "gateway", "POST /api/transfers", ptrace.SpanKindServer)) >= 6 &&
			len(find(s, "postings", "ledger.v1.Postings/Post", ptrace.SpanKindServer)) >= 6
	})

	t.Run("http server span has the route", func(t *testing.T) {
		s := find(all, "gateway", "POST /api/transfers", ptrace.SpanKindServer)
		require.NotEmpty(t, s)
		route, _ := s[0].attr("http.route")
		assert.Equal(t, "/api/transfers", route)
	})
	t.Run("grpc client span names the replica IP", func(t *testing.T) {
		s := find(all, "accounts", "ledger.v1.Postings/Post", ptrace.SpanKindClient)
		require.NotEmpty(t, s)
		for _, sp := range s {
			addr, ok := sp.attr("server.address")
			require.True(t, ok, "no server.address on a successful call")
			assert.Contains(t, te.ips("postings"), addr)
			port, _ := sp.attr("server.port")
			assert.Equal(t, strconv.Itoa(topo.GRPCPort), port)
			code, _ := sp.attr("rpc.response.status_code")
			assert.Equal(t, "OK", code)
		}
	})
	t.Run("resource attributes", func(t *testing.T) {
		for _, svc := range []string{"postings", "accounts"} {
			var res pcommon.Map
			found := false
			for _, sp := range all {
				if sp.service == svc {
					res, found = sp.res, true
					break
				}
			}
			require.True(t, found, "no span from %s", svc)
			ns, _ := res.Get("k8s.namespace.name")
			assert.Equal(t, "ledger", ns.AsString())
			pod, _ := res.Get("k8s.pod.name")
			assert.True(t, strings.HasPrefix(pod.AsString(), svc+"-"), pod.AsString())
			_, hasInstance := res.Get("service.instance.id")
			assert.True(t, hasInstance)
			ip, hasIP := res.Get("k8s.pod.ip")
			tsvc, _ := topo.Get("ledger")
			spec, _ := tsvc.Service(svc)
			assert.Equal(t, spec.PodIP, hasIP, svc)
			if hasIP {
				assert.Contains(t, te.ips(svc), ip.AsString())
			}
		}
	})
	t.Run("one trace end to end", func(t *testing.T) {
		fx := find(all, "fx", "ledger.v1.FX/Convert", ptrace.SpanKindServer)[0]
		roots := 0
		for _, sp := range all {
			if sp.s.TraceID() == fx.s.TraceID() && sp.s.ParentSpanID().IsEmpty() {
				roots++
				assert.Equal(t, "gateway", sp.service)
			}
		}
		assert.Equal(t, 1, roots)
	})

	t.Run("unavailable: no server.address, one span per retry attempt", func(t *testing.T) {
		from := time.Now()
		undo, _, err := te.e.applyFault(ctx, te.c, topo.FaultSpec{Kind: topo.KindUnavailable, Target: "fx", Means: topo.ProxyDown}, 1)
		require.NoError(t, err)
		for i := range 3 {
			assert.Equal(t, 503, te.request(t, "gateway", "POST /api/transfers", "u"+strconv.Itoa(i)))
		}
		all := waitSpans(t, te.sink, "failed balances spans", func(s []span) bool {
			return len(failed(since(find(s, "balances", "ledger.v1.Balances/Apply", ptrace.SpanKindServer), from))) >= 3 &&
				len(since(find(s, "rates", "ledger.v1.FX/Convert", ptrace.SpanKindClient), from)) >= 3
		})
		for _, sp := range since(find(all, "rates", "ledger.v1.FX/Convert", ptrace.SpanKindClient), from) {
			_, ok := sp.attr("server.address")
			assert.False(t, ok, "a call refused before any connection has no server.address")
			assert.Equal(t, ptrace.StatusCodeError, sp.s.Status().Code())
			code, _ := sp.attr("rpc.response.status_code")
			assert.Equal(t, "UNAVAILABLE", code)
		}
		for _, apply := range failed(since(find(all, "balances", "ledger.v1.Balances/Apply", ptrace.SpanKindServer), from)) {
			attempts := children(all, apply, "ledger.v1.Rates/Quote")
			assert.Len(t, attempts, 3, "retryPolicy maxAttempts 3: one client span per attempt")
		}
		require.Eventually(t, func() bool { return hasErrorLog(te, "rates") }, 10*time.Second, 100*time.Millisecond,
			"rates logs its failures through otelslog, with the trace context")
		require.NoError(t, undo(ctx))
		// Every channel to fx reconnects within its backoff (at most 5 s).
		ok := 0
		require.Eventually(t, func() bool {
			if te.request(t, "gateway", "POST /api/transfers", "back") == 200 {
				ok++
			} else {
				ok = 0
			}
			return ok >= 6
		}, 20*time.Second, 100*time.Millisecond)
	})

	t.Run("errors on and off", func(t *testing.T) {
		undo, _, err := te.e.applyFault(ctx, te.c, topo.FaultSpec{Kind: topo.KindErrors, Target: "rates", Means: topo.ErrorReturns}, 1)
		require.NoError(t, err)
		assert.Equal(t, 500, te.request(t, "gateway", "POST /api/transfers", "e1"))
		s, err := te.c.stats(ctx, "rates")
		require.NoError(t, err)
		assert.Positive(t, s.Injected)
		require.NoError(t, undo(ctx))
		assert.Equal(t, 200, te.request(t, "gateway", "POST /api/transfers", "e2"))
	})

	t.Run("latency toxic added and removed", func(t *testing.T) {
		undo, _, err := te.e.applyFault(ctx, te.c, topo.FaultSpec{Kind: topo.KindNetworkDelay, Target: "balances", Means: topo.LinkLatency}, 300)
		require.NoError(t, err)
		for _, r := range te.c.replicas("balances") {
			p, err := te.e.tp.proxy(ctx, r.proxy)
			require.NoError(t, err)
			require.Len(t, p.Toxics, 1)
			assert.Equal(t, "latency", p.Toxics[0].Type)
		}
		start := time.Now()
		assert.Equal(t, 200, te.request(t, "gateway", "POST /api/transfers", "l1"))
		// toxiproxy's latency toxic counts its delay from when a chunk
		// reached it, so the request may come back a little under the
		// 300 ms (298 ms seen); without the toxic it takes a few ms.
		assert.GreaterOrEqual(t, time.Since(start), 250*time.Millisecond)
		require.NoError(t, undo(ctx))
		for _, r := range te.c.replicas("balances") {
			p, err := te.e.tp.proxy(ctx, r.proxy)
			require.NoError(t, err)
			assert.Empty(t, p.Toxics)
		}
		start = time.Now()
		assert.Equal(t, 200, te.request(t, "gateway", "POST /api/transfers", "l2"))
		assert.Less(t, time.Since(start), 300*time.Millisecond)
	})

	t.Run("rolling deploy: new IPs, callers follow, no failed request", func(t *testing.T) {
		old := te.c.replicas("accounts")
		stop := make(chan struct{})
		done := make(chan struct{})
		var total, bad int
		go func() {
			defer close(done)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				code, err := te.tryRequest("gateway", "POST /api/transfers", "d"+strconv.Itoa(i))
				total++
				if err != nil || code != 200 {
					bad++
				}
			}
		}()
		version, err := te.c.rollingDeploy(ctx, "accounts", 200*time.Millisecond, te.e.logf)
		close(stop)
		<-done
		require.NoError(t, err)
		assert.Equal(t, "1.13.0", version)
		now := te.c.replicas("accounts")
		require.Len(t, now, 2)
		for _, o := range old {
			assert.True(t, o.proc.exited(), "old replica %s stopped", o.pod)
			assert.NotContains(t, te.ips("accounts"), o.ip, "a new pod gets a new IP")
		}
		assert.Positive(t, total)
		assert.Zero(t, bad, "%d of %d requests failed during the deploy", bad, total)
	})

	t.Run("cpu quota applied and removed", func(t *testing.T) {
		if te.e.cg == nil {
			t.Skip("cgroups not writable here: the run falls back to the spinner")
		}
		undo, detail, err := te.e.applyFault(ctx, te.c, topo.FaultSpec{Kind: topo.KindCPU, Target: "postings", Means: topo.CPUQuota}, 1.2)
		require.NoError(t, err)
		assert.Contains(t, detail, "CPU limited to")
		reps := te.c.replicas("postings")
		for _, r := range reps {
			name := "ledger." + r.pod
			q, err := te.e.cg.quota(name)
			require.NoError(t, err)
			assert.Positive(t, q)
			procs, err := os.ReadFile(filepath.Join(te.e.cg.root, name, "cgroup.procs"))
			require.NoError(t, err)
			assert.Contains(t, strings.Fields(string(procs)), strconv.Itoa(r.proc.pid()))
		}
		assert.Equal(t, 200, te.request(t, "gateway", "POST /api/transfers", "c1"))
		require.NoError(t, undo(ctx))
		for _, r := range reps {
			_, err := os.Stat(filepath.Join(te.e.cg.root, "ledger."+r.pod))
			assert.True(t, os.IsNotExist(err), "cgroup removed")
			cg, err := cgroupOf(r.proc.pid())
			require.NoError(t, err)
			assert.NotContains(t, cg, "vigil-testbed")
		}
	})
}

// since keeps the spans that started at or after from.
func since(in []span, from time.Time) []span {
	var out []span
	for _, s := range in {
		if !s.s.StartTimestamp().AsTime().Before(from) {
			out = append(out, s)
		}
	}
	return out
}

func failed(in []span) []span {
	var out []span
	for _, s := range in {
		if s.s.Status().Code() == ptrace.StatusCodeError {
			out = append(out, s)
		}
	}
	return out
}

// children are the spans named name whose parent is p.
func children(all []span, p span, name string) []span {
	var out []span
	for _, s := range all {
		if s.s.TraceID() == p.s.TraceID() && s.s.ParentSpanID() == p.s.SpanID() && (name == "" || s.s.Name() == name) {
			out = append(out, s)
		}
	}
	return out
}

// hasErrorLog says whether svc sent an ERROR log record with a trace id.
func hasErrorLog(te *testEnv, svc string) bool {
	for _, ld := range te.sink.Logs() {
		rls := ld.ResourceLogs()
		for i := range rls.Len() {
			v, _ := rls.At(i).Resource().Attributes().Get("service.name")
			if v.AsString() != svc {
				continue
			}
			for j := range rls.At(i).ScopeLogs().Len() {
				lrs := rls.At(i).ScopeLogs().At(j).LogRecords()
				for k := range lrs.Len() {
					lr := lrs.At(k)
					if lr.SeverityNumber() >= plog.SeverityNumberError && !lr.TraceID().IsEmpty() {
						return true
					}
				}
			}
		}
	}
	return false
}

// serverAddrs are the server.address values of spans.
func serverAddrs(in []span) []string {
	var out []string
	for _, s := range in {
		if a, ok := s.attr("server.address"); ok && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}
