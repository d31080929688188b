package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"

	"github.com/vigilhq/vigil/internal/alertevent"
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

// startAlertmanager runs bin with the given configuration on a free port of
// 127.0.0.1 and waits until it is ready. Debian's prometheus-alertmanager and
// a go-installed one take the same flags; clustering is off (an empty
// --cluster.listen-address), or it would gossip on 0.0.0.0:9094.
func startAlertmanager(t *testing.T, bin, name, config string) *amServer {
	t.Helper()
	return startAlertmanagerOn(t, bin, name, config, fmt.Sprintf("127.0.0.1:%d", freePort(t)))
}

// startAlertmanagerOn is startAlertmanager on the given address.
func startAlertmanagerOn(t *testing.T, bin, name, config, addr string) *amServer {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
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

// TestAlertmanagerReplicasThroughDNS is kube-prometheus-stack's Alertmanager
// StatefulSet behind its headless Service, on one machine: two real
// Alertmanagers on 127.0.0.1 and 127.0.0.2, same port, not clustered, and one
// DNS name that resolves to both, by A records and by SRV records. One vigil
// exporter is configured with dns+http://name:port, another with
// dnssrv+http://_http-web._tcp.name; each marks its alerts with an external
// label. Both Alertmanagers must hold the alert from both exporters, and the
// agent's own metrics must show two addresses per name and no failed lookup.
//
// How the agent finds the name: a real DNS server (miekg/dns) in this test,
// on port 53 of a random 127.53.x.y, and the agent run in a mount namespace
// of its own (unshare --mount) where this test's resolv.conf, naming that server,
// is bind-mounted over /etc/resolv.conf. The agent then resolves through its
// ordinary resolver (Go's, which reads /etc/resolv.conf and asks port 53 only)
// with nothing in the product changed for the test; the server counts the
// queries, so the test knows they came. The alternative, a name from
// /etc/hosts such as localhost (127.0.0.1 and ::1), would skip DNS, SRV and
// the second IPv4 replica; a resolver address in the exporter's config would
// be a test hook in product config. Port 53 and the mount need root, as
// TestListenersOnLoopbackAtRuntime's network namespace does: without it the
// test skips, saying why.
func TestAlertmanagerReplicasThroughDNS(t *testing.T) {
	amBin := lookBackend(t, "prometheus-alertmanager", "alertmanager")
	ns := startTestDNS(t)
	resolvConf := filepath.Join(t.TempDir(), "resolv.conf")
	require.NoError(t, os.WriteFile(resolvConf, []byte("nameserver "+ns.ip+"\noptions timeout:2 attempts:2\n"), 0o644))
	// Private propagation (explicit, though unshare's default): the bind
	// mount must never reach the machine's own /etc/resolv.conf.
	wrap := []string{"unshare", "--mount", "--propagation", "private", "sh", "-c", `mount --bind "$0" /etc/resolv.conf && exec "$@"`, resolvConf}
	if out, err := exec.Command(wrap[0], append(slices.Clone(wrap[1:]), "true")...).CombinedOutput(); err != nil {
		t.Skipf("cannot bind-mount a resolv.conf in a mount namespace (needs root): %v: %s", err, out)
	}

	port := freePortOnBoth(t, "127.0.0.2")
	simple := "route:\n  receiver: none\nreceivers:\n  - name: none\n"
	am0 := startAlertmanagerOn(t, amBin, "alertmanager-0", simple, fmt.Sprintf("127.0.0.1:%d", port))
	am1 := startAlertmanagerOn(t, amBin, "alertmanager-1", simple, fmt.Sprintf("127.0.0.2:%d", port))
	const zone = "alertmanager-operated.vigil-e2e.test."
	ns.set(map[string][]dns.RR{
		zone: {aRecord(zone, "127.0.0.1"), aRecord(zone, "127.0.0.2")},
		"_http-web._tcp." + zone: {
			srvRecord("_http-web._tcp."+zone, "alertmanager-0."+zone, port),
			srvRecord("_http-web._tcp."+zone, "alertmanager-1."+zone, port),
		},
		"alertmanager-0." + zone: {aRecord("alertmanager-0."+zone, "127.0.0.1")},
		"alertmanager-1." + zone: {aRecord("alertmanager-1."+zone, "127.0.0.2")},
	})

	healthPort, httpPort, telPort := freePort(t), freePort(t), freePort(t)
	byA := fmt.Sprintf("dns+http://%s:%d", strings.TrimSuffix(zone, "."), port)
	bySRV := "dnssrv+http://_http-web._tcp." + strings.TrimSuffix(zone, ".")
	cfg := writeConfig(t, fmt.Sprintf(`
extensions:
  health_check:
    endpoint: 127.0.0.1:%d
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:%d
exporters:
  alertmanager/dns:
    endpoint: %s
    external_labels: {via: dns}
  alertmanager/dnssrv:
    endpoint: %s
    external_labels: {via: dnssrv}
service:
  extensions: [health_check]
%s
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [alertmanager/dns, alertmanager/dnssrv]
`, healthPort, httpPort, byA, bySRV, telemetryYAML(telPort)))
	a := &agent{t: t, args: []string{"--config", cfg}, log: &syncBuffer{}, HealthPort: healthPort, wrap: wrap}
	a.start()
	t.Cleanup(a.Stop)
	a.waitHealthy(60 * time.Second)

	postAlertEvent(t, fmt.Sprintf("http://127.0.0.1:%d/v1/logs", httpPort), "DNSFanout")
	for _, am := range []*amServer{am0, am1} {
		waitFor(t, time.Now().Add(30*time.Second), am.name+" holding DNSFanout from both exporters", func() bool {
			got, err := am.Alerts(`alertname="DNSFanout"`)
			if err != nil {
				return false
			}
			via := map[string]bool{}
			for _, al := range got {
				via[al.Labels["via"]] = true
			}
			return via["dns"] && via["dnssrv"]
		})
	}
	assert.Positive(t, ns.queries.Load(), "the agent asked the test's DNS server")

	// An Alertmanager holds an alert before it answers the POST that the
	// agent counts: give the count a moment.
	var own string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		own = scrape(telPort)
		if metricSum(own, "otelcol_exporter_alertmanager_alerts_sent", map[string]string{"alertmanager": byA}) >= 2 &&
			metricSum(own, "otelcol_exporter_alertmanager_alerts_sent", map[string]string{"alertmanager": bySRV}) >= 2 {
			break
		}
	}
	for _, tc := range []struct{ exporter, name string }{{"alertmanager/dns", byA}, {"alertmanager/dnssrv", bySRV}} {
		match := map[string]string{"exporter": tc.exporter, "alertmanager": tc.name}
		assert.Equal(t, 2.0, metricSum(own, "otelcol_exporter_alertmanager_dns_targets", match), "%s: addresses", tc.exporter)
		assert.GreaterOrEqual(t, metricSum(own, "otelcol_exporter_alertmanager_alerts_sent", match), 2.0, "%s: one alert to each address", tc.exporter)
		assert.Zero(t, metricSum(own, "otelcol_exporter_alertmanager_alerts_failed", match), tc.exporter)
		assert.Zero(t, metricSum(own, "otelcol_exporter_alertmanager_dns_failures", match), tc.exporter)
	}
	if t.Failed() {
		t.Logf("agent metrics:\n%s", own)
	}
}

