package testbed

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigilhq/vigil/benchmarks/testbed/topo"
)

// TestSearch checks the fan-out's cancellations, the hedged call's loser,
// the HTTP retries' resend count and the breaker's fallback.
func TestSearch(t *testing.T) {
	t.Parallel()
	te := startTopology(t, "search")
	ctx := context.Background()
	require.Equal(t, 200, te.request(t, "web", "GET /search", "warm"))

	t.Run("errgroup siblings end CANCELLED, retries carry resend_count", func(t *testing.T) {
		from := time.Now()
		undo, _, err := te.e.applyFault(ctx, te.c, topo.FaultSpec{Kind: topo.KindErrors, Target: "shard-2", Means: topo.ErrorReturns}, 1)
		require.NoError(t, err)
		for i := range 2 {
			assert.Equal(t, 500, te.request(t, "web", "GET /search", "f"+strconv.Itoa(i)))
		}
		require.NoError(t, undo(ctx))
		shard2 := te.ips("shard-2")
		all := waitSpans(t, te.sink, "failed searches", func(s []span) bool {
			return len(failed(since(find(s, "aggregator", "search.v1.Aggregator/Search", ptrace.SpanKindServer), from))) >= 6 &&
				len(since(find(s, "web", "HTTP GET", ptrace.SpanKindClient), from)) >= 6
		})
		cancelled := 0
		for _, search := range failed(since(find(all, "aggregator", "search.v1.Aggregator/Search", ptrace.SpanKindServer), from)) {
			lookups := children(all, search, "search.v1.Shard/Lookup")
			require.Len(t, lookups, 6)
			for _, l := range lookups {
				code, _ := l.attr("rpc.response.status_code")
				addr, _ := l.attr("server.address")
				switch {
				case addr == shard2[0]:
					assert.Equal(t, "INTERNAL", code)
				case code == "CANCELLED":
					cancelled++
					assert.Contains(t, l.s.Status().Message(), "context canceled")
				}
			}
			assert.Empty(t, children(all, search, "search.v1.Ranker/Rank"), "the ranker is not called after the fan-out failed")
		}
		assert.Positive(t, cancelled, "siblings in flight when shard-2 failed are cancelled")

		resends := map[string]int{}
		for _, c := range since(find(all, "web", "HTTP GET", ptrace.SpanKindClient), from) {
			n, _ := c.attr("http.request.resend_count")
			resends[n]++
		}
		assert.Equal(t, map[string]int{"": 2, "1": 2, "2": 2}, resends, "web retries query twice on 500, the retries marked")
	})

	t.Run("hedged request: the loser is cancelled", func(t *testing.T) {
		from := time.Now()
		undo, _, err := te.e.applyFault(ctx, te.c, topo.FaultSpec{Kind: topo.KindLatency, Target: "ranker", Means: topo.HandlerLatency}, 150)
		require.NoError(t, err)
		for i := range 3 {
			assert.Equal(t, 200, te.request(t, "web", "GET /search", "h"+strconv.Itoa(i)))
		}
		require.NoError(t, undo(ctx))
		all := waitSpans(t, te.sink, "hedged searches", func(s []span) bool {
			return len(since(find(s, "aggregator", "search.v1.Aggregator/Search", ptrace.SpanKindServer), from)) >= 3
		})
		codes := map[string]int{}
		for _, search := range since(find(all, "aggregator", "search.v1.Aggregator/Search", ptrace.SpanKindServer), from) {
			ranks := children(all, search, "search.v1.Ranker/Rank")
			require.Len(t, ranks, 2, "a second attempt after 60 ms")
			for _, r := range ranks {
				c, _ := r.attr("rpc.response.status_code")
				codes[c]++
			}
		}
		// One attempt wins; the other is cancelled, unless a busy machine
		// let both finish together.
		assert.Equal(t, 6, codes["OK"]+codes["CANCELLED"], codes)
		assert.GreaterOrEqual(t, codes["OK"], 3, codes)
		assert.Positive(t, codes["CANCELLED"], codes)
	})

	t.Run("breaker with fallback contains recs", func(t *testing.T) {
		r0, err := te.c.stats(ctx, "recs")
		require.NoError(t, err)
		undo, _, err := te.e.applyFault(ctx, te.c, topo.FaultSpec{Kind: topo.KindErrors, Target: "recs", Means: topo.ErrorReturns}, 1)
		require.NoError(t, err)
		for i := range 8 {
			assert.Equal(t, 200, te.request(t, "web", "GET /search", "b"+strconv.Itoa(i)))
		}
		require.NoError(t, undo(ctx))
		q, err := te.c.stats(ctx, "query")
		require.NoError(t, err)
		assert.GreaterOrEqual(t, q.Fallbacks, int64(8))
		r, err := te.c.stats(ctx, "recs")
		require.NoError(t, err)
		assert.Equal(t, int64(5), r.Requests-r0.Requests, "the breaker opened after 5 failures")
	})
}
