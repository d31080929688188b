package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/vigilhq/vigil/testkit/otlpsink"
)

var (
	peerOnce sync.Once
	peerBin  string
	peerErr  error
)

// peerBinary is the benchmark peer (upstream components, contrib's
// tail_sampling among them): PEER_BIN, or built once for the test run.
func peerBinary(t *testing.T) string {
	peerOnce.Do(func() {
		if peerBin = os.Getenv("PEER_BIN"); peerBin != "" {
			return
		}
		dir, err := os.MkdirTemp("", "vigil-e2e-peer")
		if err != nil {
			peerErr = err
			return
		}
		peerBin = filepath.Join(dir, "peer")
		cmd := exec.Command("go", "build", "-o", peerBin, ".")
		cmd.Dir = "../benchmarks/peer"
		if out, err := cmd.CombinedOutput(); err != nil {
			peerErr = fmt.Errorf("cannot build the peer: %v\n%s", err, out)
		}
	})
	require.NoError(t, peerErr)
	return peerBin
}

// The deterministic policy types, alone and combined, as YAML policy lists.
var diffPolicies = map[string]string{
	"always":             `[{name: p, type: always_sample}]`,
	"latency":            `[{name: p, type: latency, latency: {threshold_ms: 60}}]`,
	"latency_window":     `[{name: p, type: latency, latency: {threshold_ms: 40, upper_threshold_ms: 120}}]`,
	"numeric":            `[{name: p, type: numeric_attribute, numeric_attribute: {key: key1, min_value: 50, max_value: 100}}]`,
	"numeric_invert":     `[{name: p, type: numeric_attribute, numeric_attribute: {key: key1, min_value: 50, max_value: 100, invert_match: true}}]`,
	"probabilistic":      `[{name: p, type: probabilistic, probabilistic: {sampling_percentage: 20}}]`,
	"probabilistic_salt": `[{name: p, type: probabilistic, probabilistic: {sampling_percentage: 10, hash_salt: custom-salt}}]`,
	"status_error":       `[{name: p, type: status_code, status_code: {status_codes: [ERROR]}}]`,
	"status_ok_unset":    `[{name: p, type: status_code, status_code: {status_codes: [OK, UNSET]}}]`,
	"string":             `[{name: p, type: string_attribute, string_attribute: {key: key2, values: [value1, value2]}}]`,
	"string_regex":       `[{name: p, type: string_attribute, string_attribute: {key: key2, values: ["val.*1"], enabled_regex_matching: true}}]`,
	"string_invert":      `[{name: p, type: string_attribute, string_attribute: {key: key2, values: [value1], invert_match: true}}]`,
	"span_count":         `[{name: p, type: span_count, span_count: {min_spans: 3, max_spans: 6}}]`,
	"trace_state":        `[{name: p, type: trace_state, trace_state: {key: key3, values: [value1]}}]`,
	"trace_flags":        `[{name: p, type: trace_flags}]`,
	"boolean":            `[{name: p, type: boolean_attribute, boolean_attribute: {key: key4, value: true}}]`,
	"boolean_invert":     `[{name: p, type: boolean_attribute, boolean_attribute: {key: key4, value: true, invert_match: true}}]`,
	"ottl":               `[{name: p, type: ottl_condition, ottl_condition: {error_mode: ignore, span: ["attributes[\"key2\"] == \"value2\""], spanevent: ["name == \"exception\""]}}]`,
	"and": `[{name: p, type: and, and: {and_sub_policy: [
	  {name: a, type: numeric_attribute, numeric_attribute: {key: key1, min_value: 20, max_value: 150}},
	  {name: b, type: not, not: {not_sub_policy: {name: c, type: latency, latency: {threshold_ms: 80}}}}]}}]`,
	"not": `[{name: p, type: not, not: {not_sub_policy: {name: c, type: status_code, status_code: {status_codes: [ERROR]}}}}]`,
	"drop": `[{name: d, type: drop, drop: {drop_sub_policy: [{name: x, type: string_attribute, string_attribute: {key: key2, values: [value1]}}]}},
	  {name: keep, type: status_code, status_code: {status_codes: [ERROR]}},
	  {name: base, type: probabilistic, probabilistic: {sampling_percentage: 30}}]`,
	"composite": `[{name: p, type: composite, composite: {max_total_spans_per_second: 10000000, policy_order: [a, b], composite_sub_policy: [
	  {name: a, type: status_code, status_code: {status_codes: [ERROR]}},
	  {name: b, type: probabilistic, probabilistic: {sampling_percentage: 25}}], rate_allocation: [{policy: a, percent: 50}]}}]`,
	"first_match": `[{name: a, type: status_code, status_code: {status_codes: [ERROR]}}, {name: b, type: latency, latency: {threshold_ms: 90}}]`,
}

