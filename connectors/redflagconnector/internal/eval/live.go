package eval

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// Agent is the Vigil binary under test, running the red-flag connector on
// everything it receives over OTLP and sending its alert events (and, when
// recording, a copy of everything it received) to a Receiver.
type Agent struct {
	// Endpoint is its OTLP/gRPC listener (host:port), for the services.
	Endpoint string
	cmd      *exec.Cmd
	done     chan error
}

// AgentOptions configure StartAgent.
type AgentOptions struct {
	Bin      string    // the vigil binary
	Receiver string    // the Receiver's host:port
	Record   bool      // also send every span, data point and log record there
	Dir      string    // where the config and the agent's log go
	Log      io.Writer // the agent's output (nil: Dir/vigil.log)
}

// agentConfig is the agent's configuration: the connector on every signal,
// its alert events to the receiver, nothing else.
const agentConfig = `receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %s
connectors:
  redflag: {}
exporters:
  otlp_grpc/harness:
    endpoint: %s
    tls: {insecure: true}
    timeout: 10s
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [%s]
    metrics:
      receivers: [otlp]
      exporters: [%s]
    logs:
      receivers: [otlp]
      exporters: [%s]
    logs/alerts:
      receivers: [redflag]
      exporters: [otlp_grpc/harness]
`

// StartAgent writes the agent's config into o.Dir and starts it, waiting
// until its OTLP listener accepts connections.
func StartAgent(ctx context.Context, o AgentOptions) (*Agent, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	endpoint := fmt.Sprintf("127.0.0.1:%d", port)
	exporters := "redflag"
	if o.Record {
		exporters = "redflag, otlp_grpc/harness"
	}
	cfg := filepath.Join(o.Dir, "vigil.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, agentConfig, endpoint, o.Receiver, exporters, exporters, exporters), 0o644); err != nil {
		return nil, fmt.Errorf("cannot write the agent's config: %w", err)
	}
	out := o.Log
	if out == nil {
		f, err := os.Create(filepath.Join(o.Dir, "vigil.log"))
		if err != nil {
			return nil, fmt.Errorf("cannot create the agent's log: %w", err)
		}
		defer f.Close() // the child keeps its own descriptor
		out = f
	}
	cmd := exec.Command(o.Bin, "--config", cfg)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("cannot start %s: %w", o.Bin, err)
	}
	a := &Agent{Endpoint: endpoint, cmd: cmd, done: make(chan error, 1)}
	go func() { a.done <- cmd.Wait() }()
	deadline := time.Now().Add(time.Minute)
	for {
		c, err := net.DialTimeout("tcp", endpoint, time.Second)
		if err == nil {
			_ = c.Close()
			return a, nil
		}
		select {
		case err := <-a.done:
			return nil, fmt.Errorf("the agent exited before listening on %s (see its log in %s): %v", endpoint, o.Dir, err)
		case <-ctx.Done():
			a.Stop()
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			a.Stop()
			return nil, fmt.Errorf("the agent did not listen on %s within a minute (see its log in %s)", endpoint, o.Dir)
		}
	}
}

// Stop stops the agent (SIGTERM, then SIGKILL after 15 s) and waits for it.
func (a *Agent) Stop() {
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(15 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.done
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("cannot find a free port: %w", err)
	}
	defer ln.Close()
	addr, ok := ln.Addr().(*net.TCPAddr)
	if !ok {
		return 0, fmt.Errorf("cannot find a free port: %v is not TCP", ln.Addr())
	}
	return addr.Port, nil
}
