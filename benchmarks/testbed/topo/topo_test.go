package topo

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTopologiesValid(t *testing.T) {
	names := map[string]string{}
	for _, tp := range All() {
		require.NoError(t, tp.Validate())
		for _, s := range tp.Services {
			prev, dup := names[s.Name]
			assert.False(t, dup, "service %s in %s and %s: names are distinct across topologies", s.Name, prev, tp.Name)
			names[s.Name] = tp.Name
		}
		for _, slots := range [][]Slot{tp.Plan, tp.Short[:]} {
			for _, sl := range slots {
				if sl.Control != nil {
					_, ok := tp.Service(sl.Control.Target)
					assert.True(t, ok, "control target %s", sl.Control.Target)
					continue
				}
				require.NotEmpty(t, sl.Faults)
				for _, f := range sl.Faults {
					if db, ok := DBName(f.Target); ok {
						assert.Contains(t, tp.Databases, db)
					} else {
						_, ok := tp.Service(f.Target)
						assert.True(t, ok, "fault target %s", f.Target)
					}
					assert.LessOrEqual(t, f.Min, f.Max)
					assert.NotEmpty(t, tp.NearestCaller(f), "%s has a caller", f.Target)
				}
			}
		}
	}
}

// TestPatterns checks that every call pattern the testbed promises is used
// at least once.
func TestPatterns(t *testing.T) {
	seen := map[string]bool{}
	for _, tp := range All() {
		for _, s := range tp.Services {
			if s.PodIP {
				seen["pod ip"] = true
			} else {
				seen["no pod ip"] = true
			}
			var steps []Step
			for _, op := range s.Ops {
				steps = append(steps, op.Steps...)
			}
			if s.Jobs != nil {
				steps = append(steps, s.Jobs.Steps...)
				seen["consumer"] = true
			}
			for i, st := range steps {
				switch st.Kind {
				case FanOut:
					seen["fan-out"] = true
				case Query:
					seen["query"] = true
				case Publish:
					seen["publish"] = true
				case Async:
					seen["async"] = true
				}
				if i > 0 && st.Kind == Call && steps[i-1].Kind == Call {
					seen["sequential"] = true
				}
				for _, c := range st.Calls {
					callee, _ := tp.Service(c.Service)
					switch {
					case c.GRPCRetry:
						seen["grpc retry"] = true
					case c.HTTPRetries > 0:
						seen["http retry"] = true
					case c.Hedge > 0:
						seen["hedge"] = true
					case c.Breaker:
						seen["breaker"] = true
					}
					if callee.Protocol == HTTP && c.ByIP {
						seen["http by ip"] = true
					}
					if callee.Protocol == HTTP && !c.ByIP {
						seen["http by dns"] = true
					}
				}
			}
		}
	}
	for _, p := range []string{"pod ip", "no pod ip", "consumer", "fan-out", "query", "publish", "async", "sequential",
		"grpc retry", "http retry", "hedge", "breaker", "http by ip", "http by dns"} {
		assert.True(t, seen[p], p)
	}
}

func TestPaths(t *testing.T) {
	assert.Equal(t, "/api/orders/o-1/x", FillPath("/api/orders/{id}/x", "o-1"))
	assert.Equal(t, "/search", FillPath("/search", "o-1"))
	m, p := SplitRoute("POST /orders")
	assert.Equal(t, []string{"POST", "/orders"}, []string{m, p})
	svc, ns, ok := ServiceFromDNS(DNSName("fulfil", "orders"))
	assert.True(t, ok)
	assert.Equal(t, []string{"orders", "fulfil"}, []string{svc, ns})
	_, _, ok = ServiceFromDNS("127.0.0.5")
	assert.False(t, ok)
}
