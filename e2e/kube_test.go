package e2e

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"

	"github.com/vigilhq/vigil/testkit/otlpsink"
)

// The chart against a real kube-apiserver (k8s.io/kubernetes v1.37.2) and
// etcd, started by the test: every rendered object passes server-side dry-run
// apply with strict field validation, `helm install` and `helm upgrade` work,
// and the RBAC the chart grants covers what the agent's components read (and
// no more), checked with SubjectAccessReview. No kubelet or scheduler: pods
// never run.
//
// Building the API server takes about 9 minutes cold, so this runs only with
// KUBE_APISERVER_BIN set: `make test-kube` builds it and sets it, and .ci/run
// calls that target when the chart changed.

// kubeCluster is a running etcd + kube-apiserver on 127.0.0.1.
type kubeCluster struct {
	host, token string // the API server's URL and the admin token
	caFile      string // its serving certificate, the cluster's CA
	saKey       string // the service-account signing key
	cfg         *rest.Config
	kubeconfig  string
	client      kubernetes.Interface
	dyn         dynamic.Interface
	mapper      *restmapper.DeferredDiscoveryRESTMapper
}

func TestKubeAPIServer(t *testing.T) {
	apiserver := os.Getenv("KUBE_APISERVER_BIN")
	if apiserver == "" {
		t.Skip("KUBE_APISERVER_BIN not set: `make test-kube` builds kube-apiserver and runs this test")
	}
	etcd := os.Getenv("ETCD_BIN")
	if etcd == "" {
		var err error
		etcd, err = exec.LookPath("etcd")
		require.NoError(t, err, "etcd not found (Debian package etcd-server; make test-kube installs it) and ETCD_BIN not set")
	}
	k := startKube(t, apiserver, etcd, kubeOptions{})
	ctx := context.Background()
	_, err := k.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: chartNamespace}}, metav1.CreateOptions{})
	require.NoError(t, err)

	t.Run("dry-run apply, strict", func(t *testing.T) {
		for name, file := range valueSets(t) {
			t.Run(name, func(t *testing.T) {
				rendered, err := renderChart(t, chartDir, "-f", file)
				require.NoError(t, err)
				m := decodeManifest(t, rendered)
				var applied int
				for _, doc := range m.docs {
					obj := toUnstructured(t, doc)
					if obj.GroupVersionKind().Group == "monitoring.coreos.com" {
						// No Prometheus Operator CRDs on this server; these are
						// strictly decoded into its Go types in helm_test.go.
						continue
					}
					require.NoErrorf(t, k.dryRunApply(ctx, obj), "%s %s", obj.GetKind(), obj.GetName())
					applied++
				}
				t.Logf("%d objects accepted", applied)
				require.Positive(t, applied)
			})
		}
	})

	// The server rejects what the chart must never emit, so the check above
	// can fail: an unknown field, and a wrong type.
	t.Run("strict validation rejects", func(t *testing.T) {
		rendered, err := renderChart(t, chartDir)
		require.NoError(t, err)
		m := decodeManifest(t, rendered)
		var ds *unstructured.Unstructured
		for _, doc := range m.docs {
			if o := toUnstructured(t, doc); o.GetKind() == "DaemonSet" {
				ds = o
			}
		}
		require.NotNil(t, ds)
		bad := ds.DeepCopy()
		cs, _, _ := unstructured.NestedSlice(bad.Object, "spec", "template", "spec", "containers")
		cs[0].(map[string]any)["imagePullPolicyy"] = "Always"
		require.NoError(t, unstructured.SetNestedSlice(bad.Object, cs, "spec", "template", "spec", "containers"))
		err = k.dryRunApply(ctx, bad)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "imagePullPolicyy")

		bad = ds.DeepCopy()
		require.NoError(t, unstructured.SetNestedField(bad.Object, "all", "spec", "template", "spec", "terminationGracePeriodSeconds"))
		require.Error(t, k.dryRunApply(ctx, bad))
	})

	t.Run("helm install and upgrade", func(t *testing.T) {
		kc := []string{"--kubeconfig", k.kubeconfig, "--namespace", chartNamespace}
		// Without the Prometheus Operator CRDs; with the gateway and its Role.
		out, err := helm(t, append([]string{"install", chartRelease, chartDir, "--set", "image.repository=" + chartImage, "--set", "gateway.enabled=true", "--wait=false"}, kc...)...)
		require.NoError(t, err, out)
		ds, err := k.client.AppsV1().DaemonSets(chartNamespace).Get(ctx, "vigil-agent", metav1.GetOptions{})
		require.NoError(t, err)
		ss, err := k.client.AppsV1().StatefulSets(chartNamespace).Get(ctx, "vigil-gateway", metav1.GetOptions{})
		require.NoError(t, err)
		_, err = k.client.PolicyV1().PodDisruptionBudgets(chartNamespace).Get(ctx, "vigil-gateway", metav1.GetOptions{})
		require.NoError(t, err)

		// A config change rolls the agents (a new template generation) and
		// leaves the gateway alone when its config did not change.
		out, err = helm(t, append([]string{"upgrade", chartRelease, chartDir, "--reuse-values", "--set", "agent.config.processors.batch.timeout=3s", "--wait=false"}, kc...)...)
		require.NoError(t, err, out)
		ds2, err := k.client.AppsV1().DaemonSets(chartNamespace).Get(ctx, "vigil-agent", metav1.GetOptions{})
		require.NoError(t, err)
		assert.Greater(t, ds2.Generation, ds.Generation, "the agents' pod template changed")
		assert.NotEqual(t, ds.Spec.Template.Annotations["checksum/config"], ds2.Spec.Template.Annotations["checksum/config"])
		ss2, err := k.client.AppsV1().StatefulSets(chartNamespace).Get(ctx, "vigil-gateway", metav1.GetOptions{})
		require.NoError(t, err)
		assert.Equal(t, ss.Generation, ss2.Generation, "the gateway's pod template did not change")
	})

	// What the agent's components read, from its rendered config, is allowed
	// to its ServiceAccount; nothing else is.
	t.Run("RBAC covers k8s_attributes, kubernetes_sd and the resolver", func(t *testing.T) {
		sa := "system:serviceaccount:" + chartNamespace + ":vigil-agent"
		groups := []string{"system:serviceaccounts", "system:serviceaccounts:" + chartNamespace, "system:authenticated"}
		rendered, err := renderChart(t, chartDir, "--set", "gateway.enabled=true")
		require.NoError(t, err)
		m := decodeManifest(t, rendered)
		_, cfg := configOf(t, m, "vigil-agent")

		type access struct {
			verb, group, resource, namespace string
		}
		var need []access
		if k8s := cfg.section("processors", "k8s_attributes"); k8s != nil {
			// A pod informer over all namespaces with a spec.nodeName field
			// selector (filter.node_from_env_var).
			require.Equal(t, "K8S_NODE_NAME", cfg.section("processors", "k8s_attributes", "filter")["node_from_env_var"])
			need = append(need, access{"list", "", "pods", ""}, access{"watch", "", "pods", ""})
			meta, _ := cfg.section("processors", "k8s_attributes", "extract")["metadata"].([]any)
			for _, v := range meta {
				// These would need ReplicaSet / Namespace / Node watches the
				// chart does not grant.
				require.NotContains(t, []string{"k8s.deployment.uid", "k8s.cluster.uid", "k8s.node.uid"}, v)
			}
			_, hasLabels := cfg.section("processors", "k8s_attributes", "extract")["labels"]
			require.False(t, hasLabels, "label extraction from namespaces or nodes needs more RBAC")
		}
		if prom := cfg.section("receivers", "prometheus"); prom != nil {
			for _, sc := range prom["config"].(map[string]any)["scrape_configs"].([]any) {
				for _, sd := range sc.(map[string]any)["kubernetes_sd_configs"].([]any) {
					role := sd.(map[string]any)["role"].(string)
					require.Equal(t, "pod", role)
					_, scoped := sd.(map[string]any)["namespaces"]
					require.False(t, scoped, "all namespaces")
					need = append(need, access{"list", "", "pods", ""}, access{"watch", "", "pods", ""})
				}
			}
		}
		if lb := cfg.section("exporters", "load_balancing", "resolver", "k8s"); lb != nil {
			_, ns, ok := strings.Cut(lb["service"].(string), ".")
			require.True(t, ok)
			need = append(need, access{"list", "discovery.k8s.io", "endpointslices", ns}, access{"watch", "discovery.k8s.io", "endpointslices", ns})
		}
		require.NotEmpty(t, need)

		// Grant for real what the chart renders (ServiceAccounts and RBAC).
		for _, doc := range m.docs {
			o := toUnstructured(t, doc)
			if slices.Contains([]string{"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}, o.GetKind()) {
				require.NoError(t, k.apply(ctx, o, "rbac-test"))
			}
		}

		allowed := func(user string, a access) (bool, string) {
			sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
				User: user, Groups: groups,
				ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: a.verb, Group: a.group, Resource: a.resource, Namespace: a.namespace},
			}}
			res, err := k.client.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
			require.NoError(t, err)
			return res.Status.Allowed, res.Status.Reason
		}
		for _, a := range need {
			ok, why := allowed(sa, a)
			assert.Truef(t, ok, "agent may %s %s.%s in %q: %s", a.verb, a.resource, a.group, a.namespace, why)
		}
		for _, a := range []access{
			{"get", "", "secrets", chartNamespace},
			{"list", "", "secrets", ""},
			{"list", "", "configmaps", ""},
			{"create", "", "pods", chartNamespace},
			{"delete", "", "pods", ""},
			{"patch", "", "pods", ""},
			{"list", "", "nodes", ""},
			{"list", "", "namespaces", ""},
			{"list", "apps", "replicasets", ""},
			{"list", "discovery.k8s.io", "endpointslices", "kube-system"},
			{"create", "discovery.k8s.io", "endpointslices", chartNamespace},
		} {
			ok, _ := allowed(sa, a)
			assert.Falsef(t, ok, "agent may %s %s.%s in %q, which it does not need", a.verb, a.resource, a.group, a.namespace)
		}
		ok, _ := allowed("system:serviceaccount:"+chartNamespace+":vigil-gateway", access{"list", "", "pods", ""})
		assert.False(t, ok, "the gateway reads nothing")
	})

	// The rendered agent config, run with the agent ServiceAccount's token
	// against this server: k8s_attributes syncs its pod cache with the RBAC
	// the chart grants (wait_for_metadata fails the start otherwise), and
	// enriches spans of pods on its node, not of pods elsewhere.
	t.Run("agent enriches from its node's pods with the granted RBAC", func(t *testing.T) {
		sink, err := otlpsink.Start("127.0.0.1:0", true)
		require.NoError(t, err)
		t.Cleanup(sink.Stop)
		rendered, err := renderChart(t, chartDir,
			"--set", "agent.scrape.enabled=false",
			"--set", "exporters.otlp_grpc.endpoint="+sink.Addr,
			"--set", "exporters.otlp_grpc.tls.insecure=true",
			"--set", "pipelines.traces={otlp_grpc}")
		require.NoError(t, err)
		m := decodeManifest(t, rendered)
		raw, _ := configOf(t, m, "vigil-agent")
		for _, doc := range m.docs {
			o := toUnstructured(t, doc)
			if slices.Contains([]string{"ServiceAccount", "ClusterRole", "ClusterRoleBinding"}, o.GetKind()) {
				require.NoError(t, k.apply(ctx, o, "runtime-test"))
			}
		}

		// An application namespace; its pods are created once the agent runs,
		// so they reach it through the watch, not the initial list.
		const app = "shop"
		_, err = k.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: app}}, metav1.CreateOptions{})
		require.NoError(t, err)
		_, err = k.client.CoreV1().ServiceAccounts(app).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
		require.NoError(t, err)

		tok, err := k.client.CoreV1().ServiceAccounts(chartNamespace).CreateToken(ctx, "vigil-agent",
			&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: new(int64(3600))}}, metav1.CreateOptions{})
		require.NoError(t, err)
		kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
		require.NoError(t, os.WriteFile(kubeconfig, fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: %q, certificate-authority: %q}}]
