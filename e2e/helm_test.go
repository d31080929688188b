package e2e

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

// The Helm chart in deploy/helm/vigil, rendered with the value sets in its
// ci/ folder (the chart-testing convention) and checked the way a cluster and
// the agent would: `helm lint --strict`, every manifest decoded strictly into
// the Kubernetes API types, invariants a user relies on (hardening, the
// red-flag connector first, node-local metadata, routing by trace ID), and
// every collector config through `vigil validate`. The same renders go to a
// real kube-apiserver in kube_test.go (make test-kube).

const (
	chartDir = "../deploy/helm/vigil"
	// kubeVersion is the API server the chart is rendered for (and the one
	// make test-kube builds); minKubeVersion is the chart's kubeVersion floor.
	kubeVersion    = "1.37.2"
	minKubeVersion = "1.26.0"
	chartNamespace = "observability"
	chartRelease   = "vigil"
	// chartImage is the image.repository every test render sets: the chart
	// has no default (no image is published) and refuses to render without one.
	chartImage = "registry.example/vigil"
)

// helmBin finds helm: HELM_BIN (make test sets it), the repository's cache
// (make helm), then PATH. Without helm the chart tests fail: they are part of
// make test, not optional.
func helmBin(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("HELM_BIN"); p != "" {
		return p
	}
	if ps, _ := filepath.Glob("../.cache/bin/helm-v*"); len(ps) > 0 {
		if p, err := filepath.Abs(ps[len(ps)-1]); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("helm"); err == nil {
		return p
	}
	t.Fatal("helm not found: run `make helm` (builds helm v3.19.5 into .cache/bin) or set HELM_BIN")
	return ""
}

// valueSets are the chart's ci/*-values.yaml files, by short name.
func valueSets(t testing.TB) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(chartDir, "ci", "*-values.yaml"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 4, "the chart's ci/ value sets")
	sets := map[string]string{}
	for _, f := range files {
		sets[strings.TrimSuffix(filepath.Base(f), "-values.yaml")] = f
	}
	for _, want := range []string{"default", "gateway", "exporters"} {
		require.Contains(t, sets, want)
	}
	return sets
}

// helm runs helm with args and returns stdout, or an error carrying stderr.
func helm(t testing.TB, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(helmBin(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return stdout.String(), fmt.Errorf("helm %s: %w\n%s%s", strings.Join(args, " "), err, stderr.String(), stdout.String())
		}
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("helm %s: still running after 2m", strings.Join(args, " "))
	}
	return stdout.String(), nil
}

// renderChart runs helm template for the release and namespace the tests use;
// args add values (-f FILE, --set k=v).
func renderChart(t testing.TB, dir string, args ...string) (string, error) {
	t.Helper()
	base := []string{"template", chartRelease, dir, "--namespace", chartNamespace, "--kube-version", kubeVersion, "--set", "image.repository=" + chartImage}
	return helm(t, append(base, args...)...)
}

// manifest is the decoded output of one render.
type manifest struct {
	objects []runtime.Object
	docs    [][]byte // the YAML of each object, in order
}

// strictDecoder decodes YAML into the Kubernetes API types (and the Prometheus
// Operator's), failing on unknown or duplicate fields and unknown kinds.
func strictDecoder(t testing.TB) runtime.Decoder {
	t.Helper()
	sch := runtime.NewScheme()
	require.NoError(t, clientgoscheme.AddToScheme(sch))
	require.NoError(t, monitoringv1.AddToScheme(sch))
	return json.NewSerializerWithOptions(json.DefaultMetaFactory, sch, sch, json.SerializerOptions{Yaml: true, Strict: true})
}

// decodeManifest splits a render into documents and decodes each strictly.
func decodeManifest(t testing.TB, rendered string) manifest {
	t.Helper()
	dec := strictDecoder(t)
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(rendered)))
	var m manifest
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		if isEmptyYAML(doc) {
			continue
		}
		obj, gvk, err := dec.Decode(doc, nil, nil)
		require.NoErrorf(t, err, "strict decode of:\n%s", doc)
		require.NotEmpty(t, gvk.Kind)
		m.objects = append(m.objects, obj)
		m.docs = append(m.docs, doc)
	}
	require.NotEmpty(t, m.objects, "the render is empty")
	return m
}

func isEmptyYAML(doc []byte) bool {
	for _, line := range strings.Split(string(doc), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && line != "---" && !strings.HasPrefix(line, "#") {
			return false
		}
	}
	return true
}

