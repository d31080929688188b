package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

// TestHelmPrometheusRuleFires loads the chart's PrometheusRule (for: 0s) into
// a real Prometheus that scrapes a real vigil's telemetry, labelled as the
// Prometheus Operator labels a pod's target, while that vigil's backend
// accepts connections and never answers and its red-flag connector may
// track two edges only. Each health alert a user relies on must fire, naming
// the pod and the component.
func TestHelmPrometheusRuleFires(t *testing.T) {
	rendered, err := renderChart(t, chartDir, "--set", "prometheusRule.enabled=true", "--set", "prometheusRule.for=0s")
	require.NoError(t, err)
	rules := all[*monitoringv1.PrometheusRule](decodeManifest(t, rendered))
	require.Len(t, rules, 1)
	ruleFile := filepath.Join(t.TempDir(), "vigil.rules.yaml")
	b, err := yaml.Marshal(map[string]any{"groups": rules[0].Spec.Groups})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(ruleFile, b, 0o600))
	if promtool, err := exec.LookPath("promtool"); err == nil {
		out, err := exec.Command(promtool, "check", "rules", ruleFile).CombinedOutput()
		require.NoError(t, err, "promtool check rules:\n%s", out)
	}

	// The backend: TCP accepted, nothing ever answered. Every export hangs
	// to its timeout, so the one-slot queue stays full and the rest is
	// refused back to the receiver.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		var held []net.Conn
		for {
			c, err := ln.Accept()
			if err != nil {
				for _, c := range held {
					c.Close()
				}
				return
			}
			held = append(held, c)
		}
	}()
	grpcPort, telPort, health := freePort(t), freePort(t), freePort(t)
	startAgent(t, health, "--config", writeConfig(t, fmt.Sprintf(`
receivers:
  otlp:
    protocols:
      grpc: {endpoint: 127.0.0.1:%d}
connectors:
  redflag: {max_edges: 2}
exporters:
  otlp_grpc:
    endpoint: %s
    tls: {insecure: true}
    timeout: 2s
    retry_on_failure: {enabled: false}
    sending_queue: {enabled: true, num_consumers: 1, queue_size: 1, sizer: requests}
extensions:
  health_check: {endpoint: 127.0.0.1:%d}
service:
  extensions: [health_check]
  telemetry:
    metrics:
      readers:
        - pull: {exporter: {prometheus: {host: 127.0.0.1, port: %d}}}
  pipelines:
    traces/in: {receivers: [otlp], exporters: [redflag, otlp_grpc]}
    metrics/in: {receivers: [otlp], exporters: [otlp_grpc]}
    logs/in: {receivers: [otlp], exporters: [otlp_grpc]}
    metrics/flags: {receivers: [redflag], exporters: [otlp_grpc]}
`, grpcPort, ln.Addr(), health, telPort)))

	// The labels the Prometheus Operator gives a pod's target.
	prom := startPrometheus(t, fmt.Sprintf(`  - job_name: vigil-agent
    static_configs:
      - targets: ["127.0.0.1:%d"]
        labels: {namespace: %q, pod: vigil-agent-x7k2p}
`, telPort, chartNamespace), ruleFile)

	sim := exec.Command(vigilBin, "simulate", "--endpoint", fmt.Sprintf("127.0.0.1:%d", grpcPort), "--duration", "10m")
	require.NoError(t, sim.Start())
	t.Cleanup(func() { _ = sim.Process.Kill(); _ = sim.Wait() })

	want := map[string]string{
		"VigilReceiverRefusing":     "receiver",
		"VigilExporterSendFailing":  "exporter",
		"VigilExporterDropping":     "exporter",
		"VigilSendingQueueFilling":  "exporter",
		"VigilRedFlagEdgesOverflow": "",
	}
	var firing map[string]map[string]string
	waitFor(t, time.Now().Add(2*time.Minute), "every health alert firing in Prometheus", func() bool {
		got, err := prom.Query(`ALERTS{alertstate="firing"}`)
		if err != nil {
			return false
		}
		firing = map[string]map[string]string{}
		for _, s := range got {
			firing[s.Metric["alertname"]] = s.Metric
		}
		for name := range want {
			if firing[name] == nil {
				return false
			}
		}
		return true
	})
	for name, component := range want {
		l := firing[name]
		require.Equalf(t, "vigil-agent-x7k2p", l["pod"], "%s: %v", name, l)
		require.Equalf(t, chartNamespace, l["namespace"], "%s: %v", name, l)
		require.NotEmptyf(t, l["severity"], "%s: %v", name, l)
		if component != "" {
			require.NotEmptyf(t, l[component], "%s names no %s: %v", name, component, l)
		}
	}
	require.Equal(t, "otlp_grpc", firing["VigilExporterDropping"]["exporter"])
	// Every rule evaluates without error, with all three signals failing at
	// once (rate() over several metric names with one label set would not).
	var rulesResp struct {
		Data struct {
			Groups []struct {
				Rules []struct {
					Name      string `json:"name"`
					Health    string `json:"health"`
					LastError string `json:"lastError"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	require.NoError(t, prom.getJSON("/api/v1/rules", &rulesResp))
	require.NotEmpty(t, rulesResp.Data.Groups)
	for _, g := range rulesResp.Data.Groups {
		for _, r := range g.Rules {
			require.Equalf(t, "ok", r.Health, "rule %s: %s", r.Name, r.LastError)
		}
	}
	require.Equal(t, "otlp", firing["VigilReceiverRefusing"]["receiver"])

	// VigilAlertmanagerDeliveryFailing needs a red flag to deliver, which
	// takes minutes to raise (TestRedFlagsWhereUsersLook has one): here its
	// metric must be one the exporter declares.
	var amRule string
	for _, g := range rules[0].Spec.Groups {
		for _, r := range g.Rules {
			if r.Alert == "VigilAlertmanagerDeliveryFailing" {
				amRule = r.Expr.String()
			}
		}
	}
	require.Contains(t, amRule, "otelcol_exporter_alertmanager_alerts_failed")
	doc, err := os.ReadFile("../exporters/alertmanagerexporter/documentation.md")
	require.NoError(t, err)
	require.True(t, strings.Contains(string(doc), "### otelcol_exporter_alertmanager_alerts_failed\n"))
}
