package topo

import "time"

const ms = time.Millisecond

// ledger is a deep gRPC chain behind an HTTP front door. Every request goes
// all the way down, deadlines shrinking hop by hop; balances retries rates on
// UNAVAILABLE (service-config retry policy).
var ledger = &Topology{
	Name:        "ledger",
	Description: "a deep gRPC chain behind an HTTP front door: gateway(HTTP) -> accounts -> postings -> balances -> rates -> fx",
	Front:       "gateway",
	Rate:        20,
	Flows: []Flow{
		{Name: "transfer", Service: "gateway", Route: "POST /api/transfers", Weight: 0.6},
		{Name: "account", Service: "gateway", Route: "GET /api/accounts/{id}", Weight: 0.4},
	},
	Services: []Service{
		{
			Name: "gateway", Protocol: HTTP, Replicas: 2, PodIP: true, Version: "2.3.1", Work: [2]time.Duration{300 * time.Microsecond, 500 * time.Microsecond},
			Ops: []Op{
				{Name: "POST /api/transfers", Front: true, Steps: []Step{call("accounts", "Transfer", 2*time.Second)}},
				{Name: "GET /api/accounts/{id}", Front: true, Steps: []Step{call("accounts", "Get", 1500*ms)}},
			},
		},
		{
			Name: "accounts", Protocol: GRPC, GRPCName: "ledger.v1.Accounts", Replicas: 2, Version: "1.12.0", Work: [2]time.Duration{400 * time.Microsecond, 700 * time.Microsecond},
			Ops: []Op{
				{Name: "Transfer", Validates: true, Sleep: 2 * ms, Steps: []Step{call("postings", "Post", 1500*ms)}},
				{Name: "Get", Validates: true, Sleep: 1 * ms, Steps: []Step{call("postings", "History", 1200*ms)}},
			},
		},
		{
			Name: "postings", Protocol: GRPC, GRPCName: "ledger.v1.Postings", Replicas: 2, PodIP: true, Version: "3.0.4", Work: [2]time.Duration{time.Millisecond, 1500 * time.Microsecond},
			Ops: []Op{
				{Name: "Post", Sleep: 3 * ms, Steps: []Step{call("balances", "Apply", time.Second)}},
				{Name: "History", Sleep: 2 * ms, Steps: []Step{call("balances", "Read", 900*ms)}},
			},
		},
		{
			Name: "balances", Protocol: GRPC, GRPCName: "ledger.v1.Balances", Replicas: 2, Version: "1.7.2", Work: [2]time.Duration{400 * time.Microsecond, 700 * time.Microsecond},
			Ops: []Op{
				{Name: "Apply", Sleep: 2 * ms, Steps: []Step{retried(call("rates", "Quote", 600*ms))}},
				{Name: "Read", Sleep: 1 * ms, Steps: []Step{retried(call("rates", "Quote", 600*ms))}},
			},
		},
		{
			Name: "rates", Protocol: GRPC, GRPCName: "ledger.v1.Rates", Replicas: 2, PodIP: true, Version: "0.9.8", Work: [2]time.Duration{300 * time.Microsecond, 600 * time.Microsecond},
			Ops: []Op{{Name: "Quote", Sleep: 1 * ms, Steps: []Step{call("fx", "Convert", 400*ms)}}},
		},
		{
			Name: "fx", Protocol: GRPC, GRPCName: "ledger.v1.FX", Replicas: 1, Version: "4.1.0", Work: [2]time.Duration{300 * time.Microsecond, 500 * time.Microsecond},
			Ops: []Op{{Name: "Convert", Sleep: 3 * ms}},
		},
	},
	Plan: []Slot{
		{Faults: []FaultSpec{{Kind: KindErrors, Target: "rates", Means: ErrorReturns, Min: 0.3, Max: 0.7}}},
		{Faults: []FaultSpec{{Kind: KindCPU, Target: "postings", Means: CPUQuota, Min: 1.3, Max: 1.5}}},
		{Faults: []FaultSpec{{Kind: KindNetworkDelay, Target: "balances", Means: LinkLatency, Min: 150, Max: 400}}},
		{Faults: []FaultSpec{
			{Kind: KindUnavailable, Target: "fx", Means: ProxyDown, Min: 1, Max: 1},
			{Kind: KindUnavailable, Target: "fx", Means: ResetPeer, Min: 1, Max: 1},
		}},
		{Control: &ControlSpec{Kind: ControlSurge, Target: "gateway", Min: 2, Max: 3}},
		{Control: &ControlSpec{Kind: ControlDeploy, Target: "accounts"}},
	},
	Short: [2]Slot{
		{Faults: []FaultSpec{
			{Kind: KindErrors, Target: "rates", Means: ErrorReturns, Min: 0.4, Max: 0.7},
			{Kind: KindErrors, Target: "balances", Means: ErrorReturns, Min: 0.4, Max: 0.7},
			{Kind: KindUnavailable, Target: "balances", Means: ProxyDown, Min: 1, Max: 1},
		}},
		{Faults: []FaultSpec{
			{Kind: KindCPU, Target: "postings", Means: CPUQuota, Min: 1.3, Max: 1.45},
			{Kind: KindNetworkDelay, Target: "balances", Means: LinkLatency, Min: 200, Max: 400},
		}},
	},
}

func call(service, method string, timeout time.Duration) Step {
	return Step{Kind: Call, Calls: []CallSpec{{Service: service, Method: method, Timeout: timeout}}}
}

func retried(s Step) Step {
	s.Calls[0].GRPCRetry = true
	return s
}
