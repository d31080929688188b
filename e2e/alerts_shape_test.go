package e2e

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"
)

// alertShape is one shipped way of exposing the red-flag connector's metrics
// for a scrape: a pipeline from redflag to a prometheus exporter, with its
// processors.
type alertShape struct {
	from       string         // the config and pipeline it was taken from
	job        string         // the scrape job the test gives it
	processors []string       // the pipeline's processor IDs, in order
	procCfg    map[string]any // their configs, by ID
	exporter   map[string]any // the prometheus exporter's config
}

// alertShapes returns every pipeline of cfg that takes the redflag
// connector's metrics to a prometheus exporter.
func alertShapes(t *testing.T, from string, cfg collectorConfig) []alertShape {
	t.Helper()
	pipes := cfg.pipelines()
	var out []alertShape
	for _, name := range slices.Sorted(maps.Keys(pipes)) {
		p := pipes[name]
		if !strings.HasPrefix(name, "metrics") || !slices.Contains(p["receivers"], "redflag") {
			continue
		}
		for _, e := range p["exporters"] {
			if typ, _, _ := strings.Cut(e, "/"); typ != "prometheus" {
				continue
			}
			s := alertShape{from: from + " " + name, processors: p["processors"], procCfg: map[string]any{}, exporter: cfg.section("exporters", e)}
			require.NotNilf(t, s.exporter, "%s: exporter %s", s.from, e)
			for _, id := range s.processors {
				s.procCfg[id] = cfg.section("processors", id)
			}
			out = append(out, s)
		}
	}
	return out
}

// shippedAlertShapes collects the shapes of the chart's agent and gateway
// (rendered with the ci/ value sets default and gateway), of the embedded
// default and agent configs, and of the Alertmanager example.
func shippedAlertShapes(t *testing.T) []alertShape {
	t.Helper()
	sets := valueSets(t)
	var shapes []alertShape
	for _, vs := range []string{"default", "gateway"} {
		rendered, err := renderChart(t, chartDir, "-f", sets[vs])
		require.NoError(t, err)
		m := decodeManifest(t, rendered)
		var names []string
		for _, ds := range all[*appsv1.DaemonSet](m) {
			names = append(names, ds.Name)
		}
		for _, ss := range all[*appsv1.StatefulSet](m) {
			names = append(names, ss.Name)
		}
		for _, n := range names {
			if vs == "gateway" && !strings.Contains(n, "gateway") {
				continue // the agent of this value set is the default's
			}
			_, cfg := configOf(t, m, n)
			shapes = append(shapes, alertShapes(t, "chart "+vs+" "+n, cfg)...)
		}
	}
	for _, file := range []string{"pipeline/configs/default.yaml", "pipeline/configs/agent.yaml", "deploy/examples/alertmanager.yaml"} {
		b, err := os.ReadFile(filepath.Join("..", file))
		require.NoError(t, err)
		var cfg collectorConfig
		require.NoError(t, yaml.Unmarshal(b, &cfg))
		shapes = append(shapes, alertShapes(t, file, cfg)...)
	}
	for i := range shapes {
		shapes[i].job = fmt.Sprintf("vigil-%d", i)
	}
	return shapes
}

