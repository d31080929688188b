package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The simulated cascade every assertion below shares: catalog-db (or
// inventory-db, by seed) turns slow a minute in (the detectors judge a rate
// against a history of their own, learned a minute behind the present), for
// 3 minutes; the connector
// fires CascadingFailure about 30-40 s after the fault starts and resolves it
// about a minute after the fault ends. slow-dependency also makes callers time
// out, so the connector learns timeouts and every dashboard panel has data.
const (
	cascadeScenario = "slow-dependency"
	cascadeSeed     = "3"
	faultAfter      = 60 * time.Second
	faultDuration   = 3 * time.Minute
	// The Alertmanager outage: from the fault's start, for two minutes, so
	// the alert fires while it is down.
	outage = 2 * time.Minute
)

// TestRedFlagsWhereUsersLook runs one simulated cascade through vigil and
// checks that it shows up, with the alert contract's labels, everywhere a
// person looks: a real Alertmanager (API v2, the notifier's endsAt, routing by
// severity and inhibition from deploy/alertmanager, the resolution after the
// fault ends), a second one that is down for two minutes during the incident,
// the Alertmanager 0.28 web UI, Prometheus's ALERTS series through remote
// write (going stale on resolution) and on the agent's /metrics, every panel
// query of deploy/grafana's dashboard, and the status page in Chromium.
// About five minutes: the detectors run on receive time, in real time.
func TestRedFlagsWhereUsersLook(t *testing.T) {
	amBin := lookBackend(t, "prometheus-alertmanager", "alertmanager")
	lookBackend(t, "chromium", "chromium-browser")
	uiBin := alertmanagerUIBinary(t)
	artifacts := artifactDir(t)

	grpcPort, healthPort, telPort, promPort, statusPort := freePort(t), freePort(t), freePort(t), freePort(t), freePort(t)
	// Prometheus also scrapes the agent's own telemetry, as the chart's
	// ServiceMonitor does, for the dashboard's health row.
	prom := startPrometheus(t, fmt.Sprintf(`  - job_name: vigil-agent
    static_configs:
      - targets: ["127.0.0.1:%d"]
        labels: {cluster: e2e, namespace: observability, pod: vigil-agent-e2e}
`, telPort))
	hook := newWebhook(t)
	am := startAlertmanager(t, amBin, "alertmanager", deployAlertmanagerConfig(t, hook.srv.URL))
	simple := "route:\n  receiver: none\nreceivers:\n  - name: none\n"
	flaky := startAlertmanager(t, amBin, "alertmanager (outage)", simple)
	amUI := startAlertmanager(t, uiBin, "alertmanager "+alertmanagerUIVersion, simple)

	statusURL := fmt.Sprintf("http://127.0.0.1:%d/", statusPort)
	cfg := writeConfig(t, fmt.Sprintf(`
extensions:
  health_check:
    endpoint: 127.0.0.1:%d
  vigil_status:
    endpoint: 127.0.0.1:%d
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:%d
connectors:
  redflag:
    status: vigil_status
exporters:
  alertmanager:
    endpoint: %s
    endpoints: [%s]
    external_labels: {cluster: e2e}
    generator_url: %s
  alertmanager/outage:
    endpoint: %s
    external_labels: {cluster: e2e}
  prometheus:
    endpoint: 127.0.0.1:%d
    send_timestamps: false
    metric_expiration: 15m
  prometheus_remote_write:
    endpoint: %s/api/v1/write
    external_labels: {cluster: e2e}
service:
  extensions: [health_check, vigil_status]
%s
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [redflag]
    metrics:
      receivers: [otlp]
      exporters: [redflag]
    logs:
      receivers: [otlp]
      exporters: [redflag]
    logs/alerts:
      receivers: [redflag]
      exporters: [alertmanager, alertmanager/outage]
    metrics/alerts:
      receivers: [redflag]
      exporters: [prometheus, prometheus_remote_write]
`, healthPort, statusPort, grpcPort, am.URL, amUI.URL, statusURL, flaky.URL, promPort, prom.URL, telemetryYAML(telPort)))
	agent := startAgent(t, healthPort, "--config", cfg)

	start := time.Now()
	sim := startSimulation(t, grpcPort)
	origin := sim.origin(t)
	faultStart := start.Add(faultAfter)
	faultEnd := faultStart.Add(faultDuration)
	t.Logf("cascade: %s at %s from %s to %s", cascadeScenario, origin, faultStart.Format(time.TimeOnly), faultEnd.Format(time.TimeOnly))

	// The outage starts with the fault.
	time.Sleep(time.Until(faultStart))
	flaky.Down()
	outageEnd := time.Now().Add(outage)

	// 1. Alertmanager receives CascadingFailure with the contract's labels and
	// an endsAt four resends (4 x 1m) ahead.
	cascadeFilter := `alertname="CascadingFailure"`
	var cascade amAlert
	waitFor(t, faultStart.Add(2*time.Minute), "CascadingFailure in Alertmanager", func() bool {
		got, err := am.Alerts(cascadeFilter)
		if err != nil || len(got) == 0 {
			return false
		}
		cascade = got[0]
		return true
	})
	firedSeen := time.Now()
	t.Logf("CascadingFailure in Alertmanager %s after the fault started", firedSeen.Sub(faultStart).Round(time.Second))
	cascadeID := cascade.Labels["cascade_id"]
	assert.Regexp(t, `^[0-9a-f]{12}$`, cascadeID)
	assert.Equal(t, map[string]string{
		"alertname": "CascadingFailure", "severity": "critical", "origin_service": origin,
		"cascade_id": cascadeID, "cluster": "e2e",
	}, cascade.Labels)
	ahead := time.Until(cascade.EndsAt)
	assert.True(t, ahead > 3*time.Minute+30*time.Second && ahead <= 4*time.Minute+5*time.Second, "endsAt %s ahead, want about 4m", ahead)
	assert.True(t, cascade.StartsAt.After(faultStart) && cascade.StartsAt.Before(firedSeen.Add(time.Second)), "startsAt %s", cascade.StartsAt)
	assert.Equal(t, statusURL, cascade.GeneratorURL)
	assert.Contains(t, cascade.Annotations["summary"], origin)
	assert.Equal(t, "active", cascade.Status.State)

	// Routing by severity: the critical cascade pages.
	waitFor(t, time.Now().Add(30*time.Second), "a page for CascadingFailure", func() bool {
		return hook.notified("/page", "CascadingFailure", "firing")
	})
	// Inhibition: symptom alerts the connector attributed to this cascade are
	// muted while it fires.
	var symptom amAlert
	waitFor(t, time.Now().Add(60*time.Second), "a symptom alert of the cascade, inhibited", func() bool {
		got, err := am.Alerts(`cascade_id="` + cascadeID + `"`)
		if err != nil {
			return false
		}
		for _, a := range got {
			if a.Labels["alertname"] != "CascadingFailure" && len(a.Status.InhibitedBy) > 0 {
				symptom = a
				return true
			}
		}
		return false
	})
	assert.Equal(t, "suppressed", symptom.Status.State)
	t.Logf("inhibited: %s{service=%q, callee=%q}", symptom.Labels["alertname"], symptom.Labels["service"], symptom.Labels["callee"])

	// 2. Prometheus, fed by remote write, shows ALERTS firing, in the shape
	// Prometheus writes it (the alert's labels, alertstate; the agent's job
	// and instance and the external label; no OTel scope labels).
	var alertsSeries promSample
	waitFor(t, time.Now().Add(30*time.Second), "ALERTS firing in Prometheus", func() bool {
		got, err := prom.Query(`ALERTS{alertname="CascadingFailure",alertstate="firing"}`)
		if err != nil || len(got) != 1 {
			return false
		}
		alertsSeries = got[0]
		return true
	})
	assert.Equal(t, []string{"__name__", "alertname", "alertstate", "cascade_id", "cluster", "instance", "job", "origin_service", "severity"},
		slices.Sorted(maps.Keys(alertsSeries.Metric)))
	assert.Equal(t, origin, alertsSeries.Metric["origin_service"])
	assert.Equal(t, "1", alertsSeries.Value[1])
	forState, err := prom.Query(`ALERTS_FOR_STATE{alertname="CascadingFailure"}`)
	require.NoError(t, err)
	require.Len(t, forState, 1)
	var activeAt float64
	_, err = fmt.Sscan(forState[0].Value[1].(string), &activeAt)
	require.NoError(t, err)
	assert.True(t, activeAt >= float64(faultStart.Unix()) && activeAt <= float64(cascade.StartsAt.Unix()),
		"ALERTS_FOR_STATE %v: when it became active, between the fault and firing", activeAt)
	_, hasState := forState[0].Metric["alertstate"]
	assert.False(t, hasState)

	// ... and so does the agent's own Prometheus endpoint.
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", promPort)
	cascadeLine := regexp.MustCompile(`(?m)^ALERTS\{alertname="CascadingFailure",alertstate="firing",cascade_id="` + cascadeID + `",[^}]*origin_service="` + regexp.QuoteMeta(origin) + `"[^}]*\} 1$`)
	assert.Regexp(t, cascadeLine, getBody(t, metricsURL))

	// 3. The status page, in a real browser, names the origin and marks its calls.
	dom := chromium(t, statusURL, filepath.Join(artifacts, "status-page.png"), 2*time.Second)
	assert.Regexp(t, `<section class="incident firing" id="incident-`+regexp.QuoteMeta(origin)+`" data-origin="`+regexp.QuoteMeta(origin)+`"`, dom)
	assert.Regexp(t, `<g class="node origin[^"]*" data-service="`+regexp.QuoteMeta(origin)+`" data-origin="true">`, dom)
	assert.Regexp(t, `<g class="edge[^"]* flagged" data-caller="[^"]+" data-callee="`+regexp.QuoteMeta(origin)+`" data-flagged="true">`, dom)
	assert.Contains(t, dom, `data-alertname="CascadingFailure" data-state="firing"`)
	t.Logf("status page screenshot: %s", filepath.Join(artifacts, "status-page.png"))

	// 4. The Alertmanager 0.28 web UI shows the alert.
	uiDom := chromium(t, amUI.URL+"/#/alerts", filepath.Join(artifacts, "alertmanager-ui.png"), 8*time.Second)
	assert.Contains(t, uiDom, `alertname="CascadingFailure"`, "the UI lists the alert")
	assert.Contains(t, uiDom, `origin_service="`+origin+`"`)
	t.Logf("Alertmanager UI screenshot: %s", filepath.Join(artifacts, "alertmanager-ui.png"))

	// 5. The Alertmanager that was down gets the alert once it is back: the
	// next resend (every minute) carries it.
	time.Sleep(time.Until(outageEnd))
	flaky.Up()
	back := time.Now()
	waitFor(t, back.Add(90*time.Second), "CascadingFailure in the Alertmanager after its outage", func() bool {
		got, err := flaky.Alerts(cascadeFilter)
		return err == nil && len(got) == 1 && got[0].Labels["origin_service"] == origin && got[0].EndsAt.After(time.Now())
	})
	t.Logf("after the outage the alert arrived %s after the Alertmanager was back", time.Since(back).Round(time.Second))

	// 6. After the fault ends the alert resolves: Alertmanager gets the
	// resolved alert (it leaves the active list long before the 4-minute
	// endsAt, and the pager hears "resolved"), and the ALERTS series go
	// stale at once instead of lingering for Prometheus's 5-minute lookback.
	waitFor(t, faultEnd.Add(2*time.Minute), "CascadingFailure resolved in Alertmanager", func() bool {
		got, err := am.Alerts(cascadeFilter)
		return err == nil && len(got) == 0
	})
	resolvedSeen := time.Now()
	t.Logf("resolved in Alertmanager %s after the fault ended", resolvedSeen.Sub(faultEnd).Round(time.Second))
	waitFor(t, time.Now().Add(30*time.Second), "the resolution notified", func() bool {
		return hook.notified("/page", "CascadingFailure", "resolved")
	})
	waitFor(t, time.Now().Add(30*time.Second), "ALERTS stale in Prometheus", func() bool {
		got, err := prom.Query(`ALERTS{alertname="CascadingFailure"}`)
		return err == nil && len(got) == 0
	})
	assert.Less(t, time.Since(resolvedSeen), time.Minute, "stale at once, not after the 5-minute lookback")
	last, err := prom.Query(`last_over_time(ALERTS{alertname="CascadingFailure",alertstate="firing"}[10m])`)
	require.NoError(t, err)
	assert.Len(t, last, 1, "the series existed; it ended")
	assert.NotRegexp(t, cascadeLine, getBody(t, metricsURL), "gone from the agent's /metrics")
	waitFor(t, time.Now().Add(70*time.Second), "the resolution in the Alertmanager that was down", func() bool {
		got, err := flaky.Alerts(cascadeFilter)
		return err == nil && len(got) == 0
	})

	// 7. Every panel query of the Grafana dashboard returns data for the
	// time of the cascade.
	checkDashboardQueries(t, prom, start, time.Now())

	// The agent counted what it sent.
	own := getBody(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", telPort))
	assert.Regexp(t, `otelcol_exporter_alertmanager_alerts_sent(_total)?\{alertmanager="`+regexp.QuoteMeta(am.URL)+`",exporter="alertmanager"\} [1-9]`, own)
	assert.Regexp(t, `otelcol_exporter_alertmanager_alerts_failed(_total)?\{alertmanager="`+regexp.QuoteMeta(flaky.URL)+`",exporter="alertmanager/outage"\} [1-9]`, own)
	assert.Regexp(t, `otelcol_extension_vigil_status_publishes(_total)? [1-9]`, own)
	agent.Stop()
}

// simulation is a running `vigil simulate`.
type simulation struct {
	cmd *exec.Cmd
	out *syncBuffer
}

func startSimulation(t *testing.T, grpcPort int) *simulation {
	t.Helper()
	s := &simulation{out: &syncBuffer{}}
	s.cmd = exec.Command(vigilBin, "simulate", "--endpoint", fmt.Sprintf("127.0.0.1:%d", grpcPort),
		"--scenario", cascadeScenario, "--seed", cascadeSeed, "--fault-after", faultAfter.String(),
		"--fault-duration", faultDuration.String(), "--duration", "10m")
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	require.NoError(t, s.cmd.Start())
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("vigil simulate output:\n%s", tail(s.out.String(), 3000))
		}
	})
	return s
}