// all returns the objects of type T.
func all[T runtime.Object](m manifest) []T {
	var out []T
	for _, o := range m.objects {
		if v, ok := o.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// one returns the only object of type T with the given name.
func one[T interface {
	runtime.Object
	GetName() string
}](t testing.TB, m manifest, name string) T {
	t.Helper()
	for _, o := range all[T](m) {
		if o.GetName() == name {
			return o
		}
	}
	var zero T
	t.Fatalf("no %T named %q in the render", zero, name)
	return zero
}

func kinds(m manifest) []string {
	var ks []string
	for _, o := range m.objects {
		ks = append(ks, fmt.Sprintf("%T", o))
	}
	slices.Sort(ks)
	return slices.Compact(ks)
}

// collectorConfig is a rendered vigil config, parsed.
type collectorConfig map[string]any

func (c collectorConfig) section(path ...string) map[string]any {
	var cur any = map[string]any(c)
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	m, _ := cur.(map[string]any)
	return m
}

func (c collectorConfig) pipelines() map[string]map[string][]string {
	out := map[string]map[string][]string{}
	for name, p := range c.section("service", "pipelines") {
		pm := map[string][]string{}
		for _, k := range []string{"receivers", "processors", "exporters"} {
			if l, ok := p.(map[string]any)[k].([]any); ok {
				for _, v := range l {
					pm[k] = append(pm[k], v.(string))
				}
			}
		}
		out[name] = pm
	}
	return out
}

// configOf returns the collector config held by ConfigMap name, raw and parsed.
func configOf(t testing.TB, m manifest, name string) (string, collectorConfig) {
	t.Helper()
	cm := one[*corev1.ConfigMap](t, m, name)
	raw, ok := cm.Data["config.yaml"]
	require.Truef(t, ok, "ConfigMap %s has no config.yaml", name)
	var cfg collectorConfig
	require.NoError(t, yaml.Unmarshal([]byte(raw), &cfg))
	return raw, cfg
}

func TestHelmLintStrict(t *testing.T) {
	for name, file := range valueSets(t) {
		for _, kv := range []string{minKubeVersion, kubeVersion} {
			t.Run(name+"/"+kv, func(t *testing.T) {
				out, err := helm(t, "lint", "--strict", "--kube-version", kv, "--set", "image.repository="+chartImage, "-f", file, chartDir)
				require.NoError(t, err)
				require.Contains(t, out, "0 chart(s) failed")
			})
		}
	}
	t.Run("below kubeVersion", func(t *testing.T) {
		_, err := helm(t, "template", chartRelease, chartDir, "--kube-version", "1.25.0")
		require.ErrorContains(t, err, "kubeVersion")
	})
}

// Every value set renders into objects the API types accept strictly, with
// the properties a user of the chart relies on.
func TestHelmRenderedManifests(t *testing.T) {
	for name, file := range valueSets(t) {
		t.Run(name, func(t *testing.T) {
			rendered, err := renderChart(t, chartDir, "-f", file)
			require.NoError(t, err)
			m := decodeManifest(t, rendered)
			t.Logf("%d objects: %s", len(m.objects), strings.Join(kinds(m), " "))
			checkWorkloads(t, m)
			checkAgent(t, m)
			checkGateway(t, m)
			checkMonitors(t, m)
		})
	}
}

// checkWorkloads: hardening, probes on health_check, the config mounted from
// a ConfigMap whose content the checksum annotation follows, listeners on the
// pod address.
func checkWorkloads(t *testing.T, m manifest) {
	type workload struct {
		name, cm string
		tmpl     corev1.PodTemplateSpec
	}
	var ws []workload
	for _, ds := range all[*appsv1.DaemonSet](m) {
		ws = append(ws, workload{ds.Name, ds.Name, ds.Spec.Template})
	}
	for _, ss := range all[*appsv1.StatefulSet](m) {
		ws = append(ws, workload{ss.Name, ss.Name, ss.Spec.Template})
	}
	require.NotEmpty(t, ws)
	require.Empty(t, all[*appsv1.Deployment](m))
	for _, w := range ws {
		pod := w.tmpl.Spec
		psc := pod.SecurityContext
		require.NotNilf(t, psc, "%s: pod securityContext", w.name)
		require.Truef(t, psc.RunAsNonRoot != nil && *psc.RunAsNonRoot, "%s: pod runAsNonRoot", w.name)
		require.Truef(t, psc.RunAsUser != nil && *psc.RunAsUser != 0, "%s: pod runAsUser non-zero", w.name)
		require.Equalf(t, corev1.SeccompProfileTypeRuntimeDefault, psc.SeccompProfile.Type, "%s: seccomp", w.name)

		require.Lenf(t, pod.Containers, 1, "%s: one container", w.name)
		c := pod.Containers[0]
		sc := c.SecurityContext
		require.NotNilf(t, sc, "%s: container securityContext", w.name)
		assert.Truef(t, sc.RunAsNonRoot != nil && *sc.RunAsNonRoot, "%s: runAsNonRoot", w.name)
		assert.Truef(t, sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem, "%s: readOnlyRootFilesystem", w.name)
		assert.Truef(t, sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation, "%s: allowPrivilegeEscalation", w.name)
		assert.Truef(t, sc.Privileged != nil && !*sc.Privileged, "%s: privileged", w.name)
		require.NotNilf(t, sc.Capabilities, "%s: capabilities", w.name)
		assert.Equalf(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop, "%s: drop ALL", w.name)
		assert.Emptyf(t, sc.Capabilities.Add, "%s: no capability added", w.name)
		assert.Equalf(t, corev1.SeccompProfileTypeRuntimeDefault, sc.SeccompProfile.Type, "%s: container seccomp", w.name)
		assert.Falsef(t, c.Resources.Limits.Memory().IsZero(), "%s: memory limit (memory_limiter works in %% of it)", w.name)
		// GOMEMLIMIT is 80% of that limit, in bytes, as the Go runtime reads it.
		var gomemlimit string
		for _, e := range c.Env {
			if e.Name == "GOMEMLIMIT" {
				gomemlimit = e.Value
			}
		}
		assert.Equalf(t, strconv.FormatInt(c.Resources.Limits.Memory().Value()*80/100, 10), gomemlimit, "%s: GOMEMLIMIT", w.name)
		assert.Falsef(t, c.Resources.Requests.Cpu().IsZero(), "%s: cpu request", w.name)

		// Init containers (the agent's hostPath chown) get CHOWN and nothing else.
		for _, ic := range pod.InitContainers {
			isc := ic.SecurityContext
			require.NotNil(t, isc)
			assert.Equal(t, []corev1.Capability{"ALL"}, isc.Capabilities.Drop, ic.Name)
			assert.Equal(t, []corev1.Capability{"CHOWN"}, isc.Capabilities.Add, ic.Name)
			assert.True(t, *isc.ReadOnlyRootFilesystem && !*isc.AllowPrivilegeEscalation, ic.Name)
		}

		ports := map[string]int32{}
		for _, p := range c.Ports {
			ports[p.Name] = p.ContainerPort
		}
		for _, probe := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe} {
			require.NotNilf(t, probe, "%s: liveness and readiness probes", w.name)
			require.NotNil(t, probe.HTTPGet)
			assert.Equal(t, "health", probe.HTTPGet.Port.String())
		}

		// The config: mounted from the ConfigMap the checksum annotation hashes.
		raw, cfg := configOf(t, m, w.cm)
		sum := sha256.Sum256([]byte(raw))
		assert.Equalf(t, hex.EncodeToString(sum[:]), w.tmpl.Annotations["checksum/config"], "%s: checksum/config is the sha256 of the config it mounts", w.name)
		var cmVolume string
		for _, v := range pod.Volumes {
			if v.ConfigMap != nil && v.ConfigMap.Name == w.cm {
				cmVolume = v.Name
			}
		}
		require.NotEmptyf(t, cmVolume, "%s: mounts ConfigMap %s", w.name, w.cm)
		var mounted bool
		for _, vm := range c.VolumeMounts {
			if vm.Name == cmVolume && vm.MountPath+"/config.yaml" == strings.TrimPrefix(c.Args[0], "--config=") {
				mounted = true
			}
		}
		assert.Truef(t, mounted, "%s: --config points into the mounted ConfigMap (args %v)", w.name, c.Args)

		// Listeners bind the pod address (never the binary's 127.0.0.1 default)
		// on the ports the container declares and the probes use.
		env := map[string]string{}
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
				env[e.Name] = e.ValueFrom.FieldRef.FieldPath
			}
		}
		listeners := map[string]string{
			"health":    str(cfg.section("extensions", "health_check")["endpoint"]),
			"otlp-grpc": str(cfg.section("receivers", "otlp", "protocols", "grpc")["endpoint"]),
			"otlp-http": str(cfg.section("receivers", "otlp", "protocols", "http")["endpoint"]),
		}
		if a := cfg.section("exporters", "prometheus/alerts"); a != nil {
			listeners["alerts"] = str(a["endpoint"])
		}
		for port, ep := range listeners {
			i := strings.LastIndexByte(ep, ':')
			require.Positivef(t, i, "%s: %s endpoint %q", w.name, port, ep)
			host, p := ep[:i], ep[i+1:]
			assert.Containsf(t, []string{"${env:MY_POD_IP}", "0.0.0.0"}, host, "%s: %s binds %q: unreachable from outside the pod", w.name, port, host)
			if host == "${env:MY_POD_IP}" {
				assert.Equal(t, "status.podIP", env["MY_POD_IP"], w.name)
			}
			assert.Equalf(t, p, strconv.Itoa(int(ports[port])), "%s: %s listens on %s, the container declares %d", w.name, port, p, ports[port])
		}
		tel := cfg.section("service", "telemetry", "metrics")["readers"].([]any)[0].(map[string]any)
		prom := tel["pull"].(map[string]any)["exporter"].(map[string]any)["prometheus"].(map[string]any)
		assert.Equal(t, strconv.Itoa(int(ports["telemetry"])), fmt.Sprint(prom["port"]), w.name)

		// The ServiceAccount it runs as is part of the release.
		one[*corev1.ServiceAccount](t, m, pod.ServiceAccountName)
	}
}

