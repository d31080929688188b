// Command testbed runs the red-flag testbed: real instrumented Go services in
// three topologies, load, injected faults, and the ground truth of what was
// injected (benchmarks/testbed/README.md).
//
//	testbed run --endpoint 127.0.0.1:4317 --seed 1 [--topologies a,b] [--plan full|short] [--truth out.json]
//	testbed run --list                 # the topologies, their services and faults
//	testbed serve <flags>              # one replica (the orchestrator starts these)
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/vigilhq/vigil/benchmarks/testbed"
	"github.com/vigilhq/vigil/benchmarks/testbed/service"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "testbed:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: testbed run|serve [flags]")
	}
	switch args[0] {
	case "serve":
		return service.Main(ctx, args[1:], os.Stderr)
	case "run":
		return runPlan(ctx, args[1:])
	}
	return fmt.Errorf("unknown subcommand %q: want run or serve", args[0])
}

func runPlan(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var o testbed.Options
	var topologies, truthPath string
	var list bool
	fs.StringVar(&o.Endpoint, "endpoint", "127.0.0.1:4317", "OTLP/gRPC endpoint the services export to")
	fs.Int64Var(&o.Seed, "seed", 1, "seed of the plan")
	fs.StringVar(&topologies, "topologies", "", "comma-separated topologies (default: all; "+strings.Join(testbed.Topologies(), ", ")+")")
	fs.StringVar(&o.Plan, "plan", "full", "full or short")
	fs.StringVar(&truthPath, "truth", "", "write the ground truth as JSON to this file")
	fs.StringVar(&o.WorkDir, "workdir", "", "scratch directory for PostgreSQL and logs (default: a new temporary directory)")
	fs.StringVar(&o.Toxiproxy, "toxiproxy", defaultToxiproxy(), "toxiproxy-server binary")
	fs.StringVar(&o.PGBin, "pgbin", testbed.DefaultPGBin, "directory of initdb and postgres")
	fs.DurationVar(&o.Warmup, "warmup", 0, "override the plan's warmup")
	fs.DurationVar(&o.FaultFor, "fault-for", 0, "override the plan's fault duration")
	fs.DurationVar(&o.Gap, "gap", 0, "override the plan's gap after each fault")
	fs.BoolVar(&list, "list", false, "describe the topologies and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if list {
		for _, name := range testbed.Topologies() {
			d, err := testbed.Describe(name)
			if err != nil {
				return err
			}
			fmt.Println(d)
		}
		return nil
	}
	if topologies != "" {
		o.Topologies = strings.Split(topologies, ",")
	}
	bin, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cannot find my own binary: %w", err)
	}
	o.Bin = bin
	o.Log = os.Stderr
	start := time.Now()
	truths, err := testbed.Run(ctx, o)
	fmt.Fprintf(os.Stderr, "testbed: ran %s\n", time.Since(start).Round(time.Second))
	if truthPath != "" && truths != nil {
		b, jerr := json.MarshalIndent(truths, "", "  ")
		if jerr != nil {
			return errors.Join(err, fmt.Errorf("cannot encode truth: %w", jerr))
		}
		if werr := os.WriteFile(truthPath, append(b, '\n'), 0o644); werr != nil {
			return errors.Join(err, fmt.Errorf("cannot write truth: %w", werr))
		}
	}
	for _, t := range truths {
		fmt.Fprintln(os.Stderr, t.String())
	}
	return err
}

// defaultToxiproxy is .cache/bin/toxiproxy-server of the repository when run
// from inside it (scripts/test-deps.sh builds it there), else empty (PATH).
func defaultToxiproxy() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		p := filepath.Join(dir, ".cache", "bin", "toxiproxy-server")
		if _, err := os.Stat(p); err == nil {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}
