package policy

import (
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// buildBoolean: a resource or span attribute `key` whose Bool() equals value;
// a non-bool attribute reads as false (upstream's typed accessor).
func buildBoolean(b *Builder, c *Config, _ level) (Evaluator, error) {
	cfg := BooleanAttributeCfg{}
	if c.BooleanAttribute != nil {
		cfg = *c.BooleanAttribute
	}
	match := func(m pcommon.Map) bool {
		v, ok := m.Get(cfg.Key)
		return ok && v.Bool() == cfg.Value
	}
	bit, err := b.C.bit()
	if err != nil {
		return nil, err
	}
	b.C.resource = append(b.C.resource, resourcePred{bit: bit, match: match})
	b.C.span = append(b.C.span, spanPred{bit: bit, match: func(sp ptrace.Span, _ pcommon.Map) bool { return match(sp.Attributes()) }})
	return &bitPolicy{bit: bit, invert: cfg.InvertMatch}, nil
}
