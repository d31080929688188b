package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/vigilhq/vigil/testkit/otlpsink"
)

// pki is a throwaway certificate authority with a server certificate for
// 127.0.0.1, a client certificate, and a client certificate from another CA.
type pki struct {
	dir                                                  string
	caFile, serverCert, serverKey, clientCert, clientKey string
	rogueCert, rogueKey                                  string
	pool                                                 *x509.CertPool
	serverPair, clientPair, roguePair                    tls.Certificate
	serverKeyPEM                                         string
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir(), pool: x509.NewCertPool()}
	ca, caKey := makeCert(t, "vigil-e2e-ca", nil, nil, true, nil)
	rogue, rogueKey := makeCert(t, "rogue-ca", nil, nil, true, nil)
	p.pool.AddCert(ca)
	write := func(name string, der []byte, key *ecdsa.PrivateKey) (string, string) {
		cf := filepath.Join(p.dir, name+".crt")
		require.NoError(t, os.WriteFile(cf, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
		if key == nil {
			return cf, ""
		}
		kb, err := x509.MarshalECPrivateKey(key)
		require.NoError(t, err)
		kf := filepath.Join(p.dir, name+".key")
		require.NoError(t, os.WriteFile(kf, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600))
		return cf, kf
	}
	p.caFile, _ = write("ca", ca.Raw, nil)
	srv, srvKey := makeCert(t, "127.0.0.1", ca, caKey, false, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth})
	p.serverCert, p.serverKey = write("server", srv.Raw, srvKey)
	cli, cliKey := makeCert(t, "vigil-client", ca, caKey, false, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth})
	p.clientCert, p.clientKey = write("client", cli.Raw, cliKey)
	rc, rk := makeCert(t, "vigil-client", rogue, rogueKey, false, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth})
	p.rogueCert, p.rogueKey = write("rogue", rc.Raw, rk)
	var err error
	p.serverPair, err = tls.LoadX509KeyPair(p.serverCert, p.serverKey)
	require.NoError(t, err)
	p.clientPair, err = tls.LoadX509KeyPair(p.clientCert, p.clientKey)
	require.NoError(t, err)
	p.roguePair, err = tls.LoadX509KeyPair(p.rogueCert, p.rogueKey)
	require.NoError(t, err)
	b, err := os.ReadFile(p.serverKey)
	require.NoError(t, err)
	p.serverKeyPEM = string(b)
	return p
}

func makeCert(t *testing.T, cn string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, isCA bool, usage []x509.ExtKeyUsage) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	require.NoError(t, err)
	tpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: usage,
	}
	if isCA {
		tpl.IsCA, tpl.BasicConstraintsValid, tpl.KeyUsage = true, true, x509.KeyUsageCertSign|x509.KeyUsageDigitalSignature
		parent, parentKey = tpl, key
	} else {
		tpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		tpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, parent, &key.PublicKey, parentKey)
	require.NoError(t, err)
	c, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return c, key
}

const secretToken = "s3cr3t-vigil-e2e-token-7f2c9a"

