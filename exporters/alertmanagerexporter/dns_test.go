package alertmanagerexporter

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configtls"
	"go.opentelemetry.io/collector/exporter/exportertest"

	"github.com/vigilhq/vigil/exporters/alertmanagerexporter/internal/metadata"
)

// fakeResolver answers from its maps, or fails every lookup with err. Safe
// for concurrent use; the test changes the records while the exporter runs.
type fakeResolver struct {
	mu    sync.Mutex
	ips   map[string][]string   // host -> IPs
	srv   map[string][]*net.SRV // name -> records
	err   error
	calls atomic.Int64
}

var _ resolver = (*fakeResolver)(nil)

func (f *fakeResolver) set(ips map[string][]string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ips, f.err = ips, err
}

func (f *fakeResolver) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	f.calls.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	found, ok := f.ips[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	out := make([]net.IPAddr, len(found))
	for i, ip := range found {
		out[i] = net.IPAddr{IP: net.ParseIP(ip)}
	}
	return out, nil
}

func (f *fakeResolver) LookupSRV(_ context.Context, service, proto, name string) (string, []*net.SRV, error) {
	f.calls.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return "", nil, f.err
	}
	if service != "" || proto != "" {
		return "", nil, errors.New("the exporter looks the name up as written")
	}
	recs, ok := f.srv[name]
	if !ok {
		return "", nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
	return name, recs, nil
}

// startWithResolver starts the exporter as startExporter does, looking names
// up through r.
func startWithResolver(t *testing.T, cfg *Config, r resolver) (*harness, *amExporter) {
	t.Helper()
	require.NoError(t, cfg.Validate())
	tel := componenttest.NewTelemetry()
	set := exportertest.NewNopSettings(metadata.Type)
	set.TelemetrySettings = tel.NewTelemetrySettings()
	set.ID = component.NewIDWithName(metadata.Type, "primary")
	e, err := newExporter(set, cfg)
	require.NoError(t, err)
	e.resolver = r
	exp, err := e.logsExporter(context.Background(), set)
	require.NoError(t, err)
	require.NoError(t, exp.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() {
		require.NoError(t, exp.Shutdown(context.Background()))
		require.NoError(t, tel.Shutdown(context.Background()))
	})
	return &harness{exp: exp, tel: tel}, e
}

// twoReplicas starts two Alertmanager doubles on one port, on 127.0.0.1 and
// 127.0.0.2: two replicas a name resolves to. It skips where 127.0.0.2 is
// not a loopback address (only 127.0.0.1 is, on macOS).
func twoReplicas(t *testing.T) (am0, am1 *amDouble, port string) {
	t.Helper()
	for range 20 {
		ln0, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		_, port, _ = net.SplitHostPort(ln0.Addr().String())
		ln1, err := net.Listen("tcp", net.JoinHostPort("127.0.0.2", port))
		if err != nil {
			ln0.Close()
			if probe, perr := net.Listen("tcp", "127.0.0.2:0"); perr != nil {
				t.Skipf("127.0.0.2 is not a loopback address here: %v", perr)
			} else {
				probe.Close()
			}
			continue // the port is taken on 127.0.0.2
		}
		return amDoubleOn(t, ln0), amDoubleOn(t, ln1), port
	}
	t.Fatal("no port free on both 127.0.0.1 and 127.0.0.2")
	return nil, nil, ""
}

func amDoubleOn(t *testing.T, ln net.Listener) *amDouble {
	d := &amDouble{t: t}
	d.srv = httptest.NewUnstartedServer(http.HandlerFunc(d.serve))
	d.srv.Listener.Close()
	d.srv.Listener = ln
	d.srv.Start()
	t.Cleanup(d.srv.Close)
	return d
}

// originsOf returns the origin_service of every alert the double accepted.
func originsOf(d *amDouble) []string {
	var out []string
	for _, a := range d.alerts() {
		out = append(out, a.Labels["origin_service"])
	}
	return out
}

func hostPortsOf(d *dnsName) []string { return hostPorts(d.current()) }

func TestDNSNameSendsToEveryAddress(t *testing.T) {
	am0, am1, port := twoReplicas(t)
	r := &fakeResolver{ips: map[string][]string{"am.test": {"127.0.0.2", "127.0.0.1"}}}
	name := "dns+http://am.test:" + port
	h, _ := startWithResolver(t, testConfig(name), r)

	h.consume(t, firing("payments", time.Now()), firing("inventory", time.Now()))
	require.Eventually(t, func() bool { return len(am0.alerts()) == 2 && len(am1.alerts()) == 2 }, 5*time.Second, 10*time.Millisecond,
		"each address gets every alert")
	byName := map[string]string{"alertmanager": name}
	// The double keeps a batch before it answers, so the count may come a little later.
	require.Eventually(t, func() bool {
		return h.counter(t, "otelcol_exporter_alertmanager_alerts_sent", byName) == 4
	}, 5*time.Second, 10*time.Millisecond, "counted under the configured name")
	assert.Equal(t, int64(2), h.gauge(t, "otelcol_exporter_alertmanager_dns_targets", byName))
	assert.Zero(t, h.counter(t, "otelcol_exporter_alertmanager_dns_failures", nil))
}

