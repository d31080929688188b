package alertmanagerexporter

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"
	"go.opentelemetry.io/collector/exporter/exportertest"

	"github.com/vigilhq/vigil/exporters/alertmanagerexporter/internal/metadata"
)

func loadConfig(t *testing.T, name string) (*Config, error) {
	t.Helper()
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)
	sub, err := cm.Sub(component.NewIDWithName(metadata.Type, name).String())
	require.NoError(t, err)
	cfg := createDefaultConfig().(*Config)
	if err := sub.Unmarshal(cfg); err != nil {
		return nil, err
	}
	return cfg, confmap.Validate(cfg)
}

func TestMinimalConfig(t *testing.T) {
	cfg, err := loadConfig(t, "")
	require.NoError(t, err)
	want := createDefaultConfig().(*Config)
	want.Endpoint = "http://alertmanager:9093"
	assert.Equal(t, want, cfg)
	assert.Equal(t, 10*time.Second, cfg.Timeout)
	assert.Equal(t, time.Minute, cfg.ResendDelay)
	assert.Equal(t, 15*time.Minute, cfg.ResolvedRetention)
	assert.Equal(t, 256, cfg.MaxBatchSize)
	assert.Equal(t, "http://127.0.0.1:8890/", cfg.GeneratorURL)
}

func TestFullConfig(t *testing.T) {
	cfg, err := loadConfig(t, "full")
	require.NoError(t, err)
	assert.Equal(t, []string{"https://am-0.alertmanager:9093/prefix", "https://am-1.alertmanager:9093/prefix", "https://am-2.alertmanager:9093/prefix"}, cfg.alertmanagers())
	assert.Equal(t, 5*time.Second, cfg.Timeout)
	assert.Equal(t, 30*time.Second, cfg.ResendDelay)
	assert.Equal(t, 5*time.Minute, cfg.ResolvedRetention)
	assert.Equal(t, [3]int{64, 1000, 500}, [3]int{cfg.MaxBatchSize, cfg.QueueSize, cfg.MaxAlerts})
	assert.Equal(t, map[string]string{"cluster": "prod-eu"}, cfg.ExternalLabels)
	assert.Equal(t, "/etc/alertmanager/ca.pem", cfg.TLS.CAFile)
	assert.Equal(t, "vigil", cfg.BasicAuth.Username)
	assert.Equal(t, "/var/run/secrets/am/password", cfg.BasicAuth.PasswordFile)
	org, ok := cfg.Headers.Get("X-Scope-OrgID")
	assert.True(t, ok)
	assert.Equal(t, "team-a", string(org))

	e, err := newExporter(exportertest.NewNopSettings(metadata.Type), cfg)
	require.NoError(t, err)
	assert.Equal(t, "https://am-1.alertmanager:9093/prefix/api/v2/alerts", e.dests[1].fixed.postURL)
	require.NoError(t, e.shutdown(t.Context()))
}

func TestDNSConfig(t *testing.T) {
	cfg, err := loadConfig(t, "operated")
	require.NoError(t, err)
	assert.Equal(t, 10*time.Second, cfg.DNSRefreshInterval)
	assert.Equal(t, 30*time.Second, createDefaultConfig().(*Config).DNSRefreshInterval)

	e, err := newExporter(exportertest.NewNopSettings(metadata.Type), cfg)
	require.NoError(t, err)
	require.Len(t, e.dests, 2)
	a, srv := e.dests[0].dns, e.dests[1].dns
	require.NotNil(t, a)
	require.NotNil(t, srv)
	assert.Equal(t, [3]string{string(lookupA), "alertmanager-operated.monitoring.svc", "9093"}, [3]string{string(a.kind), a.host, a.port})
	assert.Equal(t, [3]string{string(lookupSRV), "_http-web._tcp.alertmanager-operated.monitoring.svc", ""}, [3]string{string(srv.kind), srv.host, srv.port})
	assert.Equal(t, "dns+http://alertmanager-operated.monitoring.svc:9093", e.dests[0].name)
	assert.Equal(t, "dnssrv+https://_http-web._tcp.alertmanager-operated.monitoring.svc/prefix", e.dests[1].name)
	require.NoError(t, e.shutdown(t.Context()))
}

func TestBadConfigNamesEveryKey(t *testing.T) {
	_, err := loadConfig(t, "bad")
	require.Error(t, err)
	for _, want := range []string{
		`endpoint: "alertmanager:9093" must be an http:// or https:// URL`,
		`endpoints[0]: "http://a:9093/api/v2/alerts" must be the Alertmanager's base URL; /api/v2/alerts is appended`,
		`endpoints[1]: "http://b:9093?x=1" must not have a query or fragment`,
		`endpoints[3]: "dns+http://alertmanager-operated" needs a port: dns+ looks up A/AAAA records, which carry none`,
		`endpoints[4]: "dnssrv+http://10.0.0.1:9093" names an IP address: dnssrv+ looks up a DNS name; drop the prefix`,
		`endpoints[5]: "dnsa+http://am:9093" must be an http:// or https:// URL, optionally prefixed with dns+ or dnssrv+`,
		"dns_refresh_interval: 0s must be positive",
		"timeout: 0s must be positive",
		"resend_delay: -1s must be positive",
		"max_batch_size: 0 must be positive",
		"queue_size: -5 must be at least max_batch_size (0)",
		"max_alerts: 0 must be positive",
		`external_labels::k8s.cluster: "k8s.cluster" is not a valid label name`,
		`external_labels::empty: "" must not be empty`,
		`generator_url: "/relative" must be an absolute URL`,
		`basic_auth::username: "" must not be empty`,
		"basic_auth: password/password_file set exactly one of password and password_file",
	} {
		assert.ErrorContains(t, err, want)
	}

	_, err = loadConfig(t, "typo")
	assert.ErrorContains(t, err, "resend_dely")

	cfg := createDefaultConfig().(*Config)
	assert.ErrorContains(t, cfg.Validate(), "endpoint: \"\" must name an Alertmanager")
	cfg.Endpoint = "http://a:9093"
	cfg.Endpoints = []string{"http://a:9093"}
	assert.ErrorContains(t, cfg.Validate(), `endpoints[0]: "http://a:9093" is listed twice`)
}
