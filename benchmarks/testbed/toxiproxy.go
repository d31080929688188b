package testbed

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// toxiproxy is a running toxiproxy-server and a client of its HTTP API
// (https://github.com/Shopify/toxiproxy#http-api): every replica's and the
// database's listener is one of its proxies.
type toxiproxy struct {
	api  string
	http *http.Client
	proc *proc
}

// startToxiproxy runs bin on 127.0.0.1 at a free port and waits for its API.
func startToxiproxy(ctx context.Context, bin, workDir, run string) (*toxiproxy, error) {
	port, err := freePort("127.0.0.1")
	if err != nil {
		return nil, err
	}
	p, err := startProc("toxiproxy", filepath.Join(workDir, "logs", "toxiproxy.log"), bin,
		[]string{"-host", "127.0.0.1", "-port", strconv.Itoa(port)}, []string{runEnvVar + "=" + run})
	if err != nil {
		return nil, err
	}
	tp := &toxiproxy{api: "http://127.0.0.1:" + strconv.Itoa(port), http: &http.Client{Timeout: 10 * time.Second}, proc: p}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if err := tp.call(ctx, http.MethodGet, "/version", nil, nil); err == nil {
			return tp, nil
		}
		if p.exited() || time.Now().After(deadline) || ctx.Err() != nil {
			_ = p.stop(syscall.SIGTERM, 2*time.Second)
			return nil, fmt.Errorf("cannot start toxiproxy: its API on %s did not answer (log in %s)", tp.api, filepath.Join(workDir, "logs"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop kills the server: it holds no state worth a graceful shutdown, which
// can wait for its API's idle keep-alive connections.
func (tp *toxiproxy) stop() error { return tp.proc.stop(syscall.SIGKILL, 5*time.Second) }

func (tp *toxiproxy) call(ctx context.Context, method, path string, body, out any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("cannot encode toxiproxy request: %w", err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, tp.api+path, r)
	if err != nil {
		return fmt.Errorf("cannot build toxiproxy request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := tp.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot call toxiproxy %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 300 {
		return fmt.Errorf("cannot call toxiproxy %s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("cannot decode toxiproxy %s %s: %w", method, path, err)
		}
	}
	return nil
}

// createProxy makes a proxy listening on listen and forwarding to upstream.
func (tp *toxiproxy) createProxy(ctx context.Context, name, listen, upstream string) error {
	return tp.call(ctx, http.MethodPost, "/proxies", map[string]any{"name": name, "listen": listen, "upstream": upstream, "enabled": true}, nil)
}

func (tp *toxiproxy) deleteProxy(ctx context.Context, name string) error {
	return tp.call(ctx, http.MethodDelete, "/proxies/"+name, nil, nil)
}

// setEnabled disables (connection refused, existing connections closed) or
// re-enables a proxy.
func (tp *toxiproxy) setEnabled(ctx context.Context, name string, on bool) error {
	return tp.call(ctx, http.MethodPost, "/proxies/"+name, map[string]any{"enabled": on}, nil)
}

// addToxic adds a toxic on the downstream stream (the callee's answers) of
// every connection: latency {latency, jitter ms}, reset_peer {timeout},
// slow_close {delay}, ...
func (tp *toxiproxy) addToxic(ctx context.Context, proxy, name, typ string, attrs map[string]any) error {
	return tp.call(ctx, http.MethodPost, "/proxies/"+proxy+"/toxics",
		map[string]any{"name": name, "type": typ, "stream": "downstream", "toxicity": 1.0, "attributes": attrs}, nil)
}

func (tp *toxiproxy) removeToxic(ctx context.Context, proxy, name string) error {
	return tp.call(ctx, http.MethodDelete, "/proxies/"+proxy+"/toxics/"+name, nil, nil)
}

// proxyState is a proxy as the API lists it.
type proxyState struct {
	Name    string `json:"name"`
	Listen  string `json:"listen"`
	Enabled bool   `json:"enabled"`
	Toxics  []struct {
		Name string `json:"name"`
		Type string `json:"type"`
	} `json:"toxics"`
}

func (tp *toxiproxy) proxy(ctx context.Context, name string) (proxyState, error) {
	var p proxyState
	err := tp.call(ctx, http.MethodGet, "/proxies/"+name, nil, &p)
	return p, err
}

// freePort returns a port free on ip now.
func freePort(ip string) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, fmt.Errorf("cannot find a free port on %s: %w", ip, err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