// diffConfig writes one agent config: an OTLP receiver fanning out to one
// pipeline per policy set, each with its own tail_sampling and its own sink.
func diffConfig(health, grpcPort, tel int, sinks map[string]*otlpsink.Sink) string {
	var b strings.Builder
	fmt.Fprintf(&b, "extensions:\n  health_check:\n    endpoint: 127.0.0.1:%d\n", health)
	fmt.Fprintf(&b, "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 127.0.0.1:%d\n        max_recv_msg_size_mib: 64\n", grpcPort)
	names := make([]string, 0, len(diffPolicies))
	for n := range diffPolicies {
		names = append(names, n)
	}
	sort.Strings(names)
	// A batch processor after each sampler, as real configs have: upstream
	// forwards each sampled trace in its own call, which would otherwise
	// overflow the exporter's queue and lose traces (an export artefact, not
	// a sampling difference).
	b.WriteString("processors:\n  batch:\n    timeout: 200ms\n")
	for _, n := range names {
		fmt.Fprintf(&b, "  tail_sampling/%s:\n    decision_wait: 3s\n    num_traces: 100000\n", n)
		if n == "first_match" {
			b.WriteString("    sample_on_first_match: true\n")
		}
		fmt.Fprintf(&b, "    policies: %s\n", strings.ReplaceAll(diffPolicies[n], "\n", "\n      "))
	}
	b.WriteString("exporters:\n")
	for _, n := range names {
		fmt.Fprintf(&b, "  otlp_grpc/%s:\n    endpoint: %s\n    tls: {insecure: true}\n    compression: none\n", n, sinks[n].Addr)
	}
	fmt.Fprintf(&b, "service:\n  extensions: [health_check]\n%s  pipelines:\n", telemetryYAML(tel))
	for _, n := range names {
		fmt.Fprintf(&b, "    traces/%s:\n      receivers: [otlp]\n      processors: [tail_sampling/%s, batch]\n      exporters: [otlp_grpc/%s]\n", n, n, n)
	}
	return b.String()
}

// diffTraces generates the stream both samplers get: traces of 1 to 10 spans
// with every attribute, status, timing, tracestate and flag the policies
// look at, each trace's spans in one or two requests.
func diffTraces(n int) []ptrace.Traces {
	rng := rand.New(rand.NewPCG(42, 7))
	base := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	var reqs []ptrace.Traces
	cur := ptrace.NewTraces()
	next := ptrace.NewTraces()
	for i := 0; i < n; i++ {
		var tid pcommon.TraceID
		for j := range tid {
			tid[j] = byte(rng.IntN(256))
		}
		spans := 1 + rng.IntN(10)
		for s := 0; s < spans; s++ {
			dst := cur
			if s > 0 && rng.IntN(4) == 0 {
				dst = next // a later request
			}
			rs := dst.ResourceSpans().AppendEmpty()
			rs.Resource().Attributes().PutStr("service.name", fmt.Sprintf("svc-%d", rng.IntN(4)))
			if rng.IntN(20) == 0 {
				rs.Resource().Attributes().PutStr("key2", "value1")
			}
			sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
			sp.SetTraceID(tid)
			sp.SetSpanID(pcommon.SpanID{byte(s + 1), byte(i), byte(i >> 8), byte(rng.IntN(256))})
			if s > 0 {
				sp.SetParentSpanID(pcommon.SpanID{1, byte(i), byte(i >> 8), 9})
			}
			start := base.Add(time.Duration(rng.IntN(50)) * time.Millisecond)
			sp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
			sp.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Duration(rng.IntN(150)) * time.Millisecond)))
			sp.SetName("op")
			a := sp.Attributes()
			switch rng.IntN(5) {
			case 0:
				a.PutInt("key1", int64(rng.IntN(200)))
			case 1:
				a.PutDouble("key1", 75.5)
			case 2:
				a.PutStr("key1", "80")
			}
			switch rng.IntN(6) {
			case 0:
				a.PutStr("key2", "value1")
			case 1:
				a.PutStr("key2", "value2")
			case 2:
				a.PutStr("key2", "xxvalue1yy")
			case 3:
				a.PutStr("key2", "")
			}
			switch rng.IntN(4) {
			case 0:
				a.PutBool("key4", true)
			case 1:
				a.PutBool("key4", false)
			case 2:
				a.PutStr("key4", "true")
			}
			if rng.IntN(10) == 0 {
				sp.TraceState().FromRaw("key3=value1")
			} else if rng.IntN(10) == 0 {
				sp.TraceState().FromRaw("key3=value1,key3=value2")
			}
			if rng.IntN(8) == 0 {
				sp.SetFlags(1)
			}
			switch rng.IntN(12) {
			case 0:
				sp.Status().SetCode(ptrace.StatusCodeError)
			case 1:
				sp.Status().SetCode(ptrace.StatusCodeOk)
			}
			if rng.IntN(15) == 0 {
				sp.Events().AppendEmpty().SetName("exception")
			}
		}
		if cur.SpanCount() > 2000 {
			reqs = append(reqs, cur, next)
			cur, next = ptrace.NewTraces(), ptrace.NewTraces()
		}
	}
	return append(reqs, cur, next)
}

