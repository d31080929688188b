package simulate

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// Export limits of `vigil simulate`: every export call has a timeout and a
// bounded number of attempts; a batch that still fails is dropped and counted.
const (
	exportTimeout  = 10 * time.Second
	exportAttempts = 3
	// maxStep bounds the virtual time one export covers, so batches stay a few
	// hundred kilobytes even at high --speed.
	maxStep = 2 * time.Second
	// tick is how often the wall clock drives the simulation.
	tick = 250 * time.Millisecond
	// reportEvery is how often a status line is printed (wall clock).
	reportEvery = 10 * time.Second
)

// CLIOptions are the flags of `vigil simulate`.
type CLIOptions struct {
	Scenario string // --scenario: a name from Scenarios
	List     bool   // --list: print the scenarios and exit
	Endpoint string // --endpoint: OTLP/gRPC host:port
	TLS      bool   // --tls: TLS with the system roots instead of plaintext
	Rate     float64
	Duration time.Duration // simulated time to run; 0 = until ctx is done
	// FaultAfter and FaultDuration are Config.FaultAfter and Config.FaultDuration.
	FaultAfter, FaultDuration time.Duration
	Seed                      int64
	Speed                     float64 // virtual seconds per wall second
}

// NewCommand returns the `simulate` subcommand: it runs a scenario and sends
// its traces, logs and metrics to an OTLP/gRPC endpoint.
func NewCommand() *cobra.Command {
	o := CLIOptions{}
	cmd := &cobra.Command{
		Use:   "simulate",
		Short: "Send telemetry of a simulated microservice system, optionally with an injected fault",
		Long: `simulate runs a shop of ten microservices (frontend, checkout, payments, inventory, cart,
catalog, search, recommendation, shipping, currency; PostgreSQL, Redis and a bank API as
external dependencies) in a discrete-event simulation and sends what its OpenTelemetry SDKs
would: spans, logs and metrics, over OTLP/gRPC. A scenario injects a fault at a known origin
after --fault-after; the ground truth is printed at start. --list shows the scenarios.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: false,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.List {
				return PrintScenarios(cmd.OutOrStdout())
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return Run(ctx, o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Scenario, "scenario", "healthy", "scenario to run (see --list)")
	f.BoolVar(&o.List, "list", false, "print the scenarios with their descriptions and exit")
	f.StringVar(&o.Endpoint, "endpoint", "127.0.0.1:4317", "OTLP/gRPC endpoint, host:port")
	f.BoolVar(&o.TLS, "tls", false, "use TLS (system roots) instead of plaintext")
	f.Float64Var(&o.Rate, "rate", DefaultRootRate, "root requests per second at the frontend")
	f.DurationVar(&o.Duration, "duration", 0, "simulated time to run; 0 runs until Ctrl-C")
	f.DurationVar(&o.FaultAfter, "fault-after", time.Minute, "when the fault starts")
	f.DurationVar(&o.FaultDuration, "fault-duration", DefaultFaultDuration, "how long the fault lasts")
	f.Int64Var(&o.Seed, "seed", 1, "random seed: the same seed gives the same run")
	f.Float64Var(&o.Speed, "speed", 1, "virtual seconds per wall second: 1 is real time (timestamps are now), >1 compresses time")
	return cmd
}

// PrintScenarios writes the scenario list `vigil simulate --list` prints.
func PrintScenarios(w io.Writer) error {
	var b strings.Builder
	for _, s := range Scenarios() {
		kind := "fault"
		if s.Negative {
			kind = "negative control"
		}
		fmt.Fprintf(&b, "%-22s %s: %s\n", s.Name, kind, s.Description)
		if len(s.Expect) > 0 {
			fmt.Fprintf(&b, "%-22s expect: %s\n", "", strings.Join(s.Expect, ", "))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (o CLIOptions) validate() error {
	switch {
	case !(o.Rate > 0 && o.Rate <= MaxRootRate):
		return fmt.Errorf("--rate: %v not in (0, %v]", o.Rate, MaxRootRate)
	case !(o.Speed > 0 && o.Speed <= 10000):
		return fmt.Errorf("--speed: %v not in (0, 10000]", o.Speed)
	case o.Duration < 0:
		return fmt.Errorf("--duration: %v is negative", o.Duration)
	case o.FaultAfter <= 0:
		return fmt.Errorf("--fault-after: %v must be > 0", o.FaultAfter)
	case o.FaultDuration < time.Second:
		return fmt.Errorf("--fault-duration: %v must be at least 1s", o.FaultDuration)
	case o.Endpoint == "" || !strings.Contains(o.Endpoint, ":"):
		return fmt.Errorf("--endpoint: %q is not host:port", o.Endpoint)
	}
	if findScenario(o.Scenario) == nil {
		return fmt.Errorf("--scenario: unknown %q (known: %s)", o.Scenario, strings.Join(ScenarioNames(), ", "))
	}
	return nil
}

// Run runs a scenario against an endpoint until o.Duration of simulated time
// has passed or ctx is done, printing the ground truth and a status line
// every 10 s to out.
func Run(ctx context.Context, o CLIOptions, out io.Writer) error {
	if err := o.validate(); err != nil {
		return err
	}
	start := time.Now().Truncate(time.Millisecond)
	sim, err := New(Config{Scenario: o.Scenario, Seed: o.Seed, Start: start, RootRate: o.Rate,
		FaultAfter: o.FaultAfter, FaultDuration: o.FaultDuration})
	if err != nil {
		return fmt.Errorf("cannot start the simulation: %w", err)
	}
	creds := insecure.NewCredentials()
	if o.TLS {
		creds = credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12})
	}
	conn, err := grpc.NewClient(o.Endpoint, grpc.WithTransportCredentials(creds))
	if err != nil {
		return fmt.Errorf("cannot connect to --endpoint %q: %w", o.Endpoint, err)
	}
	defer conn.Close()
	exp := &exporter{traces: ptraceotlp.NewGRPCClient(conn), logs: plogotlp.NewGRPCClient(conn), metrics: pmetricotlp.NewGRPCClient(conn)}

	truth := sim.Truth()
	fmt.Fprintln(out, truth.String())
	if host, _, err := net.SplitHostPort(o.Endpoint); !o.TLS && (err != nil || !isLoopback(host)) {
		fmt.Fprintf(out, "warning: sending plaintext to %s, which is not a loopback address; use --tls\n", o.Endpoint)
	}
	fmt.Fprintf(out, "sending to %s (speed %gx", o.Endpoint, o.Speed)
	if o.Duration > 0 {
		fmt.Fprintf(out, ", for %s of simulated time", o.Duration)
	}
	fmt.Fprintln(out, ")")

	end := start.Add(o.Duration)
	wallStart := time.Now()
	lastReport := wallStart
	var last counts
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	for {
		target := start.Add(time.Duration(float64(time.Since(wallStart)) * o.Speed))
		done := false
		if o.Duration > 0 && !target.Before(end) {
			target, done = end, true
		}
		for sim.Now().Before(target) && ctx.Err() == nil {
			step := min(target.Sub(sim.Now()), maxStep)
			exp.send(ctx, sim.Advance(step))
		}
		if now := time.Now(); now.Sub(lastReport) >= reportEvery || done || ctx.Err() != nil {
			c := exp.counts
			fmt.Fprintf(out, "%s  spans %d (+%d)  logs %d (+%d)  points %d (+%d)  dropped %d  phase: %s\n",
				sim.Now().Format("15:04:05"), c.spans, c.spans-last.spans, c.logs, c.logs-last.logs,
				c.points, c.points-last.points, c.dropped, truth.Phase(sim.Now()))
			if c.lastErr != nil && c.dropped > last.dropped {
				fmt.Fprintf(out, "  last export error: %v\n", c.lastErr)
			}
			last, lastReport = c, now
		}
		if done || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-ticker.C:
		}
	}
	if exp.counts.spans == 0 && exp.counts.dropped > 0 {
		return fmt.Errorf("nothing was delivered to %s: %w", o.Endpoint, exp.counts.lastErr)
	}
	return nil
}

type counts struct {
	spans, logs, points, dropped int64
	lastErr                      error
}

type exporter struct {
	traces  ptraceotlp.GRPCClient
	logs    plogotlp.GRPCClient
	metrics pmetricotlp.GRPCClient
	counts  counts
}

func (e *exporter) send(ctx context.Context, b Batch) {
	if n := b.Traces.SpanCount(); n > 0 {
		e.do(ctx, int64(n), &e.counts.spans, func(ctx context.Context) error {
			_, err := e.traces.Export(ctx, ptraceotlp.NewExportRequestFromTraces(b.Traces))
			return err
		})
	}
	if n := b.Logs.LogRecordCount(); n > 0 {
		e.do(ctx, int64(n), &e.counts.logs, func(ctx context.Context) error {
			_, err := e.logs.Export(ctx, plogotlp.NewExportRequestFromLogs(b.Logs))
			return err
		})
	}
	if n := b.Metrics.DataPointCount(); n > 0 {
		e.do(ctx, int64(n), &e.counts.points, func(ctx context.Context) error {
			_, err := e.metrics.Export(ctx, pmetricotlp.NewExportRequestFromMetrics(b.Metrics))
			return err
		})
	}
}

// do makes up to exportAttempts calls, each bounded by exportTimeout, with a
// short backoff between retryable failures; a batch that still fails is
// dropped and counted.
func (e *exporter) do(ctx context.Context, n int64, ok *int64, call func(context.Context) error) {
	backoff := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, exportTimeout)
		err := call(cctx)
		cancel()
		if err == nil {
			*ok += n
			return
		}
		e.counts.lastErr = err
		if attempt == exportAttempts || !retryableExport(err) || ctx.Err() != nil {
			e.counts.dropped += n
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff *= 2
	}
}

func retryableExport(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.ResourceExhausted, codes.DeadlineExceeded, codes.Aborted:
		return true
	}
	return false
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
