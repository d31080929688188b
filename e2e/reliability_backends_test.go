package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigilhq/vigil/testkit/otlpsink"
)

// lookTool finds a backend built by `make test-deps` (scripts/test-deps.sh
// go-installs VictoriaLogs and toxiproxy into .cache/bin) or on PATH.
func lookTool(t *testing.T, name string) string {
	t.Helper()
	if p, err := filepath.Abs(filepath.Join("..", ".cache", "bin", name)); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	t.Fatalf("%s is neither in .cache/bin nor on PATH: run `make test-deps`", name)
	return ""
}

// process is a backend that a test stops and starts again with the same
// command line, port and data directory: a backend outage.
type process struct {
	t    *testing.T
	name string
	bin  string
	args []string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
	// ready answers true once the process serves.
	ready func() bool
}

func newProcess(t *testing.T, name, bin string, ready func() bool, args ...string) *process {
	p := &process{t: t, name: name, bin: bin, args: args, ready: ready, log: filepath.Join(t.TempDir(), name+".log")}
	p.Start()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			b, _ := os.ReadFile(p.log)
			t.Logf("%s log:\n%s", name, tail(string(b), 3000))
		}
	})
	return p
}

// Start runs the process and waits until it is ready.
func (p *process) Start() {
	p.t.Helper()
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		p.t.Fatal(err)
	}
	p.cmd = exec.Command(p.bin, p.args...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}(p.cmd, p.done)
	deadline := time.Now().Add(60 * time.Second)
	for !p.ready() {
		select {
		case <-p.done:
			b, _ := os.ReadFile(p.log)
			p.t.Fatalf("%s exited at start:\n%s", p.name, tail(string(b), 3000))
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s not ready after 60s", p.name)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop ends the process gracefully (SIGTERM, then SIGKILL after 20 s), so a
// backend keeps what it acknowledged. Safe to call twice.
func (p *process) Stop() {
	if p.cmd == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func httpOK(u string) func() bool {
	client := &http.Client{Timeout: time.Second}
	return func() bool {
		resp, err := client.Get(u)
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
}

// restartablePrometheus is a real Prometheus (remote-write receiver on) that
// can be stopped and started on the same port and TSDB.
type restartablePrometheus struct {
	*process
	promServer
}

func startRestartablePrometheus(t *testing.T) *restartablePrometheus {
	bin := lookBackend(t, "prometheus")
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := filepath.Join(dir, "prometheus.yml")
	// Prometheus's defaults: out-of-order samples are refused (a request
	// with one is refused whole), so a re-sent batch that is not exactly
	// what was written before would lose data here.
	body := "global:\n  scrape_interval: 15s\n"
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &restartablePrometheus{promServer: promServer{URL: "http://" + addr}}
	p.process = newProcess(t, "prometheus", bin, httpOK(p.URL+"/-/ready"),
		"--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--web.external-url=http://"+addr,
		"--web.enable-remote-write-receiver", "--log.level=warn")
	return p
}

// scalar runs an instant query expected to return one number (0 when empty).
func (p *promServer) scalar(q string) (float64, error) {
	res, err := p.Query(q)
	if err != nil || len(res) == 0 {
		return 0, err
	}
	s, _ := res[0].Value[1].(string)
	return strconv.ParseFloat(s, 64)
}

// victoriaLogs is a real VictoriaLogs taking OTLP logs.
type victoriaLogs struct {
	*process
	URL string
}

func startVictoriaLogs(t *testing.T) *victoriaLogs {
	bin := lookTool(t, "victoria-logs")
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	v := &victoriaLogs{URL: "http://" + addr}
	v.process = newProcess(t, "victoria-logs", bin, httpOK(v.URL+"/health"),
		"-httpListenAddr="+addr, "-storageDataPath="+filepath.Join(dir, "data"), "-retentionPeriod=1d",
		"-loggerLevel=WARN")
	return v
}

// OTLPLogsURL is where an otlp_http exporter sends logs.
func (v *victoriaLogs) OTLPLogsURL() string { return v.URL + "/insert/opentelemetry/v1/logs" }

// countQuery runs a LogsQL query ending in `stats count() n, count_uniq(f) u`
// and returns n and u, after flushing what was ingested.
func (v *victoriaLogs) countQuery(q string) (n, u int64, err error) {
	client := &http.Client{Timeout: 10 * time.Second}
	if resp, err := client.Get(v.URL + "/internal/force_flush"); err == nil {
		resp.Body.Close()
	}
	resp, err := client.PostForm(v.URL+"/select/logsql/query", url.Values{"query": {q}})
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("victoria-logs query %q: %s: %s", q, resp.Status, b)
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return 0, 0, nil
	}
	var row map[string]string
	if err := json.Unmarshal(b, &row); err != nil {
		return 0, 0, fmt.Errorf("cannot decode %q: %w", b, err)
	}
	n, _ = strconv.ParseInt(row["n"], 10, 64)
	u, _ = strconv.ParseInt(row["u"], 10, 64)
	return n, u, nil
}

// restartableSink is an OTLP/gRPC sink that goes away (its listener closed,
// connections cut) and comes back on the same address; what every
// incarnation received is kept.
type restartableSink struct {
	t     *testing.T
	Addr  string
	sinks []*otlpsink.Sink
}

func startRestartableSink(t *testing.T) *restartableSink {
	s, err := otlpsink.Start("127.0.0.1:0", true)
	if err != nil {
		t.Fatal(err)
	}
	r := &restartableSink{t: t, Addr: s.Addr, sinks: []*otlpsink.Sink{s}}
	t.Cleanup(func() { r.live().Stop() })
	return r
}

func (r *restartableSink) live() *otlpsink.Sink { return r.sinks[len(r.sinks)-1] }

// Stop closes the listener and every connection.
func (r *restartableSink) Stop() { r.live().Stop() }

// Start listens again on the same address.
func (r *restartableSink) Start() {
	r.t.Helper()
	var s *otlpsink.Sink
	var err error
	for range 50 { // the old listener's port may take a moment to free
		if s, err = otlpsink.Start(r.Addr, true); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		r.t.Fatalf("cannot restart sink on %s: %v", r.Addr, err)
	}
	r.sinks = append(r.sinks, s)
}

// All returns every incarnation's sink, for counting.
func (r *restartableSink) All() []*otlpsink.Sink { return append([]*otlpsink.Sink(nil), r.sinks...) }

// toxiproxy is a running toxiproxy server that tests drive over its HTTP API.
type toxiproxy struct {
	*process
	api string
}

func startToxiproxy(t *testing.T) *toxiproxy {
	bin := lookTool(t, "toxiproxy-server")
	port := freePort(t)
	tp := &toxiproxy{api: fmt.Sprintf("http://127.0.0.1:%d", port)}
	tp.process = newProcess(t, "toxiproxy", bin, httpOK(tp.api+"/version"), "-host", "127.0.0.1", "-port", strconv.Itoa(port))
	return tp
}

func (tp *toxiproxy) call(method, path string, body any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, tp.api+path, r)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("toxiproxy %s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	return nil
}

// Proxy creates a proxy listening on a free port in front of upstream and
// returns its address.
func (tp *toxiproxy) Proxy(t *testing.T, name, upstream string) string {
	t.Helper()
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	if err := tp.call(http.MethodPost, "/proxies", map[string]any{"name": name, "listen": listen, "upstream": upstream, "enabled": true}); err != nil {
		t.Fatal(err)
	}
	return listen
}

// Toxic adds a toxic (latency, reset_peer, bandwidth, timeout, ...) to a proxy.
func (tp *toxiproxy) Toxic(t *testing.T, proxy, name, typ string, attrs map[string]any) {
	t.Helper()
	if err := tp.call(http.MethodPost, "/proxies/"+proxy+"/toxics", map[string]any{"name": name, "type": typ, "stream": "downstream", "toxicity": 1.0, "attributes": attrs}); err != nil {
		t.Fatal(err)
	}
}

// RemoveToxic removes a toxic.
func (tp *toxiproxy) RemoveToxic(t *testing.T, proxy, name string) {
	t.Helper()
	if err := tp.call(http.MethodDelete, "/proxies/"+proxy+"/toxics/"+name, nil); err != nil {
		t.Fatal(err)
	}
}

// Enable turns a proxy on or off (off: connections refused and cut).
func (tp *toxiproxy) Enable(t *testing.T, proxy string, on bool) {
	t.Helper()
	if err := tp.call(http.MethodPost, "/proxies/"+proxy, map[string]any{"enabled": on}); err != nil {
		t.Fatal(err)
	}
}
