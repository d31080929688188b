package policy

import (
	"errors"
	"fmt"
	"sync/atomic"

	"go.opentelemetry.io/collector/component"

	"github.com/vigilhq/vigil/internal/redflag"
)

// Builder builds evaluators from policy configs, compiling their span-level
// conditions into one Compiler.
type Builder struct {
	C   *Compiler
	Set component.TelemetrySettings
	// Flags is where red_flag policies read the flagged edges; the processor
	// fills it from the status extension.
	Flags *atomic.Pointer[redflag.FlagSet]
	// RedFlagStatus collects the status extension names red_flag policies use.
	RedFlagStatus []string
	// Built holds the policies BuildAll returned, for the caller's convenience.
	Built []Policy
}

type buildFunc func(b *Builder, c *Config, l level) (Evaluator, error)

var builders map[string]buildFunc

func init() {
	builders = map[string]buildFunc{
		"always_sample":     buildAlways,
		"latency":           buildLatency,
		"numeric_attribute": buildNumeric,
		"probabilistic":     buildProbabilistic,
		"status_code":       buildStatus,
		"string_attribute":  buildString,
		"rate_limiting":     buildRateLimiting,
		"bytes_limiting":    buildBytesLimiting,
		"span_count":        buildSpanCount,
		"trace_state":       buildTraceState,
		"boolean_attribute": buildBoolean,
		"ottl_condition":    buildOTTL,
		"trace_flags":       buildTraceFlags,
		"red_flag":          buildRedFlag,
		"and":               buildAnd,
		"not":               buildNot,
		"drop":              buildDrop,
		"composite":         buildComposite,
	}
}

// Policy is a built top-level policy.
type Policy struct {
	Name      string
	Evaluator Evaluator
	Drop      bool // a drop policy: evaluated first, Dropped ends the decision
}

// BuildAll builds the top-level policies: names must be non-empty and unique;
// drop policies come first, each group in config order.
func (b *Builder) BuildAll(cfgs []Config) ([]Policy, error) {
	var drops, others []Policy
	seen := map[string]bool{}
	var errs []error
	for i := range cfgs {
		c := &cfgs[i]
		if c.Name == "" {
			errs = append(errs, fmt.Errorf("policies[%d]: policy name cannot be empty", i))
			continue
		}
		if seen[c.Name] {
			errs = append(errs, fmt.Errorf("policies[%d]: duplicate policy name %q", i, c.Name))
			continue
		}
		seen[c.Name] = true
		e, err := b.build(c, levelTop)
		if err != nil {
			errs = append(errs, fmt.Errorf("policies[%d] %q: %w", i, c.Name, err))
			continue
		}
		p := Policy{Name: c.Name, Evaluator: e, Drop: c.Type == "drop"}
		if p.Drop {
			drops = append(drops, p)
		} else {
			others = append(others, p)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return append(drops, others...), nil
}

func (b *Builder) build(c *Config, l level) (Evaluator, error) {
	f, ok := builders[c.Type]
	if !ok {
		return nil, fmt.Errorf("unknown sampling policy type %q (known: %s)", c.Type, knownTypes())
	}
	if !l.allowed(c.Type) {
		return nil, fmt.Errorf("policy type %q is not allowed in %s", c.Type, l)
	}
	return f(b, c, l)
}

func buildSubs(b *Builder, subs []Config, l level, what string) ([]Evaluator, error) {
	out := make([]Evaluator, 0, len(subs))
	for i := range subs {
		e, err := b.build(&subs[i], l)
		if err != nil {
			return nil, fmt.Errorf("%s[%d] %q: %w", what, i, subs[i].Name, err)
		}
		out = append(out, e)
	}
	return out, nil
}

func anyStateful(es []Evaluator) bool {
	for _, e := range es {
		if IsStateful(e) {
			return true
		}
	}
	return false
}