var originRe = regexp.MustCompile(`\): origin (\S+),`)

// origin returns the fault's origin from the ground-truth line.
func (s *simulation) origin(t *testing.T) string {
	t.Helper()
	var m []string
	waitFor(t, time.Now().Add(20*time.Second), "the simulator's ground truth", func() bool {
		m = originRe.FindStringSubmatch(s.out.String())
		return m != nil
	})
	return m[1]
}

// deployAlertmanagerConfig is deploy/alertmanager/alertmanager.yml with its
// webhook receivers pointed at base and its grouping timers shortened, so
// notifications and resolutions arrive within seconds.
func deployAlertmanagerConfig(t *testing.T, base string) string {
	t.Helper()
	b, err := os.ReadFile("../deploy/alertmanager/alertmanager.yml")
	require.NoError(t, err)
	cfg := string(b)
	for old, repl := range map[string]string{
		"http://127.0.0.1:5001": base, "group_wait: 30s": "group_wait: 1s", "group_interval: 5m": "group_interval: 2s",
	} {
		require.Contains(t, cfg, old, "deploy/alertmanager/alertmanager.yml changed; adapt the test")
		cfg = strings.ReplaceAll(cfg, old, repl)
	}
	return cfg
}

// dashboardQueries returns every PromQL expression of the dashboard: panel
// targets and annotations, by a name for messages.
func dashboardQueries(t *testing.T) (map[string]string, []string) {
	t.Helper()
	b, err := os.ReadFile("../deploy/grafana/vigil-red-flags.json")
	require.NoError(t, err)
	var d struct {
		Panels []struct {
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr  string `json:"expr"`
				RefID string `json:"refId"`
			} `json:"targets"`
		} `json:"panels"`
		Annotations struct {
			List []struct {
				Name string `json:"name"`
				Expr string `json:"expr"`
			} `json:"list"`
		} `json:"annotations"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Type       string `json:"type"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	require.NoError(t, json.Unmarshal(b, &d))
	out := map[string]string{}
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		require.NotEmpty(t, p.Targets, "panel %q has no query", p.Title)
		for _, tg := range p.Targets {
			require.NotEmpty(t, tg.Expr, "panel %q target %s", p.Title, tg.RefID)
			out[p.Title+" / "+tg.RefID] = tg.Expr
		}
	}
	for _, a := range d.Annotations.List {
		out["annotation "+a.Name] = a.Expr
	}
	var vars []string
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			vars = append(vars, v.Definition)
		}
	}
	return out, vars
}

