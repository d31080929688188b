package policy

import (
	"errors"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// buildRedFlag: Vigil's own policy. A span whose service (resource
// service.name) the redflag connector has flagged, or whose client call
// crosses a flagged caller -> callee edge, marks its trace, so the traces
// that explain an incident are kept while it lasts. The flagged set is read
// at ingest from the status extension the connector publishes to; callees
// are named and resolved by the contract both share (redflag.FlagSet.Match),
// so a call the connector flags toward a database, a queue, a DNS name or a
// pod IP is matched here too.
func buildRedFlag(b *Builder, c *Config, _ level) (Evaluator, error) {
	if c.RedFlag == nil || c.RedFlag.Status == "" {
		return nil, errors.New("red_flag: status must name the vigil_status extension the redflag connector publishes to")
	}
	if b.Flags == nil {
		return nil, errors.New("red_flag: no red-flag state available")
	}
	b.RedFlagStatus = append(b.RedFlagStatus, c.RedFlag.Status)
	bit, err := b.C.bit()
	if err != nil {
		return nil, err
	}
	flags := b.Flags
	b.C.span = append(b.C.span, spanPred{bit: bit, match: func(sp ptrace.Span, res pcommon.Map) bool {
		fs := flags.Load()
		if fs.Empty() {
			return false
		}
		svc, _ := res.Get("service.name")
		return fs.Match(svc.Str(), sp)
	}})
	return &bitPolicy{bit: bit}, nil
}
