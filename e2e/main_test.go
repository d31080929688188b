// Package e2e drives the built vigil binary over 127.0.0.1 with real clients
// and real backends. The binary is built once per test run: set VIGIL_BIN to
// reuse one (the Makefile does), or TestMain builds it into a temp dir.
package e2e

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var vigilBin string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	vigilBin = os.Getenv("VIGIL_BIN")
	if vigilBin == "" {
		dir, err := os.MkdirTemp("", "vigil-e2e-bin")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		vigilBin = filepath.Join(dir, "vigil")
		cmd := exec.Command("go", "build", "-o", vigilBin, "../cmd/vigil")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "cannot build vigil:", err)
			return 1
		}
	}
	return m.Run()
}

// freePort returns a port on 127.0.0.1 that is free for TCP and UDP and
// that no other call in this test binary has handed out. It is taken below
// the kernel's ephemeral range (net.ipv4.ip_local_port_range): a port from
// that range can become the source port of any outgoing connection between
// the moment it is chosen and the moment the agent binds it, and the agent
// then exits with "address already in use" (seen in CI).
func freePort(t testing.TB) int {
	t.Helper()
	ports.Lock()
	defer ports.Unlock()
	if ports.handed == nil {
		ports.handed = map[int]bool{}
		ports.lo, ports.hi = portRange()
	}
	for range 1000 {
		p := ports.lo + rand.IntN(ports.hi-ports.lo)
		if ports.handed[p] || !portFree(p) {
			continue
		}
		ports.handed[p] = true
		return p
	}
	t.Fatalf("no free port in [%d, %d) after 1000 tries", ports.lo, ports.hi)
	return 0
}

var ports struct {
	sync.Mutex
	handed map[int]bool
	lo, hi int
}

// portRange is where freePort looks: below the ephemeral range if it leaves
// room there, otherwise above it.
func portRange() (lo, hi int) {
	eLo, eHi := 32768, 60999 // Linux's default
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		var a, z int
		if n, _ := fmt.Sscan(string(b), &a, &z); n == 2 && a <= z {
			eLo, eHi = a, z
		}
	}
	if eLo-10000 >= 2000 {
		return 10000, eLo
	}
	if 65535-eHi >= 2000 {
		return eHi + 1, 65536
	}
	return 1024, 65536 // no room outside: take the chance
}

func portFree(p int) bool {
	addr := fmt.Sprintf("127.0.0.1:%d", p)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	defer ln.Close()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	return pc.Close() == nil
}

// agent is one running vigil process.
type agent struct {
	t          testing.TB
	cmd        *exec.Cmd
	args       []string
	log        *syncBuffer
	HealthPort int
	done       chan struct{}
	// wrap, when set, is a command line that runs vigil (it is followed by
	// vigil's path and args), e.g. a shell that moves itself into a cgroup.
	wrap []string
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// telemetryYAML is the service.telemetry section that moves the agent's own
// metrics off the default port 8888, so tests never collide with a running agent.
func telemetryYAML(port int) string {
	return fmt.Sprintf(`
  telemetry:
    logs:
      level: info
    metrics:
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: %d
`, port)
}

// writeConfig writes a config file into the test's temp dir and returns its path.
func writeConfig(t testing.TB, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// startAgent runs vigil with args; if healthPort is non-zero it waits until the
// health_check extension on that port answers 200. The process is stopped when
// the test ends.
func startAgent(t testing.TB, healthPort int, args ...string) *agent {
	t.Helper()
	a := &agent{t: t, args: args, log: &syncBuffer{}, HealthPort: healthPort}
	a.start()
	t.Cleanup(a.Stop)
	if healthPort != 0 {
		a.waitHealthy(60 * time.Second)
	}
	return a
}

func (a *agent) start() {
	argv := append(append(append([]string(nil), a.wrap...), vigilBin), a.args...)
	a.cmd = exec.Command(argv[0], argv[1:]...)
	a.cmd.Stdout, a.cmd.Stderr = a.log, a.log
	a.cmd.Env = append(os.Environ(), "GOMAXPROCS=2")
	if err := a.cmd.Start(); err != nil {
		a.t.Fatal(err)
	}
	a.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(a.cmd, a.done)
}

func (a *agent) waitHealthy(timeout time.Duration) {
	a.t.Helper()
	url := fmt.Sprintf("http://127.0.0.1:%d/", a.HealthPort)
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-a.done:
			a.t.Fatalf("vigil exited before becoming healthy:\n%s", a.log.String())
		default:
		}
		if resp, err := client.Get(url); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	a.t.Fatalf("vigil not healthy on %s after %s:\n%s", url, timeout, a.log.String())
}

// Kill sends SIGKILL and waits for the process to end.
func (a *agent) Kill() {
	_ = a.cmd.Process.Signal(syscall.SIGKILL)
	<-a.done
}

// Restart starts the same command line again and waits until healthy.
func (a *agent) Restart() {
	a.start()
	if a.HealthPort != 0 {
		a.waitHealthy(60 * time.Second)
	}
}

// Stop sends SIGTERM, waits up to 20 s, then kills. Safe to call twice.
func (a *agent) Stop() {
	select {
	case <-a.done:
		return
	default:
	}
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(20 * time.Second):
		a.t.Errorf("vigil did not stop within 20s of SIGTERM")
		a.Kill()
	}
	if a.t.Failed() {
		a.t.Logf("vigil output:\n%s", tail(a.log.String(), 8000))
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// runVigil runs a short vigil command (validate, components, ...) and returns
// its combined output and exit code; it fails the test if it runs past timeout.
func runVigil(t testing.TB, timeout time.Duration, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(vigilBin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("vigil %s still running after %s:\n%s", strings.Join(args, " "), timeout, out.String())
	}
	return out.String(), cmd.ProcessState.ExitCode()
}
