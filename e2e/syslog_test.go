package e2e

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/vigilhq/vigil/testkit/otlpsink"
)

// RFC 5424 over TCP through the syslog example reaches the sink with the
// syslog severity and app name mapped, and a malformed line does not stop the
// listener: the line is forwarded raw.
func TestSyslogTCPExample(t *testing.T) {
	sink, err := otlpsink.Start("127.0.0.1:0", true)
	require.NoError(t, err)
	t.Cleanup(sink.Stop)
	health, tel, sysPort := freePort(t), freePort(t), freePort(t)
	override := writeConfig(t, fmt.Sprintf(`
extensions:
  health_check:
    endpoint: 127.0.0.1:%d
receivers:
  syslog/tcp:
    tcp:
      listen_address: 127.0.0.1:%d
  syslog/udp:
    udp:
      listen_address: 127.0.0.1:%d
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
`, health, sysPort, sysPort, sink.Addr, telemetryYAML(tel)))
	startAgent(t, health, "--config", "../deploy/examples/syslog.yaml", "--config", override)

	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", sysPort), 5*time.Second)
	require.NoError(t, err)
	defer conn.Close()
	msgs := []string{
		// local4.err
		`<163>1 2026-11-26T08:00:00.123Z node-1 payments 4242 CARD [meta@32473 region="eu"] card declined for order 17`,
		"this is not syslog at all",
		// local4.info
		`<166>1 2026-11-26T08:00:01.000Z node-1 cart 77 - - cart updated`,
		// user.warning
		`<12>1 2026-11-26T08:00:02.000Z node-2 inventory - STOCK - stock low for sku-9`,
	}
	for _, m := range msgs {
		_, err := fmt.Fprintf(conn, "%s\n", m)
		require.NoError(t, err)
	}

	type rec struct {
		sev     plog.SeverityNumber
		sevText string
		host    string
	}
	want := map[string]rec{
		"payments":                      {plog.SeverityNumberError, "err", "node-1"},
		"cart":                          {plog.SeverityNumberInfo, "info", "node-1"},
		"inventory":                     {plog.SeverityNumberWarn, "warning", "node-2"},
		"raw:this is not syslog at all": {},
	}
	got := map[string]rec{}
	ok := otlpsink.WaitFor(20*time.Second, func() bool {
		for _, ld := range sink.Logs() {
			for _, rl := range ld.ResourceLogs().All() {
				for _, sl := range rl.ScopeLogs().All() {
					for _, lr := range sl.LogRecords().All() {
						app, _ := lr.Attributes().Get("appname")
						host, _ := lr.Attributes().Get("hostname")
						key := app.Str()
						if key == "" {
							// Unparsed lines are forwarded raw, not dropped.
							key = "raw:" + lr.Body().Str()
						}
						got[key] = rec{lr.SeverityNumber(), lr.SeverityText(), host.Str()}
					}
				}
			}
		}
		return len(got) >= len(want)
	})
	require.True(t, ok, "got %v", got)
	require.Equal(t, want, got)
}