// freePortOnBoth returns a freePort that is free on ip too.
func freePortOnBoth(t *testing.T, ip string) int {
	t.Helper()
	for range 20 {
		p := freePort(t)
		ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(p)))
		if err == nil {
			ln.Close()
			return p
		}
	}
	t.Fatalf("no port free on both 127.0.0.1 and %s", ip)
	return 0
}

// testDNS is an authoritative DNS server for the records the test sets, on
// port 53 (resolv.conf names no port) of a loopback address of its own, over
// UDP and TCP. AAAA and other questions about a known name get an empty
// answer; unknown names NXDOMAIN.
type testDNS struct {
	ip      string
	queries atomic.Int64
	mu      sync.Mutex
	records map[string][]dns.RR // by owner name, lower case, with the final dot
}

func startTestDNS(t *testing.T) *testDNS {
	t.Helper()
	s := &testDNS{}
	var pc net.PacketConn
	var ln net.Listener
	for range 20 {
		s.ip = fmt.Sprintf("127.53.%d.%d", 1+rand.IntN(254), 1+rand.IntN(254))
		addr := net.JoinHostPort(s.ip, "53")
		var err error
		if pc, err = net.ListenPacket("udp", addr); err != nil {
			if errors.Is(err, syscall.EACCES) {
				t.Skipf("cannot listen on port 53 (needs root): %v", err)
			}
			continue
		}
		if ln, err = net.Listen("tcp", addr); err != nil {
			pc.Close()
			pc = nil
			continue
		}
		break
	}
	if pc == nil {
		t.Fatal("no free 127.53.x.y:53 after 20 tries")
	}
	h := dns.HandlerFunc(s.serve)
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h}} {
		go func() { _ = srv.ActivateAndServe() }()
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	return s
}

func (s *testDNS) set(records map[string][]dns.RR) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records = records
}

func (s *testDNS) serve(w dns.ResponseWriter, r *dns.Msg) {
	s.queries.Add(1)
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	s.mu.Lock()
	for _, q := range r.Question {
		rrs, ok := s.records[strings.ToLower(q.Name)]
		if !ok {
			m.SetRcode(r, dns.RcodeNameError)
			continue
		}
		for _, rr := range rrs {
			if rr.Header().Rrtype == q.Qtype {
				m.Answer = append(m.Answer, rr)
			}
		}
	}
	s.mu.Unlock()
	_ = w.WriteMsg(m)
}

func aRecord(name, ip string) dns.RR {
	return &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: net.ParseIP(ip)}
}

func srvRecord(name, target string, port int) dns.RR {
	return &dns.SRV{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: 5},
		Priority: 0, Weight: 1, Port: uint16(port), Target: target}
}

// postAlertEvent sends one firing alert event (internal/alertevent, as the
// redflag connector writes it) to an OTLP/HTTP logs endpoint.
func postAlertEvent(t *testing.T, endpoint, alertname string) {
	t.Helper()
	now := time.Now()
	ev := alertevent.Event{
		State:        alertevent.StateFiring,
		Labels:       map[string]string{"alertname": alertname, "severity": "warning"},
		Annotations:  map[string]string{"summary": "an alert for every replica"},
		ActiveAt:     now.Add(-time.Minute),
		FiredAt:      now,
		EvalInterval: 10 * time.Second,
	}
	ld := plog.NewLogs()
	ev.AppendTo(ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty(), now)
	body, err := plogotlp.NewExportRequestFromLogs(ld).MarshalProto()
	require.NoError(t, err)
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Post(endpoint, "application/x-protobuf", bytes.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", b)
}