// checkAgent: the node agent's DaemonSet and config.
func checkAgent(t *testing.T, m manifest) {
	dss := all[*appsv1.DaemonSet](m)
	require.Len(t, dss, 1)
	ds := dss[0]
	pod := ds.Spec.Template.Spec
	c := pod.Containers[0]
	_, cfg := configOf(t, m, ds.Name)
	pipes := cfg.pipelines()

	// Every node, tainted ones too, at a priority of its own.
	assert.Contains(t, pod.Tolerations, corev1.Toleration{Operator: corev1.TolerationOpExists})
	require.NotEmpty(t, pod.PriorityClassName)
	if pcs := all[*schedulingv1.PriorityClass](m); len(pcs) > 0 {
		assert.Equal(t, pcs[0].Name, pod.PriorityClassName)
	}

	env := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			env[e.Name] = e.ValueFrom.FieldRef.FieldPath
		}
	}
	assert.Equal(t, "spec.nodeName", env["K8S_NODE_NAME"])

	// The red-flag connector sees all telemetry first: every receiver that
	// takes data from outside feeds only */in pipelines, where memory_limiter
	// is the one processor and redflag the first exporter.
	external := map[string]bool{"otlp": true, "container_log": true, "prometheus": true, "host_metrics": true, "kubelet_stats": true}
	var ins int
	for name, p := range pipes {
		for _, r := range p["receivers"] {
			if external[r] {
				assert.Truef(t, strings.HasSuffix(name, "/in"), "receiver %s feeds pipeline %s, which does not start with redflag", r, name)
			}
		}
		if strings.HasSuffix(name, "/in") {
			ins++
			assert.Equal(t, []string{"memory_limiter"}, p["processors"], name)
			require.NotEmpty(t, p["exporters"], name)
			assert.Equal(t, "redflag", p["exporters"][0], name)
		}
	}
	assert.Equal(t, 3, ins, "traces/in, metrics/in, logs/in")

	// The status page: the extension runs, the connector publishes to it, and
	// its port is a named container port (kubectl port-forward reaches it).
	// Every value set keeps statusPage on.
	if st := cfg.section("extensions", "vigil_status"); assert.NotNil(t, st, "the status page extension") {
		assert.Contains(t, cfg.section("service")["extensions"], "vigil_status")
		assert.Equal(t, "vigil_status", cfg.section("connectors", "redflag")["status"])
		ep := st["endpoint"].(string)
		port := ep[strings.LastIndexByte(ep, ':')+1:]
		var named bool
		for _, p := range c.Ports {
			named = named || p.Name == "status" && strconv.Itoa(int(p.ContainerPort)) == port
		}
		assert.True(t, named, "the status page's port %s is the container port named status", port)
	}

	if k8s := cfg.section("processors", "k8s_attributes"); k8s != nil {
		assert.Equal(t, "K8S_NODE_NAME", cfg.section("processors", "k8s_attributes", "filter")["node_from_env_var"], "k8s_attributes caches only its node's pods")
		assert.Equal(t, "serviceAccount", k8s["auth_type"])
	}
	if prom := cfg.section("receivers", "prometheus"); prom != nil {
		sd := prom["config"].(map[string]any)["scrape_configs"].([]any)[0].(map[string]any)["kubernetes_sd_configs"].([]any)[0].(map[string]any)
		sel := sd["selectors"].([]any)[0].(map[string]any)
		assert.Equal(t, "spec.nodeName=${env:K8S_NODE_NAME}", sel["field"], "kubernetes_sd finds only this node's pods")
	}

	mounts := map[string]corev1.VolumeMount{}
	for _, vm := range c.VolumeMounts {
		mounts[vm.MountPath] = vm
	}
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		vols[v.Name] = v
	}
	if fl := cfg.section("receivers", "container_log"); fl != nil {
		vm, ok := mounts["/var/log/pods"]
		require.True(t, ok, "container_log reads /var/log/pods: mounted")
		assert.True(t, vm.ReadOnly, "/var/log/pods is mounted read-only")
		require.NotNil(t, vols[vm.Name].HostPath)
		assert.Equal(t, "/var/log/pods", vols[vm.Name].HostPath.Path)
		assert.Equal(t, "file_storage", fl["storage"], "log offsets are checkpointed")
		assert.Contains(t, pod.SecurityContext.SupplementalGroups, int64(0), "root-group-readable log files")
		var excludesSelf bool
		for _, e := range fl["exclude"].([]any) {
			if ok, _ := filepath.Match(e.(string), "/var/log/pods/"+chartNamespace+"_"+ds.Name+"-x7k2p_uid/vigil/0.log"); ok {
				excludesSelf = true
			}
		}
		assert.True(t, excludesSelf, "the agent does not read its own logs")
	}
	// Checkpoints and queues on the storage volume.
	storage := cfg.section("extensions", "file_storage")
	require.NotNil(t, storage)
	vm, ok := mounts[str(storage["directory"])]
	require.Truef(t, ok, "file_storage directory %v is a volume", storage["directory"])
	v := vols[vm.Name]
	assert.True(t, v.HostPath != nil || v.EmptyDir != nil)
	if v.HostPath != nil {
		assert.Contains(t, v.HostPath.Path, chartNamespace+"_", "one directory per release")
	}
	for id, e := range cfg.section("exporters") {
		typ, _, _ := strings.Cut(id, "/")
		if slices.Contains([]string{"otlp_grpc", "otlp_http", "load_balancing", "prometheus_remote_write"}, typ) {
			q, _ := e.(map[string]any)["sending_queue"].(map[string]any)
			assert.Equalf(t, "file_storage", q["storage"], "exporter %s: persistent queue", id)
		}
	}

	// OTLP from the node's pods: hostPort and/or a node-local Service.
	var hostPort bool
	for _, p := range c.Ports {
		if p.Name == "otlp-grpc" && p.HostPort == p.ContainerPort {
			hostPort = true
		}
	}
	svcs := all[*corev1.Service](m)
	var local bool
	for _, s := range svcs {
		if s.Name == ds.Name {
			require.NotNil(t, s.Spec.InternalTrafficPolicy)
			assert.Equal(t, corev1.ServiceInternalTrafficPolicyLocal, *s.Spec.InternalTrafficPolicy)
			assert.True(t, labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(ds.Spec.Template.Labels)))
			local = true
		}
	}
	assert.True(t, hostPort || local, "OTLP reachable from the node's pods")

	// RBAC: pods, read-only, and, for kubelet_stats, the kubelet's stats;
	// nothing more.
	want := []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list", "watch"}}}
	if cfg.section("receivers", "kubelet_stats") != nil {
		want = append(want, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"nodes/stats"}, Verbs: []string{"get"}})
	}
	for _, cr := range all[*rbacv1.ClusterRole](m) {
		assert.Equal(t, want, cr.Rules)
	}
	// host_metrics reads the node's root filesystem, read-only.
	if cfg.section("receivers", "host_metrics") != nil {
		assert.Equal(t, "/hostfs", cfg.section("receivers", "host_metrics")["root_path"])
		var mounted bool
		for _, vm := range c.VolumeMounts {
			if vm.MountPath == "/hostfs" {
				mounted = vm.ReadOnly && vm.MountPropagation != nil && *vm.MountPropagation == corev1.MountPropagationHostToContainer
			}
		}
		assert.True(t, mounted, "/hostfs mounted read-only, HostToContainer")
	}
	for _, crb := range all[*rbacv1.ClusterRoleBinding](m) {
		one[*rbacv1.ClusterRole](t, m, crb.RoleRef.Name)
		assert.Equal(t, []rbacv1.Subject{{Kind: "ServiceAccount", Name: pod.ServiceAccountName, Namespace: chartNamespace}}, crb.Subjects)
	}
}