// TestTLSAndAuth: OTLP receivers with TLS and required client certificates
// (mTLS), receivers with bearer-token auth, and an exporter that sends over
// mTLS to a backend that checks the agent's certificate, all with
// certificates made by the test. Wrong or missing credentials are refused;
// right ones get through to the backend; the token and the private key never
// appear in the agent's output, even at debug level or in a config error.
func TestTLSAndAuth(t *testing.T) {
	p := newPKI(t)
	sink, err := otlpsink.StartTLS("127.0.0.1:0", true, &tls.Config{
		Certificates: []tls.Certificate{p.serverPair}, ClientCAs: p.pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12,
	})
	require.NoError(t, err)
	t.Cleanup(sink.Stop)
	health, mg, mh, tg, th, tel := freePort(t), freePort(t), freePort(t), freePort(t), freePort(t), freePort(t)
	serverTLS := fmt.Sprintf("{cert_file: %s, key_file: %s}", p.serverCert, p.serverKey)
	mtls := fmt.Sprintf("{cert_file: %s, key_file: %s, client_ca_file: %s}", p.serverCert, p.serverKey, p.caFile)
	cfg := fmt.Sprintf(`
extensions:
  health_check:
    endpoint: 127.0.0.1:%d
  bearertokenauth/in:
    token: %s
receivers:
  otlp/mtls:
    protocols:
      grpc: {endpoint: 127.0.0.1:%d, tls: %s}
      http: {endpoint: 127.0.0.1:%d, tls: %s}
  otlp/token:
    protocols:
      grpc: {endpoint: 127.0.0.1:%d, tls: %s, auth: {authenticator: bearertokenauth/in}}
      http: {endpoint: 127.0.0.1:%d, tls: %s, auth: {authenticator: bearertokenauth/in}}
exporters:
  otlp_grpc:
    endpoint: %s
    tls: {ca_file: %s, cert_file: %s, key_file: %s}
service:
  extensions: [health_check, bearertokenauth/in]
  telemetry:
    logs:
      level: debug
    metrics:
      readers:
        - pull: {exporter: {prometheus: {host: 127.0.0.1, port: %d}}}
  pipelines:
    traces:
      receivers: [otlp/mtls, otlp/token]
      exporters: [otlp_grpc]
`, health, secretToken, mg, mtls, mh, mtls, tg, serverTLS, th, serverTLS, sink.Addr, p.caFile, p.clientCert, p.clientKey, tel)
	cfgFile := writeConfig(t, cfg)
	a := startAgent(t, health, "--config", cfgFile)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	accepted := 0
	export := func(addr string, creds credentials.TransportCredentials, md metadata.MD) error {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
		require.NoError(t, err)
		defer conn.Close()
		c, cancel := context.WithTimeout(metadata.NewOutgoingContext(ctx, md), 5*time.Second)
		defer cancel()
		_, err = ptraceotlp.NewGRPCClient(conn).Export(c, ptraceotlp.NewExportRequestFromTraces(spanWith(func(ptrace.Span) {})))
		if err == nil {
			accepted++
		}
		return err
	}
	tlsWith := func(certs ...tls.Certificate) credentials.TransportCredentials {
		return credentials.NewTLS(&tls.Config{RootCAs: p.pool, Certificates: certs, MinVersion: tls.VersionTLS12})
	}
	mgAddr, tgAddr := fmt.Sprintf("127.0.0.1:%d", mg), fmt.Sprintf("127.0.0.1:%d", tg)

	// mTLS over gRPC.
	require.NoError(t, export(mgAddr, tlsWith(p.clientPair), nil), "a client with a certificate from the CA")
	for name, creds := range map[string]credentials.TransportCredentials{
		"no client certificate":           tlsWith(),
		"a certificate from another CA":   tlsWith(p.roguePair),
		"plaintext":                       insecure.NewCredentials(),
		"a client that does not trust it": credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{p.clientPair}, MinVersion: tls.VersionTLS12}),
	} {
		err := export(mgAddr, creds, nil)
		require.Errorf(t, err, "mTLS receiver accepted %s", name)
		t.Logf("mTLS gRPC, %s: %v", name, status.Code(err))
	}

	// mTLS over HTTP.
	post := func(port int, certs []tls.Certificate, token string) (int, error) {
		client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.pool, Certificates: certs, MinVersion: tls.VersionTLS12}}}
		body, err := ptraceotlp.NewExportRequestFromTraces(spanWith(func(ptrace.Span) {})).MarshalProto()
		require.NoError(t, err)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("https://127.0.0.1:%d/v1/traces", port), bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-protobuf")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			accepted++
		}
		return resp.StatusCode, nil
	}
	code, err := post(mh, []tls.Certificate{p.clientPair}, "")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
	_, err = post(mh, nil, "")
	require.Error(t, err, "mTLS HTTP receiver accepted a client without a certificate")
	_, err = post(mh, []tls.Certificate{p.roguePair}, "")
	require.Error(t, err, "mTLS HTTP receiver accepted a certificate from another CA")

	// Bearer token, gRPC and HTTP.
	require.NoError(t, export(tgAddr, tlsWith(), metadata.Pairs("authorization", "Bearer "+secretToken)))
	for name, md := range map[string]metadata.MD{"no token": nil, "a wrong token": metadata.Pairs("authorization", "Bearer nope")} {
		err := export(tgAddr, tlsWith(), md)
		require.Equalf(t, codes.Unauthenticated, status.Code(err), "token receiver with %s: %v", name, err)
	}
	code, err = post(th, nil, secretToken)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
	for _, tok := range []string{"", "nope"} {
		code, err := post(th, nil, tok)
		require.NoError(t, err)
		require.Equalf(t, http.StatusUnauthorized, code, "token %q", tok)
	}

	// What got in went out over mTLS to a backend that verified the agent.
	require.True(t, otlpsink.WaitFor(20*time.Second, func() bool { return sink.Spans.Load() == int64(accepted) }),
		"the mTLS backend got %d spans, want %d", sink.Spans.Load(), accepted)

	// No secret in the output: debug logs, and a config error in the
	// component that holds the token.
	a.Stop()
	out := a.log.String()
	require.NotContains(t, out, secretToken)
	require.NotContains(t, out, strings.TrimSpace(strings.Split(p.serverKeyPEM, "\n")[1]))
	bad := strings.Replace(cfg, "    token: "+secretToken, "    token: "+secretToken+"\n    scheme_typo: Bearer", 1)
	vout, code2 := runVigil(t, 30*time.Second, "validate", "--config", writeConfig(t, bad))
	require.NotZero(t, code2, vout)
	require.Contains(t, vout, "scheme_typo")
	require.NotContains(t, vout, secretToken, "a config error printed the token")
}

