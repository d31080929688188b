package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// alertmanagerUIVersion is the Alertmanager built from source for its web UI
// (Debian's build has none); built once into a gitignored cache.
const alertmanagerUIVersion = "v0.28.1"

// amServer is a real Alertmanager on 127.0.0.1 that the test can stop and
// start again on the same port and storage (to fake an outage).
type amServer struct {
	t    *testing.T
	bin  string
	name string
	dir  string
	cfg  string
	addr string
	URL  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	logf *os.File
	done chan struct{}
	hold net.Listener // holds the port while the Alertmanager is down
}

// startAlertmanager runs bin with the given configuration and waits until it
// is ready. Debian's prometheus-alertmanager and a go-installed one take the
// same flags; clustering is off (an empty --cluster.listen-address), or it
// would gossip on 0.0.0.0:9094.
func startAlertmanager(t *testing.T, bin, name, config string) *amServer {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	am := &amServer{t: t, bin: bin, name: name, dir: dir, cfg: cfg, addr: addr, URL: "http://" + addr}
	am.Start()
	t.Cleanup(func() {
		am.Stop()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "alertmanager.log"))
			t.Logf("%s log:\n%s", name, tail(string(b), 3000))
		}
	})
	return am
}

// Start runs the Alertmanager and waits for /-/ready.
func (am *amServer) Start() {
	am.t.Helper()
	am.mu.Lock()
	defer am.mu.Unlock()
	logf, err := os.OpenFile(filepath.Join(am.dir, "alertmanager.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		am.t.Fatal(err)
	}
	cmd := exec.Command(am.bin, "--config.file="+am.cfg, "--storage.path="+filepath.Join(am.dir, "data"),
		"--web.listen-address="+am.addr, "--web.external-url="+am.URL, "--cluster.listen-address=", "--log.level=warn")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		am.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	am.cmd, am.logf, am.done = cmd, logf, done
	deadline := time.Now().Add(30 * time.Second)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-done:
			b, _ := os.ReadFile(logf.Name())
			am.t.Fatalf("%s exited at start:\n%s", am.name, tail(string(b), 3000))
		default:
		}
		if resp, err := client.Get(am.URL + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	am.t.Fatalf("%s on %s not ready", am.name, am.addr)
}

// Down stops the Alertmanager for an outage but keeps its port: connections
// are accepted and closed at once (what a client sees of a crashed server
// behind a load balancer), and no other process on the machine can take the
// port before Up.
func (am *amServer) Down() {
	am.t.Helper()
	am.Stop()
	ln, err := net.Listen("tcp", am.addr)
	if err != nil {
		am.t.Fatalf("cannot hold %s during the outage: %v", am.addr, err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	am.mu.Lock()
	am.hold = ln
	am.mu.Unlock()
}

// Up ends an outage: the port is released and the Alertmanager started on it.
func (am *amServer) Up() {
	am.t.Helper()
	am.mu.Lock()
	if am.hold != nil {
		am.hold.Close()
		am.hold = nil
	}
	am.mu.Unlock()
	am.Start()
}

// Stop ends the Alertmanager (SIGTERM, then SIGKILL); safe to call twice.
func (am *amServer) Stop() {
	am.mu.Lock()
	defer am.mu.Unlock()
	if am.hold != nil {
		am.hold.Close()
		am.hold = nil
	}
	if am.cmd == nil {
		return
	}
	_ = am.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-am.done:
	case <-time.After(10 * time.Second):
		_ = am.cmd.Process.Kill()
		<-am.done
	}
	am.logf.Close()
	am.cmd = nil
}

// amAlert is one alert of GET /api/v2/alerts.
type amAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	UpdatedAt    time.Time         `json:"updatedAt"`
	GeneratorURL string            `json:"generatorURL"`
	Status       struct {
		State       string   `json:"state"`
		InhibitedBy []string `json:"inhibitedBy"`
		SilencedBy  []string `json:"silencedBy"`
	} `json:"status"`
}

// Alerts returns the Alertmanager's alerts matching an API v2 filter
// (alertname="X"); resolved alerts are not listed.
func (am *amServer) Alerts(filter string) ([]amAlert, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	u := am.URL + "/api/v2/alerts"
	if filter != "" {
		u += "?filter=" + url.QueryEscape(filter)
	}
	resp, err := client.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %d %s", u, resp.StatusCode, b)
	}
	var out []amAlert
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("cannot decode %s: %w", b, err)
	}
	return out, nil
}

