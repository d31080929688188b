package driver

import (
	"context"
	"fmt"
	"time"

	"github.com/vigilhq/vigil/benchmarks/loadgen/traces"
	"github.com/vigilhq/vigil/testkit/otlpsink"
)

// GenCheck measures the trace generator sending straight to the OTLP sink,
// both in this process (pinned to the load CPU when the driver is): the most
// spans per second the harness can deliver. It must be well above any agent's
// rate for saturation figures to be the agent's.
func GenCheck(ctx context.Context, gzip bool, d time.Duration) (float64, error) {
	sink, err := otlpsink.StartCounting("127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer sink.Stop()
	cfg := traces.DefaultConfig()
	cfg.Endpoint = sink.Addr
	cfg.Gzip = gzip
	g, err := traces.New(cfg)
	if err != nil {
		return 0, err
	}
	gctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- g.Run(gctx) }()
	defer func() { cancel(); <-done }()
	time.Sleep(time.Second)
	n0, t0 := sink.Spans.Load(), time.Now()
	select {
	case <-time.After(d):
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	n1, t1 := sink.Spans.Load(), time.Now()
	if n1 == n0 {
		return 0, fmt.Errorf("no span reached the sink")
	}
	return float64(n1-n0) / t1.Sub(t0).Seconds(), nil
}