// checkGateway: with gateway.enabled, agents route spans by trace ID to the
// headless Service in front of the StatefulSet, which a PDB protects.
func checkGateway(t *testing.T, m manifest) {
	ds := all[*appsv1.DaemonSet](m)[0]
	_, agentCfg := configOf(t, m, ds.Name)
	agentPipes := agentCfg.pipelines()
	sss := all[*appsv1.StatefulSet](m)
	if len(sss) == 0 {
		assert.Nil(t, agentCfg.section("exporters", "load_balancing"))
		assert.NotContains(t, agentPipes["traces"]["exporters"], "load_balancing")
		assert.Empty(t, all[*policyv1.PodDisruptionBudget](m))
		return
	}
	require.Len(t, sss, 1)
	ss := sss[0]
	assert.Equal(t, []string{"load_balancing"}, agentPipes["traces"]["exporters"], "agents send spans only to the gateway")
	lb := agentCfg.section("exporters", "load_balancing")
	require.NotNil(t, lb)
	assert.Equal(t, "traceID", lb["routing_key"])

	headless := one[*corev1.Service](t, m, ss.Spec.ServiceName)
	assert.Equal(t, corev1.ClusterIPNone, headless.Spec.ClusterIP)
	assert.True(t, labels.SelectorFromSet(headless.Spec.Selector).Matches(labels.Set(ss.Spec.Template.Labels)), "the headless Service selects the gateway pods")
	assert.False(t, labels.SelectorFromSet(headless.Spec.Selector).Matches(labels.Set(ds.Spec.Template.Labels)), "and not the agents")
	svcPorts := map[string]int32{}
	for _, p := range headless.Spec.Ports {
		svcPorts[p.Name] = p.Port
	}

	res := lb["resolver"].(map[string]any)
	switch {
	case res["k8s"] != nil:
		k8s := res["k8s"].(map[string]any)
		assert.Equal(t, headless.Name+"."+chartNamespace, k8s["service"])
		assert.Equal(t, []any{float64(svcPorts["otlp-grpc"])}, k8s["ports"])
		// The resolver watches EndpointSlices: the agent may, in this namespace.
		var granted bool
		for _, rb := range all[*rbacv1.RoleBinding](m) {
			role := one[*rbacv1.Role](t, m, rb.RoleRef.Name)
			if rb.Subjects[0].Name == ds.Spec.Template.Spec.ServiceAccountName && slices.Contains(role.Rules[0].Resources, "endpointslices") {
				assert.Equal(t, []string{"discovery.k8s.io"}, role.Rules[0].APIGroups)
				assert.Equal(t, chartNamespace, role.Namespace)
				granted = true
			}
		}
		assert.True(t, granted, "the agent may watch the gateway's EndpointSlices")
	case res["dns"] != nil:
		dns := res["dns"].(map[string]any)
		assert.Equal(t, headless.Name+"."+chartNamespace+".svc", dns["hostname"])
		assert.Equal(t, strconv.Itoa(int(svcPorts["otlp-grpc"])), dns["port"])
		assert.Empty(t, all[*rbacv1.Role](m), "no Role without the k8s resolver")
	default:
		t.Fatalf("load_balancing resolver %v", res)
	}

	// The gateway: red-flag first on whole traces, then sampling.
	_, gwCfg := configOf(t, m, ss.Name)
	gwPipes := gwCfg.pipelines()
	assert.Equal(t, []string{"otlp"}, gwPipes["traces/in"]["receivers"])
	assert.Equal(t, "redflag", gwPipes["traces/in"]["exporters"][0])
	if ts := gwCfg.section("processors", "tail_sampling"); ts != nil {
		// Sampling after redflag: only in the pipeline fed by forward/traces.
		assert.Equal(t, []string{"forward/traces"}, gwPipes["traces"]["receivers"])
		assert.Contains(t, gwPipes["traces"]["processors"], "tail_sampling")
		assert.NotContains(t, gwPipes["traces/in"]["processors"], "tail_sampling")
		if dir := str(ts["storage"]); dir != "" {
			// The restart snapshot lives on the replica's volume claim.
			var onClaim bool
			for _, vm := range ss.Spec.Template.Spec.Containers[0].VolumeMounts {
				for _, pvc := range ss.Spec.VolumeClaimTemplates {
					if vm.Name == pvc.Name && strings.HasPrefix(dir, vm.MountPath+"/") {
						onClaim = true
					}
				}
			}
			assert.Truef(t, onClaim, "tail_sampling storage %s is on a PersistentVolumeClaim", dir)
		}
	}
	assert.False(t, *ss.Spec.Template.Spec.AutomountServiceAccountToken, "the gateway reads nothing from the API")

	pdbs := all[*policyv1.PodDisruptionBudget](m)
	require.Len(t, pdbs, 1)
	sel, err := metav1LabelSelector(pdbs[0])
	require.NoError(t, err)
	assert.True(t, sel.Matches(labels.Set(ss.Spec.Template.Labels)), "the PDB covers the gateway pods")
	assert.False(t, sel.Matches(labels.Set(ds.Spec.Template.Labels)), "and not the agents")
}

