package policy

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/ottl"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/ottl/contexts/ottlspan"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/ottl/contexts/ottlspanevent"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/ottl/ottlfuncs"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// ottlPred evaluates OTTL conditions on a span (span context) and then on
// each of its events (spanevent context); conditions of one list are ORed.
// With error_mode propagate an error is reported (the policy abstains);
// otherwise a failing condition counts as false.
type ottlPred struct {
	bit, errBit uint8
	span        *ottl.ConditionSequence[*ottlspan.TransformContext]
	event       *ottl.ConditionSequence[*ottlspanevent.TransformContext]
}

func (p *ottlPred) eval(sp ptrace.Span, ss ptrace.ScopeSpans, rs ptrace.ResourceSpans) (matched, failed bool) {
	ctx := context.Background()
	if p.span != nil {
		ok, err := p.span.Eval(ctx, ottlspan.NewTransformContext(rs, ss, sp))
		if err != nil {
			return false, true
		}
		if ok {
			return true, false
		}
	}
	if p.event != nil {
		evs := sp.Events()
		for i := 0; i < evs.Len(); i++ {
			ok, err := p.event.Eval(ctx, ottlspanevent.NewTransformContext(rs, ss, sp, evs.At(i)))
			if err != nil {
				return false, true
			}
			if ok {
				return true, false
			}
		}
	}
	return false, false
}

// conditions parses an ORed condition list in one context, where paths
// without a context name (attributes["x"]) mean the list's own context.
func conditions[K any](b *Builder, contextName string, parser ottl.Parser[K], conds []string, mode ottl.ErrorMode) (*ottl.ConditionSequence[K], error) {
	pc, err := ottl.NewParserCollection(b.Set,
		ottl.WithParserCollectionContext(contextName, &parser,
			ottl.WithConditionConverter(func(_ *ottl.ParserCollection[*ottl.ConditionSequence[K]], _ ottl.ConditionsGetter, parsed []*ottl.Condition[K]) (*ottl.ConditionSequence[K], error) {
				seq := ottl.NewConditionSequence(parsed, b.Set, ottl.WithLogicOperation[K](ottl.Or), ottl.WithConditionSequenceErrorMode[K](mode))
				return &seq, nil
			})))
	if err != nil {
		return nil, err
	}
	return pc.ParseConditionsWithContext(contextName, ottl.NewConditionsGetter(conds), true)
}

type ottlPolicy struct{ bit, errBit uint8 }

func (p *ottlPolicy) Evaluate(t *Trace) Decision {
	switch {
	case t.Sum.Errored&(1<<p.errBit) != 0:
		return Errored
	case t.Sum.Matched&(1<<p.bit) != 0:
		return Sampled
	}
	return NotSampled
}

func buildOTTL(b *Builder, c *Config, _ level) (Evaluator, error) {
	cfg := OTTLConditionCfg{}
	if c.OTTLCondition != nil {
		cfg = *c.OTTLCondition
	}
	if len(cfg.SpanConditions) == 0 && len(cfg.SpanEventConditions) == 0 {
		return nil, errors.New("ottl_condition: expected at least one OTTL condition to filter on")
	}
	var mode ottl.ErrorMode
	switch m := ottl.ErrorMode(strings.ToLower(cfg.ErrorMode)); m {
	case ottl.IgnoreError, ottl.PropagateError, ottl.SilentError:
		mode = m
	case "":
		mode = ottl.SilentError // upstream: unset behaves as silent
	default:
		return nil, fmt.Errorf("ottl_condition: unknown error mode %q (ignore, propagate or silent)", cfg.ErrorMode)
	}
	p := ottlPred{}
	var err error
	if len(cfg.SpanConditions) > 0 {
		funcs := ottlfuncs.StandardConverters[*ottlspan.TransformContext]()
		root := ottlfuncs.NewIsRootSpanFactory()
		funcs[root.Name()] = root
		parser, err := ottlspan.NewParser(funcs, b.Set, ottlspan.EnablePathContextNames())
		if err != nil {
			return nil, err
		}
		if p.span, err = conditions(b, ottlspan.ContextName, parser, cfg.SpanConditions, mode); err != nil {
			return nil, fmt.Errorf("ottl_condition: span: %w", err)
		}
	}
	if len(cfg.SpanEventConditions) > 0 {
		parser, err := ottlspanevent.NewParser(ottlfuncs.StandardConverters[*ottlspanevent.TransformContext](), b.Set, ottlspanevent.EnablePathContextNames())
		if err != nil {
			return nil, err
		}
		if p.event, err = conditions(b, ottlspanevent.ContextName, parser, cfg.SpanEventConditions, mode); err != nil {
			return nil, fmt.Errorf("ottl_condition: spanevent: %w", err)
		}
	}
	if p.bit, err = b.C.bit(); err != nil {
		return nil, err
	}
	if p.errBit, err = b.C.bit(); err != nil {
		return nil, err
	}
	b.C.ottl = append(b.C.ottl, p)
	return &ottlPolicy{bit: p.bit, errBit: p.errBit}, nil
}
