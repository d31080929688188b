package testbed

import (
	"fmt"
	"strings"
	"time"

	"github.com/vigilhq/vigil/benchmarks/testbed/topo"
)

// describe writes a topology out in words.
func describe(t *topo.Topology) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (namespace %s): %s\n", t.Name, t.Name, t.Description)
	fmt.Fprintf(&b, "load: %.0f root req/s (±20%% by seed)", t.Rate)
	for _, f := range t.Flows {
		if f.Rate > 0 {
			fmt.Fprintf(&b, "; %s %s %.1f/min", f.Service, f.Route, f.Rate*60)
		} else {
			fmt.Fprintf(&b, "; %s %s %.0f%%", f.Service, f.Route, 100*f.Weight)
		}
	}
	b.WriteString("; 3% invalid requests\n")
	if len(t.Databases) > 0 {
		fmt.Fprintf(&b, "databases: %s (PostgreSQL)\n", strings.Join(t.Databases, ", "))
	}
	b.WriteString("services:\n")
	for _, s := range t.Services {
		podIP := "no k8s.pod.ip"
		if s.PodIP {
			podIP = "sets k8s.pod.ip"
		}
		name := s.Protocol.String()
		if s.GRPCName != "" {
			name += " " + s.GRPCName
		}
		fmt.Fprintf(&b, "  %s: %s, %d replica(s), version %s, %s, %s-%s CPU per request", s.Name, name, s.Replicas, s.Version, podIP, s.Work[0], s.Work[1])
		if s.DB != nil {
			fmt.Fprintf(&b, ", pool of %d to %s", s.DB.MaxOpen, s.DB.Database)
		}
		b.WriteString("\n")
		for _, op := range s.Ops {
			fmt.Fprintf(&b, "    %s%s\n", op.Name, describeSteps(op.Steps))
		}
		if s.Jobs != nil {
			fmt.Fprintf(&b, "    consumes %s (%d workers per replica)%s\n", s.Jobs.Queue, s.Jobs.Workers, describeSteps(s.Jobs.Steps))
		}
	}
	b.WriteString("full plan (order shuffled by seed; one alternative drawn per slot):\n")
	for _, s := range t.Plan {
		fmt.Fprintf(&b, "  %s\n", describeSlot(t, s))
	}
	b.WriteString("short plan:\n")
	for _, s := range t.Short {
		fmt.Fprintf(&b, "  %s\n", describeSlot(t, s))
	}
	return b.String()
}

func describeSteps(steps []topo.Step) string {
	var parts []string
	for _, st := range steps {
		switch st.Kind {
		case topo.Call:
			parts = append(parts, describeCall(st.Calls[0]))
		case topo.FanOut:
			var cs []string
			for _, c := range st.Calls {
				cs = append(cs, c.Service)
			}
			parts = append(parts, fmt.Sprintf("errgroup fan-out (cancel on first error) to %s.%s %s", strings.Join(cs, ", "), st.Calls[0].Method, st.Calls[0].Timeout))
		case topo.Query:
			parts = append(parts, "SQL "+firstWords(st.SQL, 4))
		case topo.Publish:
			parts = append(parts, "publish to "+st.Queue)
		case topo.Async:
			parts = append(parts, "async "+describeCall(st.Calls[0]))
		}
	}
	if len(parts) == 0 {
		return ": leaf"
	}
	return " -> " + strings.Join(parts, ", then ")
}

func describeCall(c topo.CallSpec) string {
	s := fmt.Sprintf("%s %s (timeout %s", c.Service, c.Method, c.Timeout)
	switch {
	case c.GRPCRetry:
		s += ", retry policy UNAVAILABLE x3"
	case c.HTTPRetries > 0:
		s += fmt.Sprintf(", %d retries on 5xx with backoff", c.HTTPRetries)
	case c.Hedge > 0:
		s += fmt.Sprintf(", hedged after %s", c.Hedge)
	case c.Breaker:
		s += ", circuit breaker with fallback"
	}
	if c.ByIP {
		s += ", by pod IP"
	} else if !strings.Contains(c.Method, " ") {
		s += ", pod IPs via resolver"
	} else {
		s += ", by DNS name"
	}
	if c.Share > 0 {
		s += fmt.Sprintf(", %.1f%% of requests", 100*c.Share)
	}
	return s + ")"
}

func describeSlot(t *topo.Topology, s topo.Slot) string {
	if s.Control != nil {
		c := *s.Control
		return fmt.Sprintf("control %s %s (%s)", c.Kind, c.Target, controlRange(c))
	}
	var alts []string
	for _, f := range s.Faults {
		exp := faultTruth(t, f, f.Min, "", zeroTime, zeroTime)
		var names []string
		for _, e := range exp.Expect {
			var ls []string
			for _, k := range []string{"origin_service", "service", "callee"} {
				if v, ok := e.Labels[k]; ok {
					ls = append(ls, fmt.Sprintf("%s=%q", k, v))
				}
			}
			names = append(names, e.Alertname+"{"+strings.Join(ls, ",")+"}")
		}
		m := ""
		if f.Method != "" {
			m = " (" + f.Method + " only)"
		}
		alts = append(alts, fmt.Sprintf("%s at %s%s by %s, size %g-%g; affects %v; expect %s",
			f.Kind, f.Target, m, f.Means, f.Min, f.Max, exp.Affected, strings.Join(names, ", ")))
	}
	return "fault " + strings.Join(alts, "\n    | or ")
}

func controlRange(c topo.ControlSpec) string {
	switch c.Kind {
	case topo.ControlSurge:
		return fmt.Sprintf("%g-%gx root traffic", c.Min, c.Max)
	case topo.ControlFlood4xx:
		return fmt.Sprintf("invalid requests at %g-%gx the root rate", c.Min, c.Max)
	}
	return "restart each replica on a new IP"
}

func firstWords(s string, n int) string {
	f := strings.Fields(s)
	if len(f) > n {
		f = append(f[:n], "...")
	}
	return strings.Join(f, " ")
}

var zeroTime time.Time