// checkMonitors: ServiceMonitors and PodMonitors select the release's pods or
// Services and scrape ports that exist.
func checkMonitors(t *testing.T, m manifest) {
	svcs := all[*corev1.Service](m)
	for _, sm := range all[*monitoringv1.ServiceMonitor](m) {
		var matched int
		for _, s := range svcs {
			if labels.SelectorFromSet(sm.Spec.Selector.MatchLabels).Matches(labels.Set(s.Labels)) {
				matched++
				names := map[string]bool{}
				for _, p := range s.Spec.Ports {
					names[p.Name] = true
				}
				for _, ep := range sm.Spec.Endpoints {
					assert.Truef(t, names[ep.Port], "ServiceMonitor %s scrapes port %q, Service %s has none", sm.Name, ep.Port, s.Name)
				}
			}
		}
		assert.Equalf(t, 1, matched, "ServiceMonitor %s selects one Service", sm.Name)
	}
	type podTemplate struct {
		name string
		tmpl corev1.PodTemplateSpec
	}
	var pods []podTemplate
	for _, ds := range all[*appsv1.DaemonSet](m) {
		pods = append(pods, podTemplate{ds.Name, ds.Spec.Template})
	}
	for _, ss := range all[*appsv1.StatefulSet](m) {
		pods = append(pods, podTemplate{ss.Name, ss.Spec.Template})
	}
	for _, pm := range all[*monitoringv1.PodMonitor](m) {
		var matched int
		for _, p := range pods {
			if labels.SelectorFromSet(pm.Spec.Selector.MatchLabels).Matches(labels.Set(p.tmpl.Labels)) {
				matched++
				names := map[string]bool{}
				for _, cp := range p.tmpl.Spec.Containers[0].Ports {
					names[cp.Name] = true
				}
				for _, ep := range pm.Spec.PodMetricsEndpoints {
					require.NotNil(t, ep.Port)
					assert.Truef(t, names[*ep.Port], "PodMonitor %s scrapes port %q, %s has none", pm.Name, *ep.Port, p.name)
				}
			}
		}
		assert.Equalf(t, 1, matched, "PodMonitor %s selects one workload", pm.Name)
	}
}

