package policy

import (
	"fmt"
	"regexp"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// buildString: a resource or span attribute `key` whose string value is in
// values (exact, empty values ignored) or matches one of them as an RE2
// regular expression, unanchored as upstream's are. Span values must be
// non-empty strings; resource values are tested as Str(), so a non-string
// resource attribute is tested as "" (upstream's behaviour). cache_max_size
// is accepted; RE2 on attribute-sized strings needs no memo.
func buildString(b *Builder, c *Config, _ level) (Evaluator, error) {
	cfg := StringAttributeCfg{}
	if c.StringAttribute != nil {
		cfg = *c.StringAttribute
	}
	var matcher func(string) bool
	if cfg.EnabledRegexMatching {
		res := make([]*regexp.Regexp, 0, len(cfg.Values))
		for _, v := range cfg.Values {
			re, err := regexp.Compile(v)
			if err != nil {
				return nil, fmt.Errorf("string_attribute: invalid regex `%s`: %w", v, err)
			}
			res = append(res, re)
		}
		matcher = func(s string) bool {
			for _, re := range res {
				if re.MatchString(s) {
					return true
				}
			}
			return false
		}
	} else {
		set := map[string]bool{}
		for _, v := range cfg.Values {
			if v != "" {
				set[v] = true
			}
		}
		matcher = func(s string) bool { return set[s] }
	}
	bit, err := b.C.bit()
	if err != nil {
		return nil, err
	}
	b.C.resource = append(b.C.resource, resourcePred{bit: bit, match: func(m pcommon.Map) bool {
		v, ok := m.Get(cfg.Key)
		return ok && matcher(v.Str())
	}})
	b.C.span = append(b.C.span, spanPred{bit: bit, match: func(sp ptrace.Span, _ pcommon.Map) bool {
		v, ok := sp.Attributes().Get(cfg.Key)
		if !ok {
			return false
		}
		s := v.Str()
		return s != "" && matcher(s)
	}})
	return &bitPolicy{bit: bit, invert: cfg.InvertMatch}, nil
}
