package topo

import (
	"strconv"
	"time"
)

// search is a wide fan-out: the aggregator asks six shards at once in an
// errgroup (one failure cancels the rest), then hedges a call to the ranker;
// query calls recs behind a circuit breaker with a fallback.
var search = &Topology{
	Name:        "search",
	Description: "wide fan-out: web(HTTP) -> query(HTTP) -> aggregator(gRPC) -> shard-0..5 (errgroup) + ranker (hedged); query -> recs behind a breaker with fallback",
	Front:       "web",
	Rate:        15,
	Flows: []Flow{
		{Name: "search", Service: "web", Route: "GET /search", Weight: 1},
	},
	Services: append(append([]Service{
		{
			Name: "web", Protocol: HTTP, Replicas: 2, PodIP: true, Version: "5.2.0", Work: [2]time.Duration{300 * time.Microsecond, 500 * time.Microsecond},
			Ops: []Op{{Name: "GET /search", Front: true, Steps: []Step{{Kind: Call, Calls: []CallSpec{
				{Service: "query", Method: "GET /v1/query", Timeout: 1500 * ms, HTTPRetries: 2},
			}}}}},
		},
		{
			Name: "query", Protocol: HTTP, Replicas: 2, Version: "2.0.7", Work: [2]time.Duration{400 * time.Microsecond, 700 * time.Microsecond},
			Ops: []Op{{Name: "GET /v1/query", Validates: true, Steps: []Step{
				call("aggregator", "Search", 1200*ms),
				{Kind: Call, Calls: []CallSpec{{Service: "recs", Method: "GET /v1/recs/{id}", Timeout: 300 * ms, Breaker: true, ByIP: true}}},
			}}},
		},
		{
			Name: "aggregator", Protocol: GRPC, GRPCName: "search.v1.Aggregator", Replicas: 2, PodIP: true, Version: "1.3.3", Work: [2]time.Duration{time.Millisecond, 1500 * time.Microsecond},
			Ops: []Op{{Name: "Search", Steps: []Step{
				{Kind: FanOut, Calls: shardCalls()},
				{Kind: Call, Calls: []CallSpec{{Service: "ranker", Method: "Rank", Timeout: 800 * ms, Hedge: 60 * ms}}},
			}}},
		},
	}, shards()...),
		Service{
			Name: "ranker", Protocol: GRPC, GRPCName: "search.v1.Ranker", Replicas: 2, Version: "0.4.1", Work: [2]time.Duration{600 * time.Microsecond, 1000 * time.Microsecond},
			Ops: []Op{{Name: "Rank", Sleep: 8 * ms}},
		},
		Service{
			Name: "recs", Protocol: HTTP, Replicas: 1, PodIP: true, Version: "3.1.0", Work: [2]time.Duration{300 * time.Microsecond, 600 * time.Microsecond},
			Ops: []Op{{Name: "GET /v1/recs/{id}", Sleep: 5 * ms}},
		},
	),
	Plan: []Slot{
		{Faults: shardErrors(0.3, 0.7)},
		{Faults: []FaultSpec{{Kind: KindLatency, Target: "ranker", Means: HandlerLatency, Min: 150, Max: 400}}},
		{Faults: []FaultSpec{
			{Kind: KindErrors, Target: "recs", Means: ErrorReturns, Min: 0.9, Max: 1},
			{Kind: KindUnavailable, Target: "recs", Means: ProxyDown, Min: 1, Max: 1},
		}},
		{Faults: []FaultSpec{{Kind: KindCPU, Target: "aggregator", Means: CPUQuota, Min: 1.3, Max: 1.5}}},
		{Control: &ControlSpec{Kind: ControlFlood4xx, Target: "web", Min: 1, Max: 2}},
		{Control: &ControlSpec{Kind: ControlSurge, Target: "web", Min: 2, Max: 3}},
	},
	Short: [2]Slot{
		{Faults: shardErrors(0.4, 0.7)},
		{Faults: []FaultSpec{
			{Kind: KindLatency, Target: "ranker", Means: HandlerLatency, Min: 200, Max: 400},
			{Kind: KindCPU, Target: "aggregator", Means: CPUQuota, Min: 1.3, Max: 1.45},
		}},
	},
}

const shardCount = 6

func shards() []Service {
	out := make([]Service, shardCount)
	for i := range out {
		out[i] = Service{
			Name: "shard-" + strconv.Itoa(i), Protocol: GRPC, GRPCName: "search.v1.Shard", Replicas: 1, PodIP: i%2 == 0, Version: "7.0.2",
			Work: [2]time.Duration{300 * time.Microsecond, 600 * time.Microsecond},
			Ops:  []Op{{Name: "Lookup", Sleep: time.Duration(4+2*i) * ms}},
		}
	}
	return out
}

func shardCalls() []CallSpec {
	out := make([]CallSpec, shardCount)
	for i := range out {
		out[i] = CallSpec{Service: "shard-" + strconv.Itoa(i), Method: "Lookup", Timeout: 500 * ms}
	}
	return out
}

func shardErrors(lo, hi float64) []FaultSpec {
	out := make([]FaultSpec, shardCount)
	for i := range out {
		out[i] = FaultSpec{Kind: KindErrors, Target: "shard-" + strconv.Itoa(i), Means: ErrorReturns, Min: lo, Max: hi}
	}
	return out
}
