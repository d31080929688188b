// Package service is the testbed's service runtime: one replica of one
// service of a topology (package topo), as its own process (`testbed serve`).
// It serves real gRPC (hand-written service descriptors over structpb) or
// HTTP (a ServeMux with Go 1.22 patterns), calls its callees through real
// clients, uses PostgreSQL through database/sql, pgx and otelsql, and is
// instrumented the way an application is today: the otelgrpc stats handlers,
// otelhttp, otelsql, the OTel SDK with OTLP/gRPC exporters and the otelslog
// bridge. Faults are switched on and off through an admin endpoint.
package service

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/vigilhq/vigil/benchmarks/testbed/topo"
)

// Config is what one replica needs.
type Config struct {
	Topology string
	Service  string
	// IP is the replica's own address ("pod IP"); it listens there.
	IP string
	// Pod is the k8s.pod.name; Version the service.version.
	Pod     string
	Version string
	// OTLP is the OTLP/gRPC host:port to export to (plaintext).
	OTLP string
	Seed int64
	// DBAddr is the host:port of the database (its proxy); DBUser the role.
	DBAddr string
	DBUser string
	// Peers are the replica IPs of every service of the topology.
	Peers map[string][]string
	// MetricsInterval is the periodic reader's interval.
	MetricsInterval time.Duration
}

// Validate checks the configuration.
func (c Config) Validate() error {
	t, ok := topo.Get(c.Topology)
	if !ok {
		return fmt.Errorf("invalid topology %q: want one of %v", c.Topology, topo.Names())
	}
	svc, ok := t.Service(c.Service)
	if !ok {
		return fmt.Errorf("invalid service %q: not in topology %s", c.Service, c.Topology)
	}
	if net.ParseIP(c.IP) == nil {
		return fmt.Errorf("invalid ip %q", c.IP)
	}
	if _, _, err := net.SplitHostPort(c.OTLP); err != nil {
		return fmt.Errorf("invalid otlp endpoint %q: %w", c.OTLP, err)
	}
	if svc.DB != nil {
		if _, _, err := net.SplitHostPort(c.DBAddr); err != nil {
			return fmt.Errorf("invalid db address %q (service %s uses database %s): %w", c.DBAddr, c.Service, svc.DB.Database, err)
		}
	}
	if c.MetricsInterval <= 0 {
		return fmt.Errorf("invalid metrics interval %s", c.MetricsInterval)
	}
	return nil
}

// Flags returns the `testbed serve` arguments for cfg.
func (c Config) Flags() ([]string, error) {
	peers, err := json.Marshal(c.Peers)
	if err != nil {
		return nil, fmt.Errorf("cannot encode peers: %w", err)
	}
	return []string{
		"--topology", c.Topology, "--service", c.Service, "--ip", c.IP, "--pod", c.Pod, "--version", c.Version,
		"--otlp", c.OTLP, "--seed", fmt.Sprint(c.Seed), "--db", c.DBAddr, "--db-user", c.DBUser,
		"--peers", string(peers), "--metrics-interval", c.MetricsInterval.String(),
	}, nil
}

// Main runs `testbed serve`: it parses args, starts the replica and serves
// until ctx ends (the orchestrator's SIGTERM), then drains for at most 10 s.
func Main(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c Config
	var peers string
	fs.StringVar(&c.Topology, "topology", "", "topology name")
	fs.StringVar(&c.Service, "service", "", "service name")
	fs.StringVar(&c.IP, "ip", "", "the replica's IP (127.0.0.N)")
	fs.StringVar(&c.Pod, "pod", "", "k8s.pod.name")
	fs.StringVar(&c.Version, "version", "", "service.version (default: the topology's)")
	fs.StringVar(&c.OTLP, "otlp", "127.0.0.1:4317", "OTLP/gRPC endpoint")
	fs.Int64Var(&c.Seed, "seed", 1, "run seed")
	fs.StringVar(&c.DBAddr, "db", "", "database host:port")
	fs.StringVar(&c.DBUser, "db-user", "postgres", "database role")
	fs.StringVar(&peers, "peers", "{}", "JSON map of service to replica IPs")
	fs.DurationVar(&c.MetricsInterval, "metrics-interval", 10*time.Second, "metric export interval")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(peers), &c.Peers); err != nil {
		return fmt.Errorf("cannot parse --peers: %w", err)
	}
	if t, ok := topo.Get(c.Topology); ok && c.Version == "" {
		if s, ok := t.Service(c.Service); ok {
			c.Version = s.Version
		}
	}
	if c.Pod == "" {
		c.Pod = c.Service + "-0"
	}
	r, err := Start(ctx, c)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "serving %s/%s on %s\n", c.Topology, c.Service, c.IP)
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Stop(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("cannot stop cleanly: %w", err)
	}
	return nil
}