func metav1LabelSelector(pdb *policyv1.PodDisruptionBudget) (labels.Selector, error) {
	if pdb.Spec.Selector == nil {
		return nil, fmt.Errorf("PDB %s has no selector", pdb.Name)
	}
	return labels.SelectorFromSet(pdb.Spec.Selector.MatchLabels), nil
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// Every collector config the chart renders passes `vigil validate`, with the
// environment the pod gives it.
func TestHelmConfigsValidate(t *testing.T) {
	out, code := runVigil(t, 20*time.Second, "components")
	require.Equal(t, 0, code, out)
	t.Setenv("MY_POD_IP", "10.1.2.3")
	t.Setenv("K8S_NODE_NAME", "node-1")
	t.Setenv("HOST_IP", "10.0.0.7")
	for name, file := range valueSets(t) {
		rendered, err := renderChart(t, chartDir, "-f", file)
		require.NoError(t, err)
		m := decodeManifest(t, rendered)
		for _, cm := range all[*corev1.ConfigMap](m) {
			raw, ok := cm.Data["config.yaml"]
			if !ok {
				continue
			}
			t.Run(name+"/"+cm.Name, func(t *testing.T) {
				var cfg collectorConfig
				require.NoError(t, yaml.Unmarshal([]byte(raw), &cfg))
				// What only a pod has: host_metrics checks that its
				// root_path exists (/hostfs is the node's / in the pod, so
				// here it is this machine's), and kubelet_stats reads the
				// ServiceAccount's CA when it starts (here: no auth).
				pod := strings.NewReplacer("root_path: /hostfs", "root_path: /", "auth_type: serviceAccount", "auth_type: none")
				p := writeConfig(t, pod.Replace(raw))
				vout, vcode := runVigil(t, 30*time.Second, "validate", "--config", p)
				require.Equalf(t, 0, vcode, "vigil validate of the %s config (values %s):\n%s\n--- config:\n%s", cm.Name, file, vout, raw)
			})
		}
	}
}

// The checksum annotation changes when the config does, and only then, so
// `helm upgrade` rolls the pods exactly when their config changed.
func TestHelmChecksumFollowsConfig(t *testing.T) {
	checksums := func(args ...string) map[string]string {
		rendered, err := renderChart(t, chartDir, append([]string{"--set", "gateway.enabled=true"}, args...)...)
		require.NoError(t, err)
		m := decodeManifest(t, rendered)
		out := map[string]string{}
		for _, ds := range all[*appsv1.DaemonSet](m) {
			out["agent"] = ds.Spec.Template.Annotations["checksum/config"]
		}
		for _, ss := range all[*appsv1.StatefulSet](m) {
			out["gateway"] = ss.Spec.Template.Annotations["checksum/config"]
		}
		require.Len(t, out, 2)
		return out
	}
	base := checksums()
	assert.Equal(t, base, checksums(), "same values, same checksums")
	assert.Equal(t, base, checksums("--set", "agent.resources.requests.cpu=300m", "--set", "gateway.replicas=5"), "no config change, no rollout")
	changed := checksums("--set", "exporters.debug.verbosity=detailed")
	assert.NotEqual(t, base["agent"], changed["agent"])
	assert.NotEqual(t, base["gateway"], changed["gateway"])
	onlyAgent := checksums("--set", "agent.config.processors.batch.timeout=3s")
	assert.NotEqual(t, base["agent"], onlyAgent["agent"])
	assert.Equal(t, base["gateway"], onlyAgent["gateway"])
}

// agent.config and gateway.config reach the rendered config: maps merge,
// lists replace.
func TestHelmConfigOverrideMerges(t *testing.T) {
	rendered, err := renderChart(t, chartDir,
		"--set", "agent.config.processors.batch.timeout=3s",
		"--set", "agent.config.service.pipelines.logs.exporters={otlp_grpc}",
		"--set", "exporters.otlp_grpc.endpoint=logs.example:4317",
		"--set", "pipelines.traces={otlp_grpc}",
	)
	require.NoError(t, err)
	m := decodeManifest(t, rendered)
	_, cfg := configOf(t, m, "vigil-agent")
	assert.Equal(t, "3s", cfg.section("processors", "batch")["timeout"])
	assert.NotNil(t, cfg.section("processors", "memory_limiter"), "the rest of processors stays")
	p := cfg.pipelines()
	assert.Equal(t, []string{"otlp_grpc"}, p["logs"]["exporters"])
	assert.Equal(t, []string{"forward/logs", "redflag"}, p["logs"]["receivers"], "the rest of the pipeline stays")
	assert.Equal(t, []string{"otlp_grpc"}, p["traces"]["exporters"])
	assert.Equal(t, "logs.example:4317", cfg.section("exporters", "otlp_grpc")["endpoint"])
}

// Bad values fail the render with a message that names the problem.
func TestHelmRejectsBadValues(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"no image", []string{"--set", "image.repository="}, []string{"image.repository is empty", "Dockerfile", "--set image.repository="}},
		{"typo in a key", []string{"--set", "agent.logs.startat=end"}, []string{"agent/logs", "startat"}},
		{"unknown top-level key", []string{"--set", "gatway.enabled=true"}, []string{"gatway"}},
		{"undefined exporter", []string{"--set", "pipelines.traces={otlp_grpc}"}, []string{"pipelines.traces", "otlp_grpc", "not defined"}},
		{"no exporter for a signal", []string{"--set-json", "pipelines.logs=[]"}, []string{"pipelines/logs"}},
		{"bad duration", []string{"--set", "agent.scrape.interval=30 seconds"}, []string{"agent/scrape/interval"}},
		{"bad quantity", []string{"--set", "agent.resources.limits.memory=lots"}, []string{"agent/resources/limits/memory"}},
		{"bad resolver", []string{"--set", "gateway.resolver.type=consul"}, []string{"gateway/resolver/type"}},
		{"bad alertmanager URL", []string{"--set", "alertmanager.endpoints={alertmanager:9093}"}, []string{"alertmanager/endpoints"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := renderChart(t, chartDir, c.args...)
			require.Errorf(t, err, "rendered:\n%s", out)
			for _, w := range c.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

// dashboards.enabled renders the chart's copy of the red-flag dashboard into a
// ConfigMap Grafana's sidecar picks up, and that copy is the one in
// deploy/grafana (make chart-dashboards keeps them equal).
func TestHelmDashboardConfigMap(t *testing.T) {
	want, err := os.ReadFile("../deploy/grafana/vigil-red-flags.json")
	require.NoError(t, err)
	inChart, err := os.ReadFile(filepath.Join(chartDir, "files", "dashboards", "vigil-red-flags.json"))
	require.NoError(t, err)
	require.Equal(t, string(want), string(inChart), "the chart's dashboard differs from deploy/grafana: run make chart-dashboards")

	rendered, err := renderChart(t, chartDir)
	require.NoError(t, err)
	for _, cm := range all[*corev1.ConfigMap](decodeManifest(t, rendered)) {
		assert.NotContains(t, cm.Labels, "grafana_dashboard", "off by default")
	}

	rendered, err = renderChart(t, chartDir, "--set", "dashboards.enabled=true")
	require.NoError(t, err)
	m := decodeManifest(t, rendered)
	cm := one[*corev1.ConfigMap](t, m, "vigil-dashboard-vigil-red-flags")
	assert.Equal(t, "1", cm.Labels["grafana_dashboard"])
	assert.Equal(t, "Vigil", cm.Annotations["grafana_folder"])
	assert.JSONEq(t, string(want), cm.Data["vigil-red-flags.json"])
}

// A chart copy without dashboard files fails the render with a message
// instead of installing an empty ConfigMap.
func TestHelmDashboardsWithoutAFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vigil")
	require.NoError(t, os.CopyFS(dir, os.DirFS(chartDir)))
	require.NoError(t, os.RemoveAll(filepath.Join(dir, "files", "dashboards")))
	out, err := renderChart(t, dir, "--set", "dashboards.enabled=true")
	require.Errorf(t, err, "rendered:\n%s", out)
	assert.Contains(t, err.Error(), "dashboards.enabled")
	assert.Contains(t, err.Error(), "files/dashboards")
}

// cluster names the cluster on every red-flag series the agents and the
// gateway expose and on every alert they send to Alertmanager, and an
// Alertmanager URL with dns+ is kept for the exporter to resolve.
func TestHelmClusterLabel(t *testing.T) {
	rendered, err := renderChart(t, chartDir, "--set", "gateway.enabled=true", "--set", "cluster=prod-eu",
		"--set-json", `alertmanager.endpoints=["dns+http://alertmanager-operated.monitoring.svc:9093"]`,
		"--set-json", `alertmanager.config={"external_labels":{"team":"payments"}}`)
	require.NoError(t, err)
	m := decodeManifest(t, rendered)
	for _, name := range []string{"vigil-agent", "vigil-gateway"} {
		_, cfg := configOf(t, m, name)
		assert.Equal(t, map[string]any{"cluster": "prod-eu"}, cfg.section("exporters", "prometheus/alerts")["const_labels"], name)
		am := cfg.section("exporters", "alertmanager/0")
		assert.Equal(t, "dns+http://alertmanager-operated.monitoring.svc:9093", am["endpoint"], name)
		assert.Equal(t, map[string]any{"cluster": "prod-eu", "team": "payments"}, am["external_labels"], name)
	}
	// Without a cluster, no label at all (not an empty one).
	rendered, err = renderChart(t, chartDir)
	require.NoError(t, err)
	_, cfg := configOf(t, decodeManifest(t, rendered), "vigil-agent")
	assert.NotContains(t, cfg.section("exporters", "prometheus/alerts"), "const_labels")
}

// agent.meshMetrics scrapes this node's Istio sidecars and Linkerd proxies
// for their request metrics only (the ones the redflag connector reads, into
// the pipeline that feeds it), and the annotated-pods job then drops Istio's
// (metrics merging puts them on :15020 too), so no call is read twice.
func TestHelmMeshMetricsPreset(t *testing.T) {
	jobs := func(cfg collectorConfig) map[string]map[string]any {
		out := map[string]map[string]any{}
		list, _ := cfg.section("receivers", "prometheus", "config")["scrape_configs"].([]any)
		for _, j := range list {
			jm := j.(map[string]any)
			out[jm["job_name"].(string)] = jm
		}
		return out
	}
	rendered, err := renderChart(t, chartDir, "--set", "agent.meshMetrics.enabled=true")
	require.NoError(t, err)
	_, cfg := configOf(t, decodeManifest(t, rendered), "vigil-agent")
	js := jobs(cfg)
	require.Contains(t, js, "istio-proxies")
	require.Contains(t, js, "linkerd-proxies")
	require.Contains(t, js, "kubernetes-pods")
	assert.Equal(t, "/stats/prometheus", js["istio-proxies"]["metrics_path"])
	assert.Equal(t, "15s", js["istio-proxies"]["scrape_interval"])
	keep := func(job string) string {
		for _, r := range js[job]["metric_relabel_configs"].([]any) {
			rm := r.(map[string]any)
			return rm["action"].(string) + " " + rm["regex"].(string)
		}
		return ""
	}
	assert.Equal(t, "keep istio_requests_total|istio_request_duration_milliseconds_(bucket|sum|count)", keep("istio-proxies"))
	assert.Equal(t, "keep response_total|response_latency_ms_(bucket|sum|count)", keep("linkerd-proxies"))
	assert.Equal(t, "drop istio_requests_total|istio_request_duration_milliseconds_(bucket|sum|count)", keep("kubernetes-pods"))
	assert.Contains(t, cfg.pipelines()["metrics/in"]["receivers"], "prometheus")
	assert.Contains(t, cfg.pipelines()["metrics/in"]["exporters"], "redflag")

	// Off (the default): the annotated pods only, keeping everything; with
	// the annotated-pods scrape off too, no prometheus receiver at all.
	rendered, err = renderChart(t, chartDir)
	require.NoError(t, err)
	_, cfg = configOf(t, decodeManifest(t, rendered), "vigil-agent")
	js = jobs(cfg)
	assert.Len(t, js, 1)
	assert.NotContains(t, js["kubernetes-pods"], "metric_relabel_configs")
	rendered, err = renderChart(t, chartDir, "--set", "agent.scrape.enabled=false")
	require.NoError(t, err)
	_, cfg = configOf(t, decodeManifest(t, rendered), "vigil-agent")
	assert.Nil(t, cfg.section("receivers", "prometheus"))
	assert.NotContains(t, cfg.pipelines()["metrics/in"]["receivers"], "prometheus")

	// Only the mesh: its jobs alone, and still the pod list/watch that
	// discovering the sidecars needs.
	rendered, err = renderChart(t, chartDir, "--set", "agent.scrape.enabled=false", "--set", "agent.k8sAttributes.enabled=false",
		"--set", "agent.meshMetrics.enabled=true")
	require.NoError(t, err)
	m := decodeManifest(t, rendered)
	_, cfg = configOf(t, m, "vigil-agent")
	js = jobs(cfg)
	assert.Len(t, js, 2)
	assert.NotContains(t, js, "kubernetes-pods")
	var pods bool
	for _, cr := range all[*rbacv1.ClusterRole](m) {
		for _, r := range cr.Rules {
			if slices.Contains(r.Resources, "pods") && slices.Contains(r.Verbs, "list") && slices.Contains(r.Verbs, "watch") {
				pods = true
			}
		}
	}
	assert.True(t, pods, "no ClusterRole lets the agent list and watch pods")
}