func keptTraceIDs(s *otlpsink.Sink) map[string]bool {
	out := map[string]bool{}
	for _, td := range s.Traces() {
		for _, rs := range td.ResourceSpans().All() {
			for _, ss := range rs.ScopeSpans().All() {
				for _, sp := range ss.Spans().All() {
					out[sp.TraceID().String()] = true
				}
			}
		}
	}
	return out
}

// The same trace stream through Vigil's tail_sampling and contrib's (the
// benchmark peer, v0.161.0), with identical configs, keeps identical sets of
// trace IDs for every deterministic policy type and combination.
func TestTailSamplingMatchesUpstream(t *testing.T) {
	peer := peerBinary(t)
	reqs := diffTraces(3000)
	type side struct {
		name  string
		bin   string
		sinks map[string]*otlpsink.Sink
		agent *agent
		grpc  int
	}
	var sides []*side
	for _, s := range []struct{ name, bin string }{{"vigil", vigilBin}, {"upstream", peer}} {
		sd := &side{name: s.name, bin: s.bin, sinks: map[string]*otlpsink.Sink{}, grpc: freePort(t)}
		for n := range diffPolicies {
			sink, err := otlpsink.Start("127.0.0.1:0", true)
			require.NoError(t, err)
			t.Cleanup(sink.Stop)
			sd.sinks[n] = sink
		}
		health, tel := freePort(t), freePort(t)
		cfg := writeConfig(t, diffConfig(health, sd.grpc, tel, sd.sinks))
		a := &agent{t: t, args: []string{"--config", cfg}, log: &syncBuffer{}, HealthPort: health}
		cmdBin := vigilBin
		vigilBin = s.bin
		a.start()
		vigilBin = cmdBin
		t.Cleanup(a.Stop)
		a.waitHealthy(60 * time.Second)
		sd.agent = a
		sides = append(sides, sd)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, sd := range sides {
		conn, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", sd.grpc), grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20)))
		require.NoError(t, err)
		client := ptraceotlp.NewGRPCClient(conn)
		start := time.Now()
		for _, td := range reqs {
			_, err := client.Export(ctx, ptraceotlp.NewExportRequestFromTraces(td))
			require.NoError(t, err)
		}
		conn.Close()
		t.Logf("%s: sent in %s", sd.name, time.Since(start))
	}
	// Decisions after 3 s; then stop both (anything pending is decided the same way).
	time.Sleep(5 * time.Second)
	for _, sd := range sides {
		sd.agent.Stop()
	}
	total := 0
	for _, r := range reqs {
		total += r.SpanCount()
	}
	t.Logf("%d spans in %d requests", total, len(reqs))
	for n := range diffPolicies {
		v, u := keptTraceIDs(sides[0].sinks[n]), keptTraceIDs(sides[1].sinks[n])
		var onlyV, onlyU []string
		for id := range v {
			if !u[id] {
				onlyV = append(onlyV, id)
			}
		}
		for id := range u {
			if !v[id] {
				onlyU = append(onlyU, id)
			}
		}
		require.NotEmpty(t, u, "%s: upstream kept nothing; the stream does not exercise this policy", n)
		if n != "always" {
			require.Less(t, len(u), 3000, "%s: upstream kept everything; the stream does not exercise this policy", n)
		}
		assert.Emptyf(t, append(onlyV, onlyU...), "%s: kept by vigil only %v, by upstream only %v (vigil %d, upstream %d)", n, head(onlyV), head(onlyU), len(v), len(u))
		t.Logf("%-20s kept %4d traces on both sides", n, len(v))
	}
}

func head(s []string) []string {
	if len(s) > 5 {
		return s[:5]
	}
	return s
}