users: [{name: vigil-agent, user: {token: %q}}]
contexts: [{name: test, context: {cluster: test, user: vigil-agent}}]
current-context: test
`, k.cfg.Host, k.cfg.CAFile, tok.Status.Token), 0o600))

		// Outside a pod: loopback ports, a temp dir for storage, no host log
		// files, and the token from a kubeconfig instead of the pod's mount.
		dir := t.TempDir()
		health, grpcPort, httpPort, alerts, tel := freePort(t), freePort(t), freePort(t), freePort(t), freePort(t)
		override := writeConfig(t, fmt.Sprintf(`
extensions:
  health_check: {endpoint: "127.0.0.1:%d"}
  file_storage: {directory: %q, compaction: {directory: %q}}
receivers:
  otlp: {protocols: {grpc: {endpoint: "127.0.0.1:%d"}, http: {endpoint: "127.0.0.1:%d"}}}
  container_log: {include: [%q], exclude: []}
processors:
  k8s_attributes: {auth_type: kubeConfig, wait_for_metadata: true, wait_for_metadata_timeout: 30s}
  batch: {timeout: 100ms}
exporters:
  prometheus/alerts: {endpoint: "127.0.0.1:%d"}
service:
  telemetry:
    metrics:
      readers: [{pull: {exporter: {prometheus: {host: 127.0.0.1, port: %d}}}}]