func TestDNSRefreshUsesTheNewAddresses(t *testing.T) {
	am0, am1, port := twoReplicas(t)
	r := &fakeResolver{ips: map[string][]string{"am.test": {"127.0.0.1"}}}
	cfg := testConfig("dns+http://am.test:" + port)
	cfg.DNSRefreshInterval = 20 * time.Millisecond
	h, e := startWithResolver(t, cfg, r)
	d := e.dests[0].dns

	h.consume(t, firing("before", time.Now()))
	require.Eventually(t, func() bool { return len(am0.alerts()) == 1 }, 5*time.Second, 10*time.Millisecond)

	// The replica moves: the name now resolves to 127.0.0.2 only.
	r.set(map[string][]string{"am.test": {"127.0.0.2"}}, nil)
	require.Eventually(t, func() bool {
		got := hostPortsOf(d)
		return len(got) == 1 && got[0] == "127.0.0.2:"+port
	}, 5*time.Second, 10*time.Millisecond, "a refresh publishes the new set")
	h.consume(t, firing("after", time.Now()))
	require.Eventually(t, func() bool { return len(am1.alerts()) == 1 }, 5*time.Second, 10*time.Millisecond)
	time.Sleep(50 * time.Millisecond)
	assert.Equal(t, []string{"before"}, originsOf(am0), "the address that left gets nothing new")
	assert.Equal(t, []string{"after"}, originsOf(am1))
	assert.Equal(t, int64(1), h.gauge(t, "otelcol_exporter_alertmanager_dns_targets", nil))
}

func TestDNSLookupErrorKeepsTheLastAddresses(t *testing.T) {
	am0, am1, port := twoReplicas(t)
	r := &fakeResolver{ips: map[string][]string{"am.test": {"127.0.0.1", "127.0.0.2"}}}
	name := "dns+http://am.test:" + port
	cfg := testConfig(name)
	cfg.DNSRefreshInterval = 20 * time.Millisecond
	h, e := startWithResolver(t, cfg, r)
	d := e.dests[0].dns
	require.Eventually(t, func() bool { return len(d.current()) == 2 }, 5*time.Second, 10*time.Millisecond)

	r.set(nil, &net.DNSError{Err: "i/o timeout", Name: "am.test", IsTimeout: true})
	calls := r.calls.Load()
	byName := map[string]string{"alertmanager": name}
	require.Eventually(t, func() bool {
		return r.calls.Load() >= calls+3 && h.counter(t, "otelcol_exporter_alertmanager_dns_failures", byName) >= 2
	}, 5*time.Second, 10*time.Millisecond, "failed lookups are counted")
	assert.Equal(t, []string{"127.0.0.1:" + port, "127.0.0.2:" + port}, hostPortsOf(d), "the last set found is kept")
	assert.Equal(t, int64(2), h.gauge(t, "otelcol_exporter_alertmanager_dns_targets", byName))

	h.consume(t, firing("payments", time.Now()))
	require.Eventually(t, func() bool { return len(am0.alerts()) == 1 && len(am1.alerts()) == 1 }, 5*time.Second, 10*time.Millisecond,
		"both kept addresses still get the alert")
	assert.Zero(t, h.counter(t, "otelcol_exporter_alertmanager_alerts_failed", nil))

	// A name with no such host is a failure too: the set is kept, not emptied.
	r.set(map[string][]string{}, nil)
	calls = r.calls.Load()
	require.Eventually(t, func() bool { return r.calls.Load() >= calls+3 }, 5*time.Second, 10*time.Millisecond)
	assert.Len(t, d.current(), 2)
}

func TestDNSSRV(t *testing.T) {
	am0, am1 := newAMDouble(t, false), newAMDouble(t, false)
	port := func(d *amDouble) uint16 {
		p, err := strconv.Atoi(d.srv.URL[len("http://127.0.0.1:"):])
		require.NoError(t, err)
		return uint16(p)
	}
	r := &fakeResolver{
		srv: map[string][]*net.SRV{"_http-web._tcp.am.test": {
			{Target: "am-0.am.test.", Port: port(am0)},
			{Target: "am-1.am.test.", Port: port(am1)},
		}},
		ips: map[string][]string{"am-0.am.test.": {"127.0.0.1"}, "am-1.am.test.": {"127.0.0.1"}},
	}
	name := "dnssrv+http://_http-web._tcp.am.test"
	h, e := startWithResolver(t, testConfig(name), r)

	h.consume(t, firing("payments", time.Now()))
	require.Eventually(t, func() bool { return len(am0.alerts()) == 1 && len(am1.alerts()) == 1 }, 5*time.Second, 10*time.Millisecond,
		"each SRV target gets the alert, on the record's port")
	assert.Equal(t, []address{
		{hostPort: am0.srv.Listener.Addr().String(), serverName: "am-0.am.test"},
		{hostPort: am1.srv.Listener.Addr().String(), serverName: "am-1.am.test"},
	}, sortedByPort(e.dests[0].dns.current()))
	require.Eventually(t, func() bool {
		return h.counter(t, "otelcol_exporter_alertmanager_alerts_sent", map[string]string{"alertmanager": name}) == 2
	}, 5*time.Second, 10*time.Millisecond)
}

