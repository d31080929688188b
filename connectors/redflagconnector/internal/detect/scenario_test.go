package detect

import (
	"bufio"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigilhq/vigil/internal/redflag"
)

var update = flag.Bool("update", false, "rewrite the golden files of the scenario scripts")

// A scenario script drives the engine through phases of steady traffic, one
// batch and one evaluation every 10 s, and records every alert transition.
//
//	phase <duration>            steady traffic for that long, then `end`
//	  edge <caller> <callee> calls=N [errors=N] [class=timeout|overload|...]
//	       [dur=20ms] [slow=N@900ms] [retries=N] [c4xx=N] [cancelled=N]
//	       [kind=address|rpc|host|service|...]  (what the callee name is)
//	       [wraps=<callee>]  (its spans wrap calls to another callee)
//	       [jp=N jc=N je=N jprop=N]  (in-process joins: parents, calls, failed, propagated)
//	  service <name> calls=N [errors=N] [dur=..] [own=N joined=N jerr=N]
//	       [self=5ms] [selfslow=N@90ms]  (exclusive time of each joined request)
//	  claim <name> <service> [kind=join|address|rpc|host]  (a name tied to a service)
//	  (any line) [every=N]  only every Nth ten-second step of the phase
//	  logs <service> errors=N [template=word_word]
//	  metric <service> <instance> <name> <value> [k=v ...]
//	end
//	slo <service> <name> <objective>   (before the first phase)
//	set <key>=<value>                  (config: error_spike.for, cascade.for, ...)
//
// Output lines: "<elapsed> <from>-><to> <alertname>{labels} key annotations".
func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/scenarios/*.txt")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			got := runScenario(t, f)
			golden := strings.TrimSuffix(f, ".txt") + ".golden"
			if *update {
				require.NoError(t, os.WriteFile(golden, []byte(got), 0o644))
				return
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err, "no golden file: run go test -run TestScenarios -update")
			require.Equal(t, string(want), got)
		})
	}
}

type scenarioLine struct {
	kind string
	args []string
	kv   map[string]string
}

func runScenario(t *testing.T, path string) string {
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	cfg := DefaultConfig()
	var eng *Engine
	start := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	now := start
	var out strings.Builder
	var phase []scenarioLine
	var phaseDur time.Duration
	inPhase := false
	sc := bufio.NewScanner(f)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		l := scenarioLine{kind: fields[0], kv: map[string]string{}}
		for _, fld := range fields[1:] {
			if k, v, ok := strings.Cut(fld, "="); ok {
				l.kv[k] = v
			} else {
				l.args = append(l.args, fld)
			}
		}
		switch {
		case l.kind == "set":
			for k, v := range l.kv {
				applySetting(t, &cfg, k, v)
			}
		case l.kind == "slo":
			obj, err := strconv.ParseFloat(l.args[2], 64)
			require.NoError(t, err)
			cfg.SLOs = append(cfg.SLOs, SLOConfig{Service: l.args[0], Name: l.args[1], Objective: obj})
		case l.kind == "phase":
			d, err := time.ParseDuration(l.args[0])
			require.NoError(t, err, "line %d", lineNo)
			phaseDur, phase, inPhase = d, nil, true
		case l.kind == "end":
			require.True(t, inPhase, "line %d: end without phase", lineNo)
			if eng == nil {
				eng = New(cfg)
			}
			for step := BucketWidth; step <= phaseDur; step += BucketWidth {
				var b Batch
				for _, pl := range phase {
					if every := num(t, pl.kv, "every"); every > 1 && int64(step/BucketWidth-1)%int64(every) != 0 {
						continue
					}
					addToBatch(t, &b, pl, now)
				}
				now = now.Add(BucketWidth)
				// Apply just before the evaluation, inside the bucket.
				eng.Apply(now.Add(-time.Second), &b)
				for _, tr := range eng.Evaluate(now) {
					fmt.Fprintf(&out, "%s %s\n", now.Sub(start), formatTransition(tr))
				}
			}
			inPhase = false
		case inPhase:
			phase = append(phase, l)
		default:
			t.Fatalf("%s:%d: unknown directive %q", path, lineNo, l.kind)
		}
	}
	require.NoError(t, sc.Err())
	if eng != nil {
		for _, a := range eng.Alerts() {
			fmt.Fprintf(&out, "end %s %s\n", a.State, formatLabels(a.Labels))
		}
	}
	return out.String()
}

func applySetting(t *testing.T, cfg *Config, k, v string) {
	d, _ := time.ParseDuration(v)
	switch k {
	case "error_spike.for":
		cfg.ErrorSpike.For = d
	case "cascade.for":
		cfg.Cascade.For = d
	case "retry_storm.metastable_after":
		cfg.RetryStorm.MetastableAfter = d
	case "max_edges":
		cfg.MaxEdges, _ = strconv.Atoi(v)
	default:
		t.Fatalf("unknown setting %q", k)
	}
}

func num(t *testing.T, kv map[string]string, k string) uint32 {
	v, ok := kv[k]
	if !ok {
		return 0
	}
	n, err := strconv.ParseUint(v, 10, 32)
	require.NoError(t, err, "%s=%s", k, v)
	return uint32(n)
}

func durMs(t *testing.T, s string) float64 {
	d, err := time.ParseDuration(s)
	require.NoError(t, err)
	return float64(d) / float64(time.Millisecond)
}

func parseClass(s string) Class {
	for c := Class(0); c < NumClasses; c++ {
		if c.String() == s {
			return c
		}
	}
	return ClassOther
}

// fillCounts spreads calls over durations: `dur` for the normal ones, `slow`
// N@D for slow ones; timed-out errors take the slow duration.
func fillCounts(t *testing.T, c *Counts, kv map[string]string) {
	calls, errors := num(t, kv, "calls"), num(t, kv, "errors")
	dur := 20.0
	if v, ok := kv["dur"]; ok {
		dur = durMs(t, v)
	}
	var slowN uint32
	slowDur := dur
	if v, ok := kv["slow"]; ok {
		n, d, _ := strings.Cut(v, "@")
		x, err := strconv.ParseUint(n, 10, 32)
		require.NoError(t, err)
		slowN, slowDur = uint32(x), durMs(t, d)
	}
	class := parseClass(kv["class"])
	c4xx, retries, cancelled := num(t, kv, "c4xx"), num(t, kv, "retries"), num(t, kv, "cancelled")
	for i := uint32(0); i < calls; i++ {
		d := dur
		if i < slowN {
			d = slowDur
		}
		failed := i < errors
		c.Observe(d, Outcome{Failed: failed, Class: class, Client4xx: !failed && i >= calls-c4xx, Retry: i >= calls-retries, OwnTimeout: failed && class == ClassTimeout})
	}
	for i := uint32(0); i < cancelled; i++ {
		c.Observe(dur, Outcome{Cancelled: true})
	}
	c.JoinedParents, c.JoinedCalls = num(t, kv, "jp"), num(t, kv, "jc")
	c.JoinedErr, c.JoinedPropagated = num(t, kv, "je"), num(t, kv, "jprop")
	c.OwnErrors, c.Joined = num(t, kv, "own"), num(t, kv, "joined")
	if v, ok := kv["jerr"]; ok {
		x, _ := strconv.ParseUint(v, 10, 32)
		c.JoinedErr = uint32(x)
	}
}

func addToBatch(t *testing.T, b *Batch, l scenarioLine, now time.Time) {
	trace := [16]byte{1, 2, 3}
	switch l.kind {
	case "edge":
		d := EdgeDelta{Caller: l.args[0], Callee: l.args[1], ErrTrace: trace, Kind: parseKind(t, l.kv["kind"]), Wraps: l.kv["wraps"]}
		fillCounts(t, &d.Counts, l.kv)
		b.Edges = append(b.Edges, d)
	case "service":
		d := ServiceDelta{Service: l.args[0], ErrTrace: trace}
		fillCounts(t, &d.Counts, l.kv)
		if v, ok := l.kv["self"]; ok {
			self := durMs(t, v)
			var slowN uint32
			slowDur := self
			if sv, ok := l.kv["selfslow"]; ok {
				n, dur, _ := strings.Cut(sv, "@")
				x, err := strconv.ParseUint(n, 10, 32)
				require.NoError(t, err)
				slowN, slowDur = uint32(x), durMs(t, dur)
			}
			for i := uint32(0); i < d.Calls; i++ {
				if i < slowN {
					d.Self[BinOf(slowDur)]++
				} else {
					d.Self[BinOf(self)]++
				}
			}
		}
		b.Services = append(b.Services, d)
	case "logs":
		n := num(t, l.kv, "errors")
		d := LogDelta{Service: l.args[0], Errors: n, Total: n}
		if tpl, ok := l.kv["template"]; ok {
			d.Templates = map[string]uint32{strings.ReplaceAll(tpl, "_", " "): n}
		}
		b.Logs = append(b.Logs, d)
	case "metric":
		v, err := strconv.ParseFloat(l.args[3], 64)
		require.NoError(t, err)
		b.Metrics = append(b.Metrics, MetricSample{Service: l.args[0], Instance: l.args[1], Metric: l.args[2], Value: v, Attrs: l.kv})
	case "claim":
		kinds := map[string]ClaimKind{"": ClaimJoin, "join": ClaimJoin, "address": ClaimAddress, "rpc": ClaimRPC, "host": ClaimHost}
		k, ok := kinds[l.kv["kind"]]
		require.True(t, ok, "claim kind %q", l.kv["kind"])
		b.Claims = append(b.Claims, Claim{Name: l.args[0], Service: l.args[1], Kind: k})
	default:
		t.Fatalf("unknown phase line %q", l.kind)
	}
}

func parseKind(t *testing.T, s string) redflag.Kind {
	if s == "" {
		return redflag.KindHost
	}
	for k := redflag.KindNone; k <= redflag.KindRPC; k++ {
		if k.String() == s {
			return k
		}
	}
	t.Fatalf("unknown callee kind %q", s)
	return 0
}

func formatLabels(l map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(l)) {
		if k == "alertname" {
			continue
		}
		parts = append(parts, k+"="+l[k])
	}
	return l["alertname"] + "{" + strings.Join(parts, ",") + "}"
}

func formatTransition(tr Transition) string {
	from := string(tr.From)
	if from == "" {
		from = "new"
	}
	s := fmt.Sprintf("%s->%s %s", from, tr.Alert.State, formatLabels(tr.Alert.Labels))
	for _, k := range []string{"affected_services", "metastable", "timeout", "new_template", "resource", "origin_kind", "cause"} {
		if v := tr.Alert.Annotations[k]; v != "" {
			s += " " + k + "=" + v
		}
	}
	return s
}
