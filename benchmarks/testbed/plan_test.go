package testbed

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vigilhq/vigil/benchmarks/testbed/topo"
	"github.com/vigilhq/vigil/internal/simulate"
)

func planFor(t *testing.T, o Options) plan {
	t.Helper()
	o.Bin, o.Endpoint, o.Toxiproxy, o.WorkDir = "testbed", "127.0.0.1:4317", "/bin/true", t.TempDir()
	o, err := o.withDefaults()
	require.NoError(t, err)
	p, err := buildPlan(o)
	require.NoError(t, err)
	return p
}

func TestPlanDeterministic(t *testing.T) {
	a := planFor(t, Options{Seed: 7})
	b := planFor(t, Options{Seed: 7})
	assert.Equal(t, a.String(), b.String())
	assert.Equal(t, a, b)
	c := planFor(t, Options{Seed: 8})
	assert.NotEqual(t, a.String(), c.String(), "another seed, another plan")
}

func TestPlanFull(t *testing.T) {
	for seed := int64(1); seed <= 20; seed++ {
		checkFullPlan(t, planFor(t, Options{Seed: seed}))
	}
}

func checkFullPlan(t *testing.T, p plan) {
	t.Helper()
	require.Len(t, p.Topologies, len(topo.All()))
	controls := map[string]bool{}
	for _, tp := range p.Topologies {
		assert.InDelta(t, tp.Topology.Rate, tp.Rate, tp.Topology.Rate*0.2+0.1)
		require.Len(t, tp.Items, len(tp.Topology.Plan))
		for i, it := range tp.Items {
			assert.GreaterOrEqual(t, it.At, fullWarmup, "no fault in the warmup")
			if i > 0 {
				prev := tp.Items[i-1]
				assert.Greater(t, it.At-prev.At-prev.For, time.Minute, "healthy gap between %s items", tp.Topology.Name)
			}
			if it.Control != nil {
				controls[it.Control.Kind] = true
				continue
			}
			assert.GreaterOrEqual(t, it.Size, it.Fault.Min)
			assert.LessOrEqual(t, it.Size, it.Fault.Max+1e-9)
		}
	}
	assert.Equal(t, map[string]bool{topo.ControlSurge: true, topo.ControlDeploy: true, topo.ControlFlood4xx: true}, controls)
	assert.Equal(t, fullWarmup+6*(fullFaultFor+fullGap), p.Duration())
}

func TestPlanShort(t *testing.T) {
	p := planFor(t, Options{Plan: PlanShort, Seed: 1})
	require.Len(t, p.Topologies, 1)
	tp := p.Topologies[0]
	assert.Equal(t, "ledger", tp.Topology.Name)
	require.Len(t, tp.Items, 2)
	assert.False(t, topo.LatencyOnly(tp.Items[0].Fault.Kind), "first a failing fault")
	assert.True(t, topo.LatencyOnly(tp.Items[1].Fault.Kind), "then a latency-only one")
	assert.LessOrEqual(t, p.Duration(), 7*time.Minute-20*time.Second, "room to start and stop within 7 minutes")
	for _, name := range topo.Names() {
		p := planFor(t, Options{Plan: PlanShort, Topologies: []string{name}})
		assert.Equal(t, name, p.Topologies[0].Topology.Name)
	}
}

func TestTruth(t *testing.T) {
	for _, tc := range []struct {
		topology string
		fault    topo.FaultSpec
		affected []string
		expect   []string
	}{
		{"ledger", topo.FaultSpec{Kind: topo.KindErrors, Target: "rates"}, []string{"balances", "postings", "accounts", "gateway"},
			[]string{"CascadingFailure origin_service=rates", "DependencyErrorSpike callee=rates service=balances"}},
		{"ledger", topo.FaultSpec{Kind: topo.KindCPU, Target: "postings"}, []string{"accounts", "gateway"},
			[]string{"CascadingFailure origin_service=postings", "DependencyLatencySpike callee=postings service=accounts"}},
		{"search", topo.FaultSpec{Kind: topo.KindErrors, Target: "recs"}, nil,
			[]string{"IsolatedFailure origin_service=recs", "DependencyErrorSpike callee=recs service=query"}},
		{"search", topo.FaultSpec{Kind: topo.KindErrors, Target: "shard-3"}, []string{"aggregator", "query", "web"},
			[]string{"CascadingFailure origin_service=shard-3", "DependencyErrorSpike callee=shard-3 service=aggregator"}},
		{"fulfil", topo.FaultSpec{Kind: topo.KindErrors, Target: "stock", Method: "Level"}, []string{"reports"},
			[]string{"CascadingFailure origin_service=stock", "DependencyErrorSpike callee=stock service=reports"}},
		{"fulfil", topo.FaultSpec{Kind: topo.KindErrors, Target: "carrier-api"}, []string{"carrier", "picker"},
			[]string{"CascadingFailure origin_service=carrier-api", "DependencyErrorSpike callee=carrier-api service=carrier"}},
		{"fulfil", topo.FaultSpec{Kind: topo.KindPoolExhaustion, Target: "stock"}, []string{"picker", "reports"},
			[]string{"CascadingFailure origin_service=stock", "Saturation service=stock"}},
		{"fulfil", topo.FaultSpec{Kind: topo.KindSlowQuery, Target: "postgresql/fulfil", Via: []string{"orders", "stock"}}, []string{"orders", "stock", "api", "picker", "reports"},
			[]string{"CascadingFailure origin_service=postgresql/fulfil", "DependencyLatencySpike callee=postgresql/fulfil service=orders"}},
	} {
		t.Run(tc.topology+" "+tc.fault.Target, func(t *testing.T) {
			tp, _ := topo.Get(tc.topology)
			f := faultTruth(tp, tc.fault, 1, "", time.Time{}, time.Time{})
			assert.Equal(t, tc.affected, f.Affected)
			var got []string
			for _, e := range f.Expect {
				got = append(got, e.Alertname+" "+labels(e))
			}
			assert.Equal(t, tc.expect, got)
			_, external := topo.DBName(tc.fault.Target)
			assert.Equal(t, external, f.External)
			if len(tc.affected) == 0 {
				assert.NotContains(t, f.Tolerate, simulate.AlertCascadingFailure)
			}
		})
	}
}

func labels(e simulate.Expectation) string {
	var parts []string
	for _, k := range []string{"callee", "origin_service", "service"} {
		if v, ok := e.Labels[k]; ok {
			parts = append(parts, k+"="+v)
		}
	}
	return strings.Join(parts, " ")
}

func TestDescribe(t *testing.T) {
	for _, name := range Topologies() {
		d, err := Describe(name)
		require.NoError(t, err)
		assert.Contains(t, d, name)
	}
	_, err := Describe("nope")
	assert.Error(t, err)
}

func TestOptions(t *testing.T) {
	_, err := Options{Bin: "x", Endpoint: "y", Toxiproxy: "/bin/true", Plan: "medium"}.withDefaults()
	assert.ErrorContains(t, err, "invalid plan")
	_, err = Options{Endpoint: "y", Toxiproxy: "/bin/true"}.withDefaults()
	assert.ErrorContains(t, err, "Bin")
	_, err = buildPlan(Options{Topologies: []string{"shop"}})
	assert.ErrorContains(t, err, "invalid topology")
}
