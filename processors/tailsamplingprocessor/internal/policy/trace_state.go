package policy

import (
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/otel/trace"
)

// buildTraceState: a span whose W3C tracestate (parsed as the OpenTelemetry
// Go API does; an invalid one matches nothing) has `key` with one of values.
func buildTraceState(b *Builder, c *Config, _ level) (Evaluator, error) {
	cfg := TraceStateCfg{}
	if c.TraceState != nil {
		cfg = *c.TraceState
	}
	set := map[string]bool{}
	for _, v := range cfg.Values {
		if v != "" && len(cfg.Key)+len(v) < 256 {
			set[v] = true
		}
	}
	bit, err := b.C.bit()
	if err != nil {
		return nil, err
	}
	b.C.span = append(b.C.span, spanPred{bit: bit, match: func(sp ptrace.Span, _ pcommon.Map) bool {
		raw := sp.TraceState().AsRaw()
		if raw == "" || len(set) == 0 {
			return false
		}
		ts, err := trace.ParseTraceState(raw)
		return err == nil && set[ts.Get(cfg.Key)]
	}})
	return &bitPolicy{bit: bit}, nil
}