// alertmanagerUIBinary returns an Alertmanager with its web UI: $VIGIL_AM_UI_BIN,
// or the one `make alertmanager-ui` built into .cache/, built there now if
// missing (about a minute on 2 cores; the module proxy is needed once).
func alertmanagerUIBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("VIGIL_AM_UI_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("VIGIL_AM_UI_BIN=%s: %v", p, err)
		}
		return p
	}
	dir, err := filepath.Abs(filepath.Join("..", ".cache", "alertmanager-"+alertmanagerUIVersion))
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "alertmanager")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	t.Logf("building Alertmanager %s with its UI into %s (once)", alertmanagerUIVersion, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "install", "github.com/prometheus/alertmanager/cmd/alertmanager@"+alertmanagerUIVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=-trimpath")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cannot build Alertmanager %s: %v\n%s", alertmanagerUIVersion, err, out)
	}
	return bin
}

// webhook records Alertmanager's webhook notifications, by receiver path.
type webhook struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []webhookNote
}

type webhookNote struct {
	Path   string
	Status string `json:"status"`
	Alerts []struct {
		Status string            `json:"status"`
		Labels map[string]string `json:"labels"`
	} `json:"alerts"`
}

func newWebhook(t *testing.T) *webhook {
	w := &webhook{}
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var n webhookNote
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&n); err != nil {
			http.Error(rw, err.Error(), http.StatusBadRequest)
			return
		}
		n.Path = r.URL.Path
		w.mu.Lock()
		w.got = append(w.got, n)
		w.mu.Unlock()
	}))
	t.Cleanup(w.srv.Close)
	return w
}

// notified reports whether a notification to path carried an alert named
// alertname with status ("firing" or "resolved").
func (w *webhook) notified(path, alertname, status string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, n := range w.got {
		if n.Path != path {
			continue
		}
		for _, a := range n.Alerts {
			if a.Labels["alertname"] == alertname && a.Status == status {
				return true
			}
		}
	}
	return false
}

// chromium loads url in headless Chromium, saves a screenshot to png and
// returns the DOM after the page's scripts ran for budget of virtual time.
// A page that reloads itself needs a budget shorter than its refresh, or
// Chromium follows the reload and never settles.
func chromium(t *testing.T, target, png string, budget time.Duration) string {
	t.Helper()
	bin := lookBackend(t, "chromium", "chromium-browser")
	run := func(extra ...string) []byte {
		args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
			"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
			"--user-data-dir=" + t.TempDir(), "--window-size=1280,1000", fmt.Sprintf("--virtual-time-budget=%d", budget.Milliseconds())}, extra...)
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append(args, target)...)
		// Chromium's helper processes inherit stdout: end the whole group on
		// timeout, and do not wait for their pipes for long.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		cmd.WaitDelay = 5 * time.Second
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("chromium %s: %v\n%s", target, err, tail(stderr.String(), 2000))
		}
		return []byte(stdout.String())
	}
	run("--screenshot=" + png)
	if fi, err := os.Stat(png); err != nil || fi.Size() == 0 {
		t.Fatalf("chromium wrote no screenshot of %s: %v", target, err)
	}
	return string(run("--dump-dom"))
}

// artifactDir is where tests keep what a person may want to look at after a
// run (screenshots): $VIGIL_E2E_ARTIFACTS, or vigil-e2e-artifacts in the
// system temp dir. Unlike t.TempDir it is not removed after the test.
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("VIGIL_E2E_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "vigil-e2e-artifacts")
	}
	dir = filepath.Join(dir, t.Name())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
