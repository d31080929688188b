package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigilhq/vigil/testkit/otlpsink"
)

// logRecordKey identifies a received record by where it came from and its body.
type logRecordKey struct {
	ns, pod, container, body string
}

func receivedLogs(sink *otlpsink.Sink) map[logRecordKey]int {
	got := map[logRecordKey]int{}
	for _, ld := range sink.Logs() {
		for _, rl := range ld.ResourceLogs().All() {
			attr := func(k string) string {
				v, _ := rl.Resource().Attributes().Get(k)
				return v.AsString()
			}
			for _, sl := range rl.ScopeLogs().All() {
				for _, lr := range sl.LogRecords().All() {
					got[logRecordKey{attr("k8s.namespace.name"), attr("k8s.pod.name"), attr("k8s.container.name"), lr.Body().AsString()}]++
				}
			}
		}
	}
	return got
}

type podLog struct {
	ns, pod, container, path string
	docker                   bool
}

func newPodLog(t *testing.T, root, ns, pod, uid, container string, docker bool) *podLog {
	dir := filepath.Join(root, "var", "log", "pods", ns+"_"+pod+"_"+uid, container)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	return &podLog{ns: ns, pod: pod, container: container, path: filepath.Join(dir, "0.log"), docker: docker}
}

// write appends lines in the container runtime's format and returns the bodies
// a reader must produce. A line given as several parts is written as CRI
// partial lines (P ... P F) that must be merged into one record.
func (p *podLog) write(t *testing.T, lines ...[]string) []logRecordKey {
	t.Helper()
	f, err := os.OpenFile(p.path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	require.NoError(t, err)
	defer f.Close()
	var want []logRecordKey
	var b strings.Builder
	for _, parts := range lines {
		ts := time.Now().UTC().Format(time.RFC3339Nano)
		for i, part := range parts {
			switch {
			case p.docker:
				fmt.Fprintf(&b, `{"log":%q,"stream":"stdout","time":%q}`+"\n", part+"\n", ts)
			case i < len(parts)-1:
				fmt.Fprintf(&b, "%s stdout P %s\n", ts, part)
			default:
				fmt.Fprintf(&b, "%s stdout F %s\n", ts, part)
			}
		}
		want = append(want, logRecordKey{p.ns, p.pod, p.container, strings.Join(parts, "")})
	}
	_, err = f.WriteString(b.String())
	require.NoError(t, err)
	return want
}

// rotate renames the live file the way the kubelet does; the next write creates a new one.
func (p *podLog) rotate(t *testing.T) {
	require.NoError(t, os.Rename(p.path, p.path+"."+time.Now().UTC().Format("20060102-150405")))
}

func lines(prefix string, n int) [][]string {
	out := make([][]string, n)
	for i := range out {
		out[i] = []string{fmt.Sprintf("%s line %d level=info msg=%q", prefix, i, "request served")}
	}
	return out
}

// The node-agent example from deploy/examples reads container logs of both
// runtime formats, survives rotation, and after a SIGKILL and restart neither
// loses nor repeats a line.
func TestContainerLogsExample(t *testing.T) {
	sink, err := otlpsink.Start("127.0.0.1:0", true)
	require.NoError(t, err)
	t.Cleanup(sink.Stop)
	root := t.TempDir()
	storage := filepath.Join(root, "storage")
	health, tel := freePort(t), freePort(t)
	override := writeConfig(t, fmt.Sprintf(`
extensions:
  health_check:
    endpoint: 127.0.0.1:%d
  file_storage:
    directory: %s
receivers:
  container_log:
    poll_interval: 100ms
exporters:
  otlp_grpc:
    endpoint: %s
    tls:
      insecure: true
processors:
  batch:
    timeout: 100ms
service:
%s
`, health, storage, sink.Addr, telemetryYAML(tel)))

	cart := newPodLog(t, root, "shop", "cart-7f9c", "4f1e2d3c-0000-4a5b-8c9d-0123456789ab", "cart", false)
	pay := newPodLog(t, root, "payments", "api-0", "9a8b7c6d-1111-4e5f-9a0b-abcdefabcdef", "api", true)

	var want []logRecordKey
	want = append(want, cart.write(t, lines("before-start", 20)...)...)
	t.Setenv("VIGIL_HOST_ROOT", root)
	a := startAgent(t, health, "--config", "../deploy/examples/node-agent-logs.yaml", "--config", override)

	want = append(want, cart.write(t, lines("cart", 50)...)...)
	want = append(want, cart.write(t, []string{"partial-a ", "partial-b ", "partial-c end"})...)
	want = append(want, pay.write(t, lines("pay", 30)...)...)
	waitForLogs(t, sink, want)

	// Rotation with lines written just before it: the rest of the rotated file
	// and the whole new file must both arrive, once.
	want = append(want, cart.write(t, lines("pre-rotate", 10)...)...)
	cart.rotate(t)
	want = append(want, cart.write(t, lines("post-rotate", 10)...)...)
	waitForLogs(t, sink, want)

	// Crash, with lines and a rotation while the agent is down.
	a.Kill()
	want = append(want, cart.write(t, lines("while-down", 15)...)...)
	want = append(want, pay.write(t, lines("while-down", 5)...)...)
	pay.rotate(t)
	want = append(want, pay.write(t, lines("down-rotated", 5)...)...)
	a.Restart()
	want = append(want, cart.write(t, lines("after-restart", 5)...)...)
	waitForLogs(t, sink, want)

	// Give a duplicate time to show up, then check exactly-once.
	time.Sleep(time.Second)
	got := receivedLogs(sink)
	for _, k := range want {
		require.Equalf(t, 1, got[k], "record %+v received %d times", k, got[k])
	}
	require.Len(t, got, len(want), "unexpected extra records")
}

func waitForLogs(t *testing.T, sink *otlpsink.Sink, want []logRecordKey) {
	t.Helper()
	var missing []logRecordKey
	ok := otlpsink.WaitFor(30*time.Second, func() bool {
		got := receivedLogs(sink)
		missing = missing[:0]
		for _, k := range want {
			if got[k] == 0 {
				missing = append(missing, k)
			}
		}
		return len(missing) == 0
	})
	if !ok {
		n := min(len(missing), 5)
		t.Fatalf("%d of %d records missing, e.g. %+v; got e.g. %q", len(missing), len(want), missing[:n], sample(receivedLogs(sink), 200))
	}
}

func sample(m map[logRecordKey]int, n int) []logRecordKey {
	var out []logRecordKey
	for k := range m {
		if len(out) == n {
			break
		}
		out = append(out, k)
	}
	return out
}
