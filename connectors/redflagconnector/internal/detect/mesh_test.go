package detect

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// A traced service behind a sidecar is described twice, by its spans and by
// its mesh's metrics: while spans describe an edge or a service, the mesh's
// reports of it are ignored, so no call counts twice; once spans stop, the
// mesh's count.
func TestMeshIgnoredWhileSpansDescribe(t *testing.T) {
	e := New(DefaultConfig())
	t0 := time.Unix(1_000_000, 0)
	apply := func(at time.Duration, mesh bool) {
		e.Apply(t0.Add(at), &Batch{
			Edges:    []EdgeDelta{{Caller: "web", Callee: "cart", Counts: Counts{Calls: 100}, Mesh: mesh}},
			Services: []ServiceDelta{{Service: "cart", Counts: Counts{Calls: 100}, Mesh: mesh, Served: !mesh}},
		})
	}
	apply(0, false)
	apply(time.Second, true)
	ed := e.edges[edgeKey{"web", "cart"}]
	assert.EqualValues(t, 100, ed.total.Calls)
	assert.EqualValues(t, 100, e.services["cart"].total.Calls)

	apply(6*time.Minute, true) // no span for six minutes
	assert.EqualValues(t, 200, ed.total.Calls)
	assert.EqualValues(t, 200, e.services["cart"].total.Calls)
}

// A service traced only as a consumer (its queue's messages) has no server
// span for the requests its sidecar reports: those still count.
func TestMeshCountsWhatSpansDoNotServe(t *testing.T) {
	e := New(DefaultConfig())
	t0 := time.Unix(1_000_000, 0)
	e.Apply(t0, &Batch{Services: []ServiceDelta{{Service: "worker", Counts: Counts{Calls: 40}}}})
	e.Apply(t0.Add(time.Second), &Batch{Services: []ServiceDelta{{Service: "worker", Counts: Counts{Calls: 100}, Mesh: true}}})
	assert.EqualValues(t, 140, e.services["worker"].total.Calls)
}