// TestListenersOnLoopbackAtRuntime starts each embedded config in a network
// namespace of its own (so their fixed ports cannot collide with anything)
// and reads the sockets the process listens on from the kernel: every one is
// on 127.0.0.1, none on a wildcard or IPv6 address.
func TestListenersOnLoopbackAtRuntime(t *testing.T) {
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare not available")
	}
	if err := exec.Command("unshare", "-n", "true").Run(); err != nil {
		t.Skipf("cannot create a network namespace (needs root): %v", err)
	}
	dir := t.TempDir()
	t.Setenv("VIGIL_OTLP_ENDPOINT", "127.0.0.1:1")
	t.Setenv("VIGIL_OTLP_INSECURE", "true")
	t.Setenv("VIGIL_STORAGE_DIR", filepath.Join(dir, "storage"))
	t.Setenv("VIGIL_HOST_ROOT", filepath.Join(dir, "host"))
	for _, name := range []string{"default", "agent"} {
		t.Run(name, func(t *testing.T) {
			a := &agent{t: t, args: []string{"--config", "vigil:" + name}, log: &syncBuffer{},
				wrap: []string{"unshare", "-n", "sh", "-c", `ip link set lo up && exec "$@"`, "sh"}}
			a.start()
			t.Cleanup(a.Stop)
			var ls []string
			ok := otlpsink.WaitFor(60*time.Second, func() bool {
				ls = listening(t, a.cmd.Process.Pid)
				return len(ls) >= 6 && strings.Contains(a.log.String(), "Everything is ready")
			})
			require.Truef(t, ok, "listening on %v:\n%s", ls, tail(a.log.String(), 3000))
			for _, l := range ls {
				require.Truef(t, strings.HasPrefix(l, "127.0.0.1:"), "vigil:%s listens on %s", name, l)
			}
			t.Logf("vigil:%s listens on %s", name, strings.Join(ls, " "))
		})
	}
}

// listening returns the TCP addresses in LISTEN state in pid's network
// namespace, from /proc/<pid>/net/tcp and tcp6.
func listening(t *testing.T, pid int) []string {
	var out []string
	for _, f := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, f))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 4 || fields[3] != "0A" {
				continue
			}
			hostport := strings.Split(fields[1], ":")
			var port int
			_, _ = fmt.Sscanf(hostport[1], "%X", &port)
			ip := make(net.IP, len(hostport[0])/2)
			for i := range ip {
				_, _ = fmt.Sscanf(hostport[0][2*i:2*i+2], "%02X", &ip[i])
			}
			// /proc prints each 32-bit word in host (little-endian) order.
			for w := 0; w+4 <= len(ip); w += 4 {
				ip[w], ip[w+1], ip[w+2], ip[w+3] = ip[w+3], ip[w+2], ip[w+1], ip[w]
			}
			out = append(out, net.JoinHostPort(ip.String(), fmt.Sprint(port)))
		}
	}
	return out
}
