package policy

import (
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// buildTraceFlags: a span with the W3C "sampled" flag (bit 0 of flags).
func buildTraceFlags(b *Builder, _ *Config, _ level) (Evaluator, error) {
	bit, err := b.C.bit()
	if err != nil {
		return nil, err
	}
	b.C.span = append(b.C.span, spanPred{bit: bit, match: func(sp ptrace.Span, _ pcommon.Map) bool { return sp.Flags()&1 != 0 }})
	return &bitPolicy{bit: bit}, nil
}