// grafanaVars expands Grafana's variables as a dashboard with "All" selected
// does.
var grafanaVars = strings.NewReplacer("$cluster", ".*", "$namespace", ".*", "$service", ".*",
	"$__rate_interval", "1m", "$__interval", "15s", "$__range", "10m")

var labelValuesRe = regexp.MustCompile(`^label_values\((?:(.+), )?(\w+)\)$`)

func checkDashboardQueries(t *testing.T, prom *promServer, from, to time.Time) {
	t.Helper()
	queries, vars := dashboardQueries(t)
	require.GreaterOrEqual(t, len(queries), 9)
	for _, name := range slices.Sorted(maps.Keys(queries)) {
		expr := grafanaVars.Replace(queries[name])
		n, err := prom.QueryRange(expr, from, to, 15*time.Second)
		// A counter of failures exists once something failed: the health
		// row's failure queries must evaluate, not return data.
		if assert.NoError(t, err, "%s: %s", name, expr) && !strings.Contains(expr, "_failed_") {
			assert.Positive(t, n, "%s returns no data: %s", name, expr)
		}
	}
	// The template variables: cluster and service have values; namespace
	// only where spans carry k8s.namespace.name, so only its query is checked.
	want := map[string]string{"cluster": "e2e", "service": "frontend"}
	for _, def := range vars {
		m := labelValuesRe.FindStringSubmatch(def)
		require.NotNil(t, m, "variable query %q", def)
		values, err := prom.LabelValues(m[2], grafanaVars.Replace(m[1]))
		require.NoError(t, err, def)
		if w, ok := want[m[2]]; ok {
			assert.Contains(t, values, w, def)
		}
	}
}