func sortedByPort(a []address) []address {
	out := append([]address(nil), a...)
	if len(out) == 2 && out[0].serverName > out[1].serverName {
		out[0], out[1] = out[1], out[0]
	}
	return out
}

func TestDNSNameWithoutAddressFailsTheSend(t *testing.T) {
	r := &fakeResolver{ips: map[string][]string{}}
	name := "dns+http://missing.test:9093"
	h, _ := startWithResolver(t, testConfig(name), r)
	h.consume(t, firing("payments", time.Now()), firing("inventory", time.Now()))
	byName := map[string]string{"alertmanager": name}
	require.Eventually(t, func() bool {
		return h.counter(t, "otelcol_exporter_alertmanager_alerts_failed", byName) == 2
	}, 5*time.Second, 10*time.Millisecond, "a name with no address fails the send, counted")
	assert.Equal(t, int64(1), h.counter(t, "otelcol_exporter_alertmanager_dns_failures", byName))
	assert.Zero(t, h.gauge(t, "otelcol_exporter_alertmanager_dns_targets", byName))
	assert.Zero(t, h.counter(t, "otelcol_exporter_alertmanager_alerts_sent", nil))
}

// TestDNSOverTLSVerifiesTheName dials the address but presents and verifies
// the name: the server sees it as SNI (a client dialling an IP without a
// ServerName sends none).
func TestDNSOverTLSVerifiesTheName(t *testing.T) {
	d := &amDouble{t: t}
	d.srv = httptest.NewUnstartedServer(http.HandlerFunc(d.serve))
	var sni sync.Map
	d.srv.TLS = &tls.Config{GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		sni.Store(hello.ServerName, true)
		return nil, nil
	}}
	d.srv.StartTLS()
	t.Cleanup(d.srv.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d.srv.Certificate().Raw}), 0o600))
	_, port, _ := net.SplitHostPort(d.srv.Listener.Addr().String())

	// httptest's certificate is for example.com (and 127.0.0.1).
	r := &fakeResolver{ips: map[string][]string{"example.com": {"127.0.0.1"}}}
	cfg := testConfig("dns+https://example.com:" + port)
	cfg.TLS = configtls.ClientConfig{Config: configtls.Config{CAFile: caFile}}
	h, _ := startWithResolver(t, cfg, r)
	h.consume(t, firing("payments", time.Now()))
	require.Eventually(t, func() bool { return len(d.alerts()) == 1 }, 5*time.Second, 10*time.Millisecond)
	var seen []string
	sni.Range(func(k, _ any) bool { seen = append(seen, k.(string)); return true })
	assert.Equal(t, []string{"example.com"}, seen)
}

func TestResolve(t *testing.T) {
	r := &fakeResolver{
		ips: map[string][]string{
			"am.test": {"10.0.0.2", "10.0.0.1", "10.0.0.2", "fd00::1"},
			"a.test.": {"10.0.0.1"}, "b.test.": {"10.0.0.1"}, "c.test.": {"10.0.0.3"},
		},
		srv: map[string][]*net.SRV{
			"_web._tcp.am.test": {{Target: "a.test.", Port: 9093}, {Target: "b.test.", Port: 9093}, {Target: "c.test.", Port: 9094}},
			"_web._tcp.broken":  {{Target: "a.test.", Port: 9093}, {Target: "gone.test.", Port: 9093}},
		},
	}
	for _, tc := range []struct {
		name, host, port string
		kind             lookup
		want             []string
		err              string
	}{
		{name: "A, sorted, distinct, IPv6 bracketed", kind: lookupA, host: "am.test", port: "9093",
			want: []string{"10.0.0.1:9093", "10.0.0.2:9093", "[fd00::1]:9093"}},
		{name: "SRV, ports from the records, one address twice", kind: lookupSRV, host: "_web._tcp.am.test",
			want: []string{"10.0.0.1:9093", "10.0.0.3:9094"}},
		{name: "SRV, the URL's port wins, as in Thanos", kind: lookupSRV, host: "_web._tcp.am.test", port: "8080",
			want: []string{"10.0.0.1:8080", "10.0.0.3:8080"}},
		{name: "SRV with a target that does not resolve fails whole", kind: lookupSRV, host: "_web._tcp.broken",
			err: "SRV target gone.test.: lookup gone.test.: no such host"},
		{name: "no such name", kind: lookupA, host: "nope.test", port: "9093", err: "no such host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &dnsName{kind: tc.kind, host: tc.host, port: tc.port}
			got, err := d.resolve(context.Background(), r)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, hostPorts(got))
		})
	}
	r.ips["empty.test"] = nil
	_, err := (&dnsName{kind: lookupA, host: "empty.test", port: "1"}).resolve(context.Background(), r)
	assert.ErrorIs(t, err, errNoAddress)
}
