package policy

import (
	"errors"
	"math"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// buildNumeric: a resource or span attribute `key` whose Int() is in
// [min_value, max_value], a zero bound meaning unbounded (upstream's rule, so
// "min 0" cannot be expressed). Non-int values read as 0, as upstream's typed
// accessor returns. With invert_match, traces where nothing matches are sampled.
func buildNumeric(b *Builder, c *Config, _ level) (Evaluator, error) {
	cfg := NumericAttributeCfg{}
	if c.NumericAttribute != nil {
		cfg = *c.NumericAttribute
	}
	if cfg.MinValue == 0 && cfg.MaxValue == 0 {
		// Upstream builds a nil evaluator here and crashes on the first trace.
		return nil, errors.New("numeric_attribute: set min_value or max_value (0 means unbounded, both 0 matches nothing useful)")
	}
	lo, hi := cfg.MinValue, cfg.MaxValue
	if lo == 0 {
		lo = math.MinInt64
	}
	if hi == 0 {
		hi = math.MaxInt64
	}
	match := func(m pcommon.Map) bool {
		v, ok := m.Get(cfg.Key)
		if !ok {
			return false
		}
		n := v.Int()
		return lo <= n && n <= hi
	}
	bit, err := b.C.bit()
	if err != nil {
		return nil, err
	}
	b.C.resource = append(b.C.resource, resourcePred{bit: bit, match: match})
	b.C.span = append(b.C.span, spanPred{bit: bit, match: func(sp ptrace.Span, _ pcommon.Map) bool { return match(sp.Attributes()) }})
	return &bitPolicy{bit: bit, invert: cfg.InvertMatch}, nil
}