`, health, dir, dir, grpcPort, httpPort, filepath.Join(dir, "none", "*.log"), alerts, tel))
		t.Setenv("KUBECONFIG", kubeconfig)
		t.Setenv("K8S_NODE_NAME", "node-a")
		t.Setenv("MY_POD_IP", "127.0.0.1")
		agent := startAgent(t, health, "--config", writeConfig(t, raw), "--config", override)

		// Two pods of the application, on two nodes (no scheduler: nodeName set).
		uids := map[string]types.UID{}
		for pod, node := range map[string]string{"checkout-here": "node-a", "checkout-there": "node-b"} {
			p, err := k.client.CoreV1().Pods(app).Create(ctx, &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: pod},
				Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "app", Image: "shop/checkout:1"}}},
			}, metav1.CreateOptions{})
			require.NoError(t, err)
			uids[pod] = p.UID
		}

		// A span from each pod, again until the one from this node's pod
		// arrives enriched (the watch event is asynchronous).
		got := map[string]map[string]any{}
		enriched := otlpsink.WaitFor(20*time.Second, func() bool {
			for pod, uid := range uids {
				body := fmt.Sprintf(`{"resourceSpans": [{"resource": {"attributes": [
  {"key": "service.name", "value": {"stringValue": "checkout"}},
  {"key": "k8s.pod.uid", "value": {"stringValue": %q}}]},
  "scopeSpans": [{"spans": [{"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
    "name": %q, "kind": 2, "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000250000000"}]}]}]}`, uid, pod)
				resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/v1/traces", httpPort), "application/json", strings.NewReader(body))
				require.NoError(t, err)
				resp.Body.Close()
				require.Equal(t, http.StatusOK, resp.StatusCode)
			}
			time.Sleep(300 * time.Millisecond)
			for _, td := range sink.Traces() {
				for _, rs := range td.ResourceSpans().All() {
					for _, ss := range rs.ScopeSpans().All() {
						for _, sp := range ss.Spans().All() {
							attrs := rs.Resource().Attributes().AsRaw()
							if _, ok := got[sp.Name()]["k8s.pod.name"]; !ok {
								got[sp.Name()] = attrs
							}
						}
					}
				}
			}
			_, ok := got["checkout-here"]["k8s.pod.name"]
			return ok
		})
		require.Contains(t, got, "checkout-there", "spans at the backend")
		assert.True(t, enriched, "the span of a pod on the agent's node, created after the agent started, is enriched (%v)", got["checkout-here"])
		// Nothing the agent asked the API for was refused (a missing watch
		// shows only here: client-go falls back to relisting).
		var refused []string
		for _, line := range strings.Split(agent.log.String(), "\n") {
			if strings.Contains(line, "forbidden") {
				refused = append(refused, line)
			}
		}
		assert.Empty(t, refused, "API requests refused to the agent")
		here := got["checkout-here"]
		assert.Equal(t, "checkout-here", here["k8s.pod.name"], "a pod on the agent's node: enriched (%v)", here)
		assert.Equal(t, app, here["k8s.namespace.name"])
		assert.Equal(t, "node-a", here["k8s.node.name"])
		there := got["checkout-there"]
		assert.NotContains(t, there, "k8s.pod.name", "a pod on another node is not in this agent's cache (%v)", there)
	})
}

// kubeOptions change how startKube runs the API server.
type kubeOptions struct {
	// Address is where it listens and what it advertises (default
	// 127.0.0.1); a node's pods need an address they can reach.
	Address string
	// Dir holds its files (default a test temp dir).
	Dir string
	// Tokens are extra lines of the token file (token,user,uid,groups).
	Tokens []string
	// Args are extra flags; a flag given here wins over the default.
	Args []string
}

// startKube starts etcd and kube-apiserver on free ports, waits until the
// server is ready, and stops both when the test ends.
func startKube(t *testing.T, apiserver, etcd string, o kubeOptions) *kubeCluster {
	t.Helper()
	dir := cmp.Or(o.Dir, t.TempDir())
	addr := cmp.Or(o.Address, "127.0.0.1")
	clientPort, peerPort, securePort := freePort(t), freePort(t), freePort(t)
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", clientPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	startProcess(t, "etcd", etcd,
		"--name=vigil-test", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=vigil-test="+peerURL, "--log-level=warn")
	waitHTTP(t, etcdURL+"/health", nil, 30*time.Second)

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	require.NoError(t, err)
	keyFile, pubFile := filepath.Join(dir, "sa.key"), filepath.Join(dir, "sa.pub")
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600))
	require.NoError(t, os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o600))
	const token = "vigil-test-admin-token"
	tokenFile := filepath.Join(dir, "tokens.csv")
	tokens := append([]string{token + ",admin,admin-uid,system:masters"}, o.Tokens...)
	require.NoError(t, os.WriteFile(tokenFile, []byte(strings.Join(tokens, "\n")+"\n"), 0o600))
	certDir := filepath.Join(dir, "certs")

	args := []string{
		"--advertise-address=" + addr, "--bind-address=" + addr,
		fmt.Sprintf("--secure-port=%d", securePort), "--cert-dir=" + certDir,
		"--endpoint-reconciler-type=none",
		"--etcd-servers=" + etcdURL,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + pubFile, "--service-account-signing-key-file=" + keyFile,
		"--service-cluster-ip-range=10.96.0.0/24",
		"--token-auth-file=" + tokenFile, "--authorization-mode=RBAC",
		"--v=1",
	}
	for _, a := range o.Args {
		flag, _, _ := strings.Cut(a, "=")
		args = slices.DeleteFunc(args, func(d string) bool { return strings.HasPrefix(d, flag+"=") })
		args = append(args, a)
	}
	startProcess(t, "kube-apiserver", apiserver, args...)
	host := fmt.Sprintf("https://%s:%d", addr, securePort)
	waitHTTP(t, host+"/readyz", http.Header{"Authorization": {"Bearer " + token}}, 3*time.Minute)

	// The server's self-signed certificate (written to --cert-dir) is the CA.
	cfg := &rest.Config{Host: host, BearerToken: token, Timeout: 30 * time.Second,
		TLSClientConfig: rest.TLSClientConfig{CAFile: filepath.Join(certDir, "apiserver.crt")}}
	cs, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	dyn, err := dynamic.NewForConfig(cfg)
	require.NoError(t, err)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(cs.Discovery()))

	kubeconfig := filepath.Join(dir, "kubeconfig")
	require.NoError(t, os.WriteFile(kubeconfig, fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: %q, certificate-authority: %q}
users:
- name: admin
  user: {token: %q}
contexts:
- name: test
  context: {cluster: test, user: admin}
current-context: test
`, host, filepath.Join(certDir, "apiserver.crt"), token), 0o600))
	return &kubeCluster{cfg: cfg, kubeconfig: kubeconfig, client: cs, dyn: dyn, mapper: mapper,
		host: host, token: token, caFile: filepath.Join(certDir, "apiserver.crt"), saKey: keyFile}
}

