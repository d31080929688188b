package policy

import (
	"errors"
	"fmt"

	"github.com/vigilhq/vigil/processors/tailsamplingprocessor/internal/store"
)

type statusCode struct{ mask uint8 }

func (p *statusCode) Evaluate(t *Trace) Decision {
	if t.Sum.Status&p.mask != 0 {
		return Sampled
	}
	return NotSampled
}

// buildStatus: any span with one of the status codes OK, ERROR, UNSET
// (exactly those strings, as upstream).
func buildStatus(_ *Builder, c *Config, _ level) (Evaluator, error) {
	if c.StatusCode == nil || len(c.StatusCode.StatusCodes) == 0 {
		return nil, errors.New("status_code: expected at least one status code to filter on")
	}
	var mask uint8
	for _, s := range c.StatusCode.StatusCodes {
		switch s {
		case "OK":
			mask |= store.StatusOK
		case "ERROR":
			mask |= store.StatusError
		case "UNSET":
			mask |= store.StatusUnset
		default:
			return nil, fmt.Errorf("status_code: unknown status code %q, supported: OK, ERROR, UNSET", s)
		}
	}
	return &statusCode{mask: mask}, nil
}