// The ALERTS and ALERTS_FOR_STATE series of Vigil, scraped with honor_labels
// from every shipped Prometheus endpoint of the red-flag connector (the
// chart's agent and gateway, the embedded default and agent configs, the
// Alertmanager example), have
// the labels of the series a real Prometheus writes for an alerting rule of
// its own with the same alert labels: __name__, alertname, alertstate (ALERTS
// only), severity and the alert's labels, namespace beside
// k8s_namespace_name. job and instance are the scraper's (the connector's
// resource does not override them), no otel_scope_* label reaches the
// database, and there is no target_info. The per-edge metrics on the same
// endpoints keep the scraper's job and instance too. About 20 s.
func TestAlertSeriesShapedAsPrometheusWritesThem(t *testing.T) {
	shapes := shippedAlertShapes(t)
	require.GreaterOrEqual(t, len(shapes), 5, "the chart's agent and gateway, the embedded default and agent, the example")

	health, grpcPort, tel := freePort(t), freePort(t), freePort(t)
	processors, exporters := map[string]any{}, map[string]any{}
	pipelines := map[string]any{
		"traces":  map[string]any{"receivers": []string{"otlp"}, "exporters": []string{"redflag"}},
		"metrics": map[string]any{"receivers": []string{"otlp"}, "exporters": []string{"redflag"}},
	}
	ports := map[string]int{}
	var scrapes strings.Builder
	for i, s := range shapes {
		t.Logf("%s: %s, processors %v, exporter %v", s.job, s.from, s.processors, s.exporter)
		var procs []string
		for _, id := range s.processors {
			typ, name, _ := strings.Cut(id, "/")
			nid := fmt.Sprintf("%s/s%d%s", typ, i, name)
			processors[nid] = s.procCfg[id]
			procs = append(procs, nid)
		}
		port := freePort(t)
		ports[s.job] = port
		exp := maps.Clone(s.exporter)
		exp["endpoint"] = fmt.Sprintf("127.0.0.1:%d", port)
		exporters[fmt.Sprintf("prometheus/s%d", i)] = exp
		pipelines[fmt.Sprintf("metrics/s%d", i)] = map[string]any{
			"receivers": []string{"redflag"}, "processors": procs, "exporters": []string{fmt.Sprintf("prometheus/s%d", i)},
		}
		// e2e_endpoint finds the endpoint's series even when they override
		// job and instance; it is left out of the comparisons.
		fmt.Fprintf(&scrapes, "  - job_name: %s\n    honor_labels: true\n    static_configs:\n      - targets: [\"127.0.0.1:%d\"]\n"+
			"    metric_relabel_configs:\n      - {target_label: e2e_endpoint, replacement: %s}\n", s.job, port, s.job)
	}
	cfg, err := yaml.Marshal(map[string]any{
		"extensions": map[string]any{"health_check": map[string]any{"endpoint": fmt.Sprintf("127.0.0.1:%d", health)}},
		"receivers":  map[string]any{"otlp": map[string]any{"protocols": map[string]any{"grpc": map[string]any{"endpoint": fmt.Sprintf("127.0.0.1:%d", grpcPort)}}}},
		// Saturation goes pending on the first hot sample and fires 3 s later.
		"connectors": map[string]any{"redflag": map[string]any{"evaluation_interval": "1s", "saturation": map[string]any{"for": "3s"}}},
		"processors": processors,
		"exporters":  exporters,
		"service": map[string]any{
			"extensions": []string{"health_check"},
			"telemetry": map[string]any{"metrics": map[string]any{"readers": []any{map[string]any{
				"pull": map[string]any{"exporter": map[string]any{"prometheus": map[string]any{"host": "127.0.0.1", "port": tel}}},
			}}}},
			"pipelines": pipelines,
		},
	})
	require.NoError(t, err)

	// Prometheus's own alert with the labels Vigil's Saturation alert has.
	rules := filepath.Join(t.TempDir(), "rules.yml")
	require.NoError(t, os.WriteFile(rules, []byte(`groups:
  - name: reference
    interval: 1s
    rules:
      - alert: Saturation
        expr: vector(1)
        for: 2s
        labels: {severity: warning, service: reference, resource: cpu, k8s_namespace_name: shop, namespace: shop}
`), 0o600))
	prom := startPrometheus(t, scrapes.String(), rules)
	startAgent(t, health, "--config", writeConfig(t, string(cfg)))

	// checkout in namespace shop: a CPU limit nearly used up, and calls to
	// payments (the edge metrics), every second until the test ends.
	conn, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", grpcPort), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	stop, sent := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sent)
		mc, tc := pmetricotlp.NewGRPCClient(conn), ptraceotlp.NewGRPCClient(conn)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for range 120 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, _ = mc.Export(ctx, pmetricotlp.NewExportRequestFromMetrics(hotCPU()))
			_, _ = tc.Export(ctx, ptraceotlp.NewExportRequestFromTraces(checkoutCalls(10)))
			cancel()
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-sent })

	without := func(l []string, drop ...string) []string {
		return slices.DeleteFunc(slices.Clone(l), func(n string) bool { return slices.Contains(drop, n) })
	}
	names := func(s promSample) []string { return without(slices.Sorted(maps.Keys(s.Metric)), "e2e_endpoint") }
	one := func(q string) (promSample, error) {
		res, err := prom.Query(q)
		if err != nil {
			return promSample{}, err
		}
		if len(res) != 1 {
			return promSample{}, fmt.Errorf("%s: %d series %v, want 1", q, len(res), res)
		}
		return res[0], nil
	}

	// Everything in place: both alerts firing, their ALERTS_FOR_STATE, the
	// edge metrics from every endpoint.
	queries := []string{
		`ALERTS{service="reference",alertstate="firing"}`,
		`ALERTS_FOR_STATE{service="reference"}`,
	}
	for _, s := range shapes {
		queries = append(queries,
			fmt.Sprintf(`ALERTS{e2e_endpoint=%q,alertname="Saturation",service="checkout",alertstate="firing"}`, s.job),
			fmt.Sprintf(`ALERTS_FOR_STATE{e2e_endpoint=%q,alertname="Saturation",service="checkout"}`, s.job),
			fmt.Sprintf(`vigil_edge_calls_total{e2e_endpoint=%q,service="checkout",callee="payments"}`, s.job))
	}
	got := map[string]promSample{}
	var last error
	deadline := time.Now().Add(60 * time.Second)
	for len(got) < len(queries) && time.Now().Before(deadline) {
		for _, q := range queries {
			if _, ok := got[q]; ok {
				continue
			}
			if s, err := one(q); err != nil {
				last = err
			} else {
				got[q] = s
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	require.Lenf(t, got, len(queries), "not every series arrived in 60 s; last: %v", last)

	ref, refFor := got[queries[0]], got[queries[1]]
	t.Logf("Prometheus's own: %v, %v", ref.Metric, refFor.Metric)
	assert.Equal(t, []string{"__name__", "alertname", "alertstate", "k8s_namespace_name", "namespace", "resource", "service", "severity"}, names(ref),
		"the reference: the rule's labels, alertname and alertstate, nothing else")
	assert.Equal(t, without(names(ref), "alertstate"), names(refFor))
	for i, s := range shapes {
		alerts, forState, edge := got[queries[2+3*i]], got[queries[3+3*i]], got[queries[4+3*i]]
		target := fmt.Sprintf("127.0.0.1:%d", ports[s.job])
		t.Logf("%s (%s): %v", s.job, s.from, alerts.Metric)
		for _, c := range []struct {
			what      string
			got, want promSample
		}{{"ALERTS", alerts, ref}, {"ALERTS_FOR_STATE", forState, refFor}} {
			// The scrape adds job and instance, as to every series it takes;
			// the rest is what Prometheus writes for its own alert.
			assert.Equalf(t, names(c.want), without(names(c.got), "job", "instance"), "%s %s: labels", s.from, c.what)
			assert.Equalf(t, s.job, c.got.Metric["job"], "%s %s: job is the scraper's", s.from, c.what)
			assert.Equalf(t, target, c.got.Metric["instance"], "%s %s: instance is the scraper's", s.from, c.what)
			assert.Equalf(t, "shop", c.got.Metric["namespace"], "%s %s", s.from, c.what)
			assert.Equalf(t, "shop", c.got.Metric["k8s_namespace_name"], "%s %s", s.from, c.what)
		}
		assert.Equalf(t, "1", alerts.Value[1], s.from)
		var activeAt float64
		_, err := fmt.Sscan(forState.Value[1].(string), &activeAt)
		require.NoError(t, err)
		assert.InDeltaf(t, float64(time.Now().Unix()), activeAt, 90, "%s: ALERTS_FOR_STATE is when the alert became active", s.from)

		// The edge metrics on the same endpoint: the scraper's job and
		// instance, and the scope labels only where the exporter keeps them.
		assert.Equalf(t, s.job, edge.Metric["job"], "%s edge metrics: job", s.from)
		assert.Equalf(t, target, edge.Metric["instance"], "%s edge metrics: instance", s.from)
		edgeLabels := []string{"__name__", "callee", "instance", "job", "k8s_namespace_name", "service"}
		if s.exporter["without_scope_info"] != true {
			edgeLabels = append(edgeLabels, "otel_scope_name") // version and schema URL are empty
			slices.Sort(edgeLabels)
		}
		assert.Equalf(t, edgeLabels, names(edge), "%s edge metrics: labels", s.from)

		// The exposition itself: no job, instance or target_info from the
		// connector's resource; no scope labels where the exporter drops them.
		for _, line := range strings.Split(getBody(t, fmt.Sprintf("http://%s/metrics", target)), "\n") {
			assert.Falsef(t, strings.HasPrefix(line, "target_info"), "%s: %s", s.from, line)
			if !strings.HasPrefix(line, "ALERTS") {
				continue
			}
			assert.NotContainsf(t, line, `job="`, "%s: %s", s.from, line)
			assert.NotContainsf(t, line, `instance="`, "%s: %s", s.from, line)
			if s.exporter["without_scope_info"] == true {
				assert.NotContainsf(t, line, "otel_scope_", "%s: %s", s.from, line)
			}
		}
	}
	ti, err := prom.Query(`target_info`)
	require.NoError(t, err)
	assert.Empty(t, ti, "no target_info from any endpoint")
	scoped, err := prom.Query(`{__name__=~"ALERTS|ALERTS_FOR_STATE",otel_scope_name=~".+"}`)
	require.NoError(t, err)
	assert.Empty(t, scoped, "no alert series with a scope label")
}

// hotCPU is checkout's container at 97% of its CPU limit.
func hotCPU() pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "checkout")
	rm.Resource().Attributes().PutStr("service.instance.id", "checkout-7d9f-1")
	rm.Resource().Attributes().PutStr("k8s.namespace.name", "shop")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("k8s.container.cpu_limit_utilization")
	dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
	dp.SetTimestamp(pcommon.NewTimestampFromTime(time.Now()))
	dp.SetDoubleValue(0.97)
	return md
}

// checkoutCalls is n successful calls from checkout to payments.
func checkoutCalls(n int) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "checkout")
	rs.Resource().Attributes().PutStr("k8s.namespace.name", "shop")
	spans := rs.ScopeSpans().AppendEmpty().Spans()
	now := time.Now()
	for i := range n {
		sp := spans.AppendEmpty()
		sp.SetTraceID(pcommon.TraceID([16]byte{1, byte(now.Unix()), byte(now.Unix() >> 8), byte(i)}))
		sp.SetSpanID(pcommon.SpanID([8]byte{2, byte(now.Unix()), byte(i)}))
		sp.SetName("POST /pay")
		sp.SetKind(ptrace.SpanKindClient)
		sp.Attributes().PutStr("server.address", "payments")
		sp.Attributes().PutInt("http.response.status_code", 200)
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now.Add(-20 * time.Millisecond)))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now))
	}
	return td
}