// QueryRange runs a range query and returns how many series have samples.
func (p *promServer) QueryRange(q string, from, to time.Time, step time.Duration) (int, error) {
	v := url.Values{"query": {q}, "start": {fmt.Sprint(from.Unix())}, "end": {fmt.Sprint(to.Unix())}, "step": {step.String()}}
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Values [][2]any `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := p.getJSON("/api/v1/query_range?"+v.Encode(), &r); err != nil {
		return 0, err
	}
	if r.Status != "success" {
		return 0, fmt.Errorf("%s", r.Error)
	}
	n := 0
	for _, s := range r.Data.Result {
		if len(s.Values) > 0 {
			n++
		}
	}
	return n, nil
}

// LabelValues returns the values of label among series matching match.
func (p *promServer) LabelValues(label, match string) ([]string, error) {
	v := url.Values{}
	if match != "" {
		v.Set("match[]", match)
	}
	var r struct {
		Status string   `json:"status"`
		Error  string   `json:"error"`
		Data   []string `json:"data"`
	}
	if err := p.getJSON("/api/v1/label/"+label+"/values?"+v.Encode(), &r); err != nil {
		return nil, err
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("%s", r.Error)
	}
	return r.Data, nil
}

func (p *promServer) getJSON(path string, into any) error {
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(p.URL + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, into); err != nil {
		return fmt.Errorf("cannot decode %s: %w: %s", path, err, b)
	}
	return nil
}

// TestAlertmanagerExampleConfig checks deploy/alertmanager with amtool, and
// its routing: critical pages, warning goes to chat.
func TestAlertmanagerExampleConfig(t *testing.T) {
	amtool := lookBackend(t, "amtool")
	out, err := exec.Command(amtool, "check-config", "../deploy/alertmanager/alertmanager.yml").CombinedOutput()
	require.NoError(t, err, "%s", out)
	for labels, want := range map[string]string{
		"alertname=CascadingFailure severity=critical origin_service=payments cascade_id=x": "page",
		"alertname=DependencyErrorSpike severity=warning service=checkout callee=payments":  "chat",
		"alertname=ErrorBudgetBurn severity=info service=checkout slo=availability":         "ticket",
	} {
		args := append([]string{"config", "routes", "test", "--config.file=../deploy/alertmanager/alertmanager.yml"}, strings.Fields(labels)...)
		var stderr strings.Builder
		cmd := exec.Command(amtool, args...)
		cmd.Stderr = &stderr // a warning about --alertmanager.url
		out, err := cmd.Output()
		require.NoError(t, err, "%s%s", out, stderr.String())
		assert.Equal(t, want, strings.TrimSpace(string(out)), labels)
	}
}

// TestDashboardIsTemplated checks the dashboard's structure: a datasource
// variable every query uses, and cluster, namespace and service variables
// every edge query filters by.
func TestDashboardIsTemplated(t *testing.T) {
	queries, vars := dashboardQueries(t)
	require.Len(t, vars, 3)
	for name, q := range queries {
		assert.Contains(t, q, `cluster=~"$cluster"`, name)
		if strings.Contains(q, "vigil_edge_") || strings.Contains(q, "vigil_service_") {
			assert.Contains(t, q, `service=~"$service"`, name)
			assert.Contains(t, q, `k8s_namespace_name=~"$namespace"`, name)
		}
	}
	b, err := os.ReadFile("../deploy/grafana/vigil-red-flags.json")
	require.NoError(t, err)
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		if strings.Contains(sc.Text(), `"uid":`) && !strings.Contains(sc.Text(), `"vigil-red-flags"`) {
			assert.Contains(t, sc.Text(), "${datasource}", "every panel reads the chosen datasource")
		}
	}
}

func waitFor(t *testing.T, deadline time.Time, what string, cond func() bool) {
	t.Helper()
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Second)
	}
}

func getBody(t *testing.T, u string) string {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}