// startProcess runs a server for the rest of the test and keeps its output
// for the failure message.
func startProcess(t *testing.T, name, bin string, args ...string) {
	t.Helper()
	log := &syncBuffer{}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	require.NoErrorf(t, cmd.Start(), "start %s", name)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("%s output (tail):\n%s", name, tail(log.String(), 6000))
		}
	})
}

// waitHTTP polls url until it answers 200.
func waitHTTP(t *testing.T, url string, h http.Header, timeout time.Duration) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		// Readiness only; the clients verify the server's certificate.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec
	}}
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		require.NoError(t, err)
		for k, v := range h {
			req.Header[k] = v
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("%s not ready after %s: %s", url, timeout, last)
}

func toUnstructured(t testing.TB, doc []byte) *unstructured.Unstructured {
	t.Helper()
	var m map[string]any
	require.NoError(t, yaml.Unmarshal(doc, &m))
	return &unstructured.Unstructured{Object: m}
}

// dryRunApply sends obj as a server-side apply with dry run and strict field
// validation: the server decodes, defaults, validates and admits it, and
// stores nothing.
func (k *kubeCluster) dryRunApply(ctx context.Context, obj *unstructured.Unstructured) error {
	return k.patch(ctx, obj, "vigil-chart-test", []string{metav1.DryRunAll})
}

// apply creates or updates obj for real (server-side apply).
func (k *kubeCluster) apply(ctx context.Context, obj *unstructured.Unstructured, manager string) error {
	return k.patch(ctx, obj, manager, nil)
}

func (k *kubeCluster) patch(ctx context.Context, obj *unstructured.Unstructured, manager string, dryRun []string) error {
	gvk := obj.GroupVersionKind()
	mapping, err := k.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return fmt.Errorf("cannot map %s: %w", gvk, err)
	}
	body, err := obj.MarshalJSON()
	if err != nil {
		return err
	}
	var ri dynamic.ResourceInterface = k.dyn.Resource(mapping.Resource)
	if mapping.Scope.Name() == "namespace" {
		ri = k.dyn.Resource(mapping.Resource).Namespace(obj.GetNamespace())
	}
	force := true
	_, err = ri.Patch(ctx, obj.GetName(), types.ApplyPatchType, body, metav1.PatchOptions{
		FieldManager: manager, DryRun: dryRun, Force: &force,
		FieldValidation: metav1.FieldValidationStrict,
	})
	return err
}
