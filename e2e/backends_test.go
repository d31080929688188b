package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// lookBackend finds a backend binary on PATH; CI installs them (.ci/run), and
// `make test-deps` does on a fresh Debian machine.
func lookBackend(t *testing.T, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	t.Fatalf("none of %v on PATH: run `make test-deps` (Debian packages prometheus, prometheus-alertmanager)", names)
	return ""
}

// promServer is a real Prometheus started by the test on 127.0.0.1.
type promServer struct {
	URL string
}

// startPrometheus runs Debian's Prometheus with the remote-write receiver on
// and the given scrape config body (may be empty).
func startPrometheus(t *testing.T, scrapeConfigs string, ruleFiles ...string) *promServer {
	t.Helper()
	bin := lookBackend(t, "prometheus")
	dir := t.TempDir()
	port := freePort(t)
	cfg := filepath.Join(dir, "prometheus.yml")
	body := "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
	if len(ruleFiles) > 0 {
		body += "rule_files:\n"
		for _, f := range ruleFiles {
			body += fmt.Sprintf("  - %q\n", f)
		}
	}
	if scrapeConfigs != "" {
		body += "scrape_configs:\n" + scrapeConfigs
	}
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--web.external-url=http://"+addr,
		"--web.enable-remote-write-receiver", "--web.enable-lifecycle", "--log.level=warn")
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("prometheus log:\n%s", tail(string(b), 4000))
		}
	})
	p := &promServer{URL: "http://" + addr}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(p.URL + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("prometheus on %s not ready", addr)
	return nil
}

// promSample is one series of an instant-query result.
type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// Query runs an instant query and returns the vector result.
func (p *promServer) Query(q string) ([]promSample, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(p.URL + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string       `json:"resultType"`
			Result     []promSample `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("cannot decode query response %q: %w", b, err)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query %q: %s", q, r.Error)
	}
	return r.Data.Result, nil
}
