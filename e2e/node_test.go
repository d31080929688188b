package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vigilhq/vigil/testkit/otlpsink"
)

// A one-node Kubernetes cluster built from real components on this machine:
// etcd, kube-apiserver, kube-controller-manager and kube-scheduler (the
// DaemonSet controller and the scheduler put the agent's pod on the node),
// and a kubelet driving containerd and runc, with the CNI bridge for the pod
// network. Everything is k8s.io/kubernetes v1.37.2 (scripts/kube-apiserver.sh
// builds it); the kubelet runs on this machine's cgroup v1 hierarchy with
// failCgroupV1: false, and falls back to its own cgroupDriver because
// containerd 1.6 does not report one. Images are built locally
// (node_images_test.go). `make test-node` runs it as root.

const nodeName = "vigil-node"

// kubeNode is the running cluster.
type kubeNode struct {
	*kubeCluster
	IP       string // the node's address, where pods reach the host
	dir      string
	socket   string // containerd's
	Images   nodeImages
	ctr      string
	podCIDR  string
	hostPath string // where the kubelet keeps pods (under dir)
}

// nodeBins are the binaries the node needs, from KUBE_BIN_DIR and PATH.
type nodeBins struct {
	apiserver, controllerManager, scheduler, kubelet, proxy string
	etcd, containerd, ctr, runc                             string
	cniDir                                                  string
}

func lookNodeBins(t *testing.T) nodeBins {
	dir := os.Getenv("KUBE_BIN_DIR")
	if dir == "" {
		t.Skip("set KUBE_BIN_DIR to the kube-apiserver, kube-controller-manager, kube-scheduler, kubelet and kube-proxy binaries (make test-node)")
	}
	if os.Geteuid() != 0 {
		t.Skip("the kubelet and containerd need root")
	}
	b := nodeBins{
		apiserver: filepath.Join(dir, "kube-apiserver"), controllerManager: filepath.Join(dir, "kube-controller-manager"),
		scheduler: filepath.Join(dir, "kube-scheduler"), kubelet: filepath.Join(dir, "kubelet"),
		proxy: filepath.Join(dir, "kube-proxy"), cniDir: "/usr/lib/cni",
	}
	for _, p := range []string{b.apiserver, b.controllerManager, b.scheduler, b.kubelet, b.proxy, filepath.Join(b.cniDir, "bridge"), filepath.Join(b.cniDir, "host-local"), filepath.Join(b.cniDir, "loopback"), filepath.Join(b.cniDir, "portmap")} {
		_, err := os.Stat(p)
		require.NoErrorf(t, err, "missing %s (make test-node builds the Kubernetes binaries; apt-get install containernetworking-plugins)", p)
	}
	var err error
	for name, dst := range map[string]*string{"etcd": &b.etcd, "containerd": &b.containerd, "ctr": &b.ctr, "runc": &b.runc} {
		*dst, err = exec.LookPath(name)
		require.NoErrorf(t, err, "%s is not on PATH (apt-get install etcd-server containerd runc)", name)
	}
	return b
}

// hostIP is the first IPv4 address of an up, non-loopback interface: the
// node's InternalIP, which pods reach the host at.
func hostIP(t *testing.T) string {
	ifs, err := net.Interfaces()
	require.NoError(t, err)
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 || strings.HasPrefix(ifc.Name, "cni") || strings.HasPrefix(ifc.Name, "veth") {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
				return ipn.IP.String()
			}
		}
	}
	t.Fatal("no non-loopback IPv4 address: the pods would have no way to reach the host")
	return ""
}

func startNode(t *testing.T, bins nodeBins) *kubeNode {
	t.Helper()
	// Short: containerd's and the shims' unix socket paths must fit 108 bytes.
	dir, err := os.MkdirTemp("", "vn")
	require.NoError(t, err)
	t.Cleanup(func() { cleanupNodeDir(t, dir) })
	n := &kubeNode{IP: hostIP(t), dir: dir, ctr: bins.ctr, podCIDR: "10.244.0.0/24", hostPath: filepath.Join(dir, "kubelet")}

	const nodeToken, proxyToken = "vigil-test-node-token", "vigil-test-proxy-token"
	k := startKube(t, bins.apiserver, bins.etcd, kubeOptions{
		Address: n.IP, Dir: filepath.Join(dir, "control"),
		Tokens: []string{
			nodeToken + ",system:node:" + nodeName + ",node-uid,system:nodes",
			// Bound to system:node-proxier by the default RBAC policy.
			proxyToken + ",system:kube-proxy,proxy-uid",
		},
		Args: []string{"--authorization-mode=Node,RBAC", "--allow-privileged=true", "--kubelet-preferred-address-types=InternalIP",
			// The kubernetes Service's endpoint is this API server, which
			// pods reach through kube-proxy, as on a real node.
			"--endpoint-reconciler-type=lease"},
	})
	n.kubeCluster = k

	startProcess(t, "kube-controller-manager", bins.controllerManager,
		"--kubeconfig="+k.kubeconfig, "--authentication-kubeconfig="+k.kubeconfig, "--authorization-kubeconfig="+k.kubeconfig,
		"--root-ca-file="+k.caFile, "--service-account-private-key-file="+k.saKey,
		"--leader-elect=false", "--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", freePort(t)),
		"--controllers=*", "--use-service-account-credentials=false", "--v=1")
	startProcess(t, "kube-scheduler", bins.scheduler,
		"--kubeconfig="+k.kubeconfig, "--authentication-kubeconfig="+k.kubeconfig, "--authorization-kubeconfig="+k.kubeconfig,
		"--leader-elect=false", "--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", freePort(t)), "--v=1")

	// systemd makes / a shared mount on every real node, and containerd
	// refuses a HostToContainer hostPath (the hostMetrics preset's /hostfs)
	// from a private one. This machine's / is private: share it while the
	// node runs.
	if prop := rootPropagation(t); prop == "private" {
		require.NoError(t, exec.Command("mount", "--make-rshared", "/").Run())
		t.Cleanup(func() { _ = exec.Command("mount", "--make-rprivate", "/").Run() })
	}

	n.socket = filepath.Join(dir, "containerd.sock")
	cniConf := filepath.Join(dir, "net.d")
	require.NoError(t, os.MkdirAll(cniConf, 0o755))
	containerdConf := filepath.Join(dir, "containerd.toml")
	require.NoError(t, os.WriteFile(containerdConf, fmt.Appendf(nil, `version = 2
root = %q
state = %q
[grpc]
  address = %q
[plugins."io.containerd.internal.v1.opt"]
  path = %q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "vigil.test/pause:1"
  # This machine's root lacks CAP_SYS_RESOURCE, so runc cannot lower a
  # sandbox's oom_score_adj to the kubelet's -998: keep it at containerd's.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = %q
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
`, filepath.Join(dir, "containerd", "root"), filepath.Join(dir, "containerd", "state"), n.socket,
		filepath.Join(dir, "containerd", "opt"), bins.runc, bins.cniDir, cniConf), 0o600))
	startProcess(t, "containerd", bins.containerd, "--config", containerdConf, "--log-level", "warn")
	waitUntil(t, 30*time.Second, "containerd's socket", func() error {
		return exec.Command(bins.ctr, "--address", n.socket, "version").Run()
	})
	// Runs before containerd stops: its shims, and the containers under
	// them, would outlive it.
	t.Cleanup(func() { killContainers(t, bins.ctr, n.socket) })
	n.Images = buildNodeImages(t, dir, bins.ctr, n.socket)

	// The pod network: a bridge with host-local addresses, the node's
	// gateway on it, and hostPorts through portmap.
	require.NoError(t, os.WriteFile(filepath.Join(cniConf, "10-vigil.conflist"), fmt.Appendf(nil, `{
  "cniVersion": "1.0.0",
  "name": "vigil-test",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}],
              "dataDir": %q}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`, n.podCIDR, filepath.Join(dir, "cni-ipam")), 0o644))

	kubeletConf := filepath.Join(dir, "kubelet.yaml")
	resolv := filepath.Join(dir, "resolv.conf")
	require.NoError(t, os.WriteFile(resolv, []byte("nameserver 127.0.0.1\n"), 0o644))
	require.NoError(t, os.WriteFile(kubeletConf, fmt.Appendf(nil, `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
failSwapOn: false
address: %s
# The kubelet's well-known port: the chart's kubeletMetrics preset reaches
# the kubelet there, as on every real node.
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %d
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {}
authorization:
  mode: Webhook
containerRuntimeEndpoint: unix://%s
containerLogMaxSize: 1Mi
containerLogMaxFiles: 3
clusterDomain: cluster.local
resolvConf: %s
registerNode: true
podCIDR: %s
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {}
evictionPressureTransitionPeriod: 0s
localStorageCapacityIsolation: false
protectKernelDefaults: false
`, n.IP, freePort(t), n.socket, resolv, n.podCIDR), 0o600))
	nodeKubeconfig := filepath.Join(dir, "node.kubeconfig")
	require.NoError(t, os.WriteFile(nodeKubeconfig, fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: %q, certificate-authority: %q}
users:
- name: node
  user: {token: %q}
contexts:
- name: test
  context: {cluster: test, user: node}
current-context: test
`, k.host, k.caFile, nodeToken), 0o600))
	startKubeProxy(t, bins.proxy, dir, k, proxyToken, n.podCIDR)
	startProcess(t, "kubelet", bins.kubelet,
		"--config="+kubeletConf, "--kubeconfig="+nodeKubeconfig, "--root-dir="+n.hostPath,
		"--hostname-override="+nodeName, "--node-ip="+n.IP, "--v=1")

	waitUntil(t, 3*time.Minute, "the node to be Ready", func() error {
		node, err := k.client.CoreV1().Nodes().Get(context.Background(), nodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady {
				if c.Status == corev1.ConditionTrue {
					return nil
				}
				return fmt.Errorf("Ready=%s: %s", c.Status, c.Message)
			}
		}
		return errors.New("no Ready condition yet")
	})
	return n
}

// startKubeProxy runs kube-proxy in iptables mode, as the user the default
// RBAC policy gives the node-proxier role, and removes its rules when it
// has stopped (they would outlive it).
func startKubeProxy(t *testing.T, bin, dir string, k *kubeCluster, token, podCIDR string) {
	t.Helper()
	kubeconfig := filepath.Join(dir, "proxy.kubeconfig")
	require.NoError(t, os.WriteFile(kubeconfig, fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: %q, certificate-authority: %q}
users:
- name: proxy
  user: {token: %q}
contexts:
- name: test
  context: {cluster: test, user: proxy}
current-context: test
`, k.host, k.caFile, token), 0o600))
	conf := filepath.Join(dir, "kube-proxy.yaml")
	require.NoError(t, os.WriteFile(conf, fmt.Appendf(nil, `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: %q}
hostnameOverride: %s
mode: iptables
clusterCIDR: %s
# Leave the host's conntrack table size alone.
conntrack: {maxPerCore: 0}
metricsBindAddress: 127.0.0.1:%d
healthzBindAddress: 127.0.0.1:%d
`, kubeconfig, nodeName, podCIDR, freePort(t), freePort(t)), 0o600))
	t.Cleanup(func() {
		if out, err := exec.Command(bin, "--cleanup").CombinedOutput(); err != nil {
			t.Logf("kube-proxy --cleanup: %v %s", err, out)
		}
	})
	startProcess(t, "kube-proxy", bin, "--config="+conf, "--v=1")
}

// rootPropagation is the mount propagation of / (shared, private, ...).
func rootPropagation(t *testing.T) string {
	out, err := exec.Command("findmnt", "--noheadings", "--output", "PROPAGATION", "/").Output()
	require.NoError(t, err, "findmnt")
	return strings.TrimSpace(string(out))
}

// waitUntil polls check every half second until it returns nil, and fails
// the test with its last error after timeout.
func waitUntil(t *testing.T, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = check(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s: %v", timeout, what, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// cleanupNodeDir unmounts what the kubelet and containerd left mounted under
// dir (pod volumes, sandbox namespaces, container rootfs), deepest first,
// then removes it.
func cleanupNodeDir(t *testing.T, dir string) {
	f, err := os.Open("/proc/self/mounts")
	if err == nil {
		var mounts []string
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) > 1 && strings.HasPrefix(fields[1], dir+"/") {
				mounts = append(mounts, fields[1])
			}
		}
		f.Close()
		slices.SortFunc(mounts, func(a, b string) int { return len(b) - len(a) })
		for _, m := range mounts {
			if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
				t.Logf("unmount %s: %v", m, err)
			}
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Logf("remove %s: %v", dir, err)
	}
	// The pod network's bridge outlives the CNI plugin that made it.
	_ = exec.Command("ip", "link", "delete", "cni0").Run()
	cleanupNodeRules(t)
}

// killContainers kills and deletes every task containerd runs, so that no
// shim or container outlives the test.
func killContainers(t *testing.T, ctr, socket string) {
	c := func(args ...string) ([]byte, error) {
		return exec.Command(ctr, append([]string{"--address", socket, "--namespace", "k8s.io"}, args...)...).CombinedOutput()
	}
	out, err := c("tasks", "ls", "-q")
	if err != nil {
		t.Logf("ctr tasks ls: %v %s", err, out)
		return
	}
	ids := strings.Fields(string(out))
	for _, id := range ids {
		_, _ = c("tasks", "kill", "--all", "--signal", "SIGKILL", id)
	}
	for _, id := range ids {
		for range 20 {
			if b, err := c("tasks", "delete", "--force", id); err == nil || strings.Contains(string(b), "not found") {
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
}

// cleanupNodeRules removes the iptables rules of the node's networking that
// outlive it: the CNI plugins' NAT rules for pods the kubelet never tore
// down (it is stopped, not drained; a hostPort rule left behind DNATs every
// local connection to that port, 127.0.0.1:4317 included, to a pod that is
// gone) and the kubelet's own chains (KUBE-FIREWALL, canaries). kube-proxy
// removes its own (--cleanup).
func cleanupNodeRules(t *testing.T) {
	for _, cmd := range []string{"iptables", "ip6tables"} {
		for _, table := range []string{"nat", "filter", "mangle"} {
			cleanupChains(t, cmd, table)
		}
	}
}

// cleanupChains deletes the CNI-* and KUBE-* chains of one table, and the
// jumps to them from the built-in chains.
func cleanupChains(t *testing.T, cmd, table string) {
	out, err := exec.Command(cmd, "-t", table, "-S").Output()
	if err != nil {
		t.Logf("%s -t %s -S: %v", cmd, table, err)
		return
	}
	ours := func(chain string) bool { return strings.HasPrefix(chain, "CNI-") || strings.HasPrefix(chain, "KUBE-") }
	var chains []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "-N" && ours(f[1]):
			chains = append(chains, f[1])
		case len(f) > 2 && f[0] == "-A" && !ours(f[1]) && (strings.Contains(line, " CNI-") || strings.Contains(line, " KUBE-")):
			// A jump from a built-in chain. -S quotes comments, so run it
			// through a shell to get the same arguments back.
			if b, err := exec.Command("sh", "-c", cmd+" -t "+table+" -D "+strings.TrimPrefix(line, "-A ")).CombinedOutput(); err != nil {
				t.Logf("%s -t %s -D %s: %v %s", cmd, table, line, err, b)
			}
		}
	}
	for _, c := range chains {
		_ = exec.Command(cmd, "-t", table, "-F", c).Run()
	}
	for _, c := range chains {
		if b, err := exec.Command(cmd, "-t", table, "-X", c).CombinedOutput(); err != nil {
			t.Logf("%s -t %s -X %s: %v %s", cmd, table, c, err, b)
		}
	}
}

// TestNodeDaemonSet installs the chart on the one-node cluster with the
// locally built image and otherwise default values (the exporters pointed at
// a sink on the host), and checks what a user checks first: the agent's pod
// runs and is Ready by its probes, and a workload's stdout, read from the
// files the container runtime itself wrote under /var/log/pods as the
// chart's unprivileged user, arrives once each, long lines merged, with the
// pod's identity from the live API.
func TestNodeDaemonSet(t *testing.T) {
	bins := lookNodeBins(t) // skips unless make test-node runs it
	cleanNodeHost()
	t.Cleanup(cleanNodeHost) // after the node has stopped
	n := startNode(t, bins)
	ctx := context.Background()
	sinkPort := freePort(t)
	sink, err := otlpsink.Start(net.JoinHostPort(n.IP, fmt.Sprint(sinkPort)), true)
	require.NoError(t, err)
	t.Cleanup(sink.Stop)
	t.Cleanup(func() {
		if t.Failed() {
			dumpPodLogs(t)
		}
	})

	values := filepath.Join(n.dir, "values.yaml")
	require.NoError(t, os.WriteFile(values, fmt.Appendf(nil, `image:
  repository: vigil.test/vigil
  tag: test
  pullPolicy: Never
agent:
  initImage: {repository: vigil.test/chown, tag: "1", pullPolicy: Never}
  hostMetrics: {enabled: true, collectionInterval: 5s}
  kubeletMetrics: {enabled: true, collectionInterval: 5s}
exporters:
  otlp_grpc:
    endpoint: %s
    tls: {insecure: true}
pipelines:
  traces: [otlp_grpc]
  metrics: [otlp_grpc]
  logs: [otlp_grpc]
`, net.JoinHostPort(n.IP, fmt.Sprint(sinkPort))), 0o600))
	out, err := helm(t, "install", "vigil", chartDir, "--kubeconfig", n.kubeconfig, "--namespace", "vigil", "--create-namespace", "-f", values, "--wait=false")
	require.NoError(t, err, out)

	waitUntil(t, 3*time.Minute, "the agent's pod to be Ready", func() error {
		ds, err := n.client.AppsV1().DaemonSets("vigil").Get(ctx, "vigil-agent", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if ds.Status.NumberReady != 1 {
			return fmt.Errorf("%d of %d scheduled agent pods ready; %s", ds.Status.NumberReady, ds.Status.DesiredNumberScheduled, podStates(ctx, n, "vigil"))
		}
		return nil
	})

	_, err = n.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	// The simulated shop runs from now on (its cascade is checked below):
	// the detectors judge against a minute of healthy history first.
	simStart := time.Now()
	startShopSimulation(ctx, t, n)
	const lines, longEvery = 2000, 100
	logger, err := n.client.CoreV1().Pods("shop").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "logger"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: n.Images.Logger, ImagePullPolicy: corev1.PullNever,
			Args: []string{"-count", fmt.Sprint(lines), "-every", "5ms", "-long", fmt.Sprint(longEvery)},
		}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)

	var got map[int]int
	var attrs map[string]string
	waitUntil(t, 3*time.Minute, "every line of the logger pod at the sink", func() error {
		got, attrs = loggerLines(sink, string(logger.UID), longEvery)
		if len(got) < lines {
			return fmt.Errorf("%d of %d lines arrived (pods: %s)", len(got), lines, podStates(ctx, n, "shop"))
		}
		return nil
	})
	time.Sleep(2 * time.Second) // room for a duplicate to show up
	got, attrs = loggerLines(sink, string(logger.UID), longEvery)
	for i := 1; i <= lines; i++ {
		require.Equalf(t, 1, got[i], "line %d arrived %d times", i, got[i])
	}
	require.Equal(t, "shop", attrs["k8s.namespace.name"])
	require.Equal(t, "logger", attrs["k8s.pod.name"])
	require.Equal(t, "app", attrs["k8s.container.name"])
	// Only the live API knows these (k8s_attributes); the path gives the rest.
	require.Equal(t, nodeName, attrs["k8s.node.name"], "%v", attrs)
	require.NotEmpty(t, attrs["k8s.pod.start_time"], "no k8s.pod.start_time: k8s_attributes did not find the pod in the API (%v)", attrs)

	t.Run("OTLP to the node's agent on its hostPort", func(t *testing.T) {
		const traces = 50
		_, err := n.client.CoreV1().Pods("shop").Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "tracer"},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "app", Image: n.Images.Tracer, ImagePullPolicy: corev1.PullNever,
				Args: []string{"-count", fmt.Sprint(traces), "-service", "checkout"},
				// As the README tells users to: the node's IP from the downward API.
				Env: []corev1.EnvVar{
					{Name: "HOST_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.hostIP"}}},
					{Name: "OTEL_EXPORTER_OTLP_ENDPOINT", Value: "http://$(HOST_IP):4317"},
				},
			}}},
		}, metav1.CreateOptions{})
		require.NoError(t, err)
		waitUntil(t, 2*time.Minute, "the tracer pod's spans at the sink", func() error {
			if got := spansOf(sink, "checkout"); got < 2*traces {
				return fmt.Errorf("%d of %d spans arrived (pods: %s)", got, 2*traces, podStates(ctx, n, "shop"))
			}
			return nil
		})
	})

	t.Run("OTLP to the node's agent through the internalTrafficPolicy: Local Service", func(t *testing.T) {
		// No cluster DNS on this node: the pod is given the Service's
		// cluster IP where users write vigil-agent.vigil.svc.
		svc, err := n.client.CoreV1().Services("vigil").Get(ctx, "vigil-agent", metav1.GetOptions{})
		require.NoError(t, err)
		require.Equal(t, corev1.ServiceInternalTrafficPolicyLocal, *svc.Spec.InternalTrafficPolicy)
		const traces = 20
		_, err = n.client.CoreV1().Pods("shop").Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "tracer-svc"},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "app", Image: n.Images.Tracer, ImagePullPolicy: corev1.PullNever,
				Args: []string{"-count", fmt.Sprint(traces), "-service", "tracer-through-service"},
				Env:  []corev1.EnvVar{{Name: "OTEL_EXPORTER_OTLP_ENDPOINT", Value: "http://" + net.JoinHostPort(svc.Spec.ClusterIP, "4317")}},
			}}},
		}, metav1.CreateOptions{})
		require.NoError(t, err)
		waitUntil(t, 2*time.Minute, "the tracer-svc pod's spans at the sink", func() error {
			if got := spansOf(sink, "tracer-through-service"); got < 2*traces {
				return fmt.Errorf("%d of %d spans arrived (pods: %s)", got, 2*traces, podStates(ctx, n, "shop"))
			}
			return nil
		})
	})

	t.Run("node metrics presets: the kubelet and the host", func(t *testing.T) {
		waitUntil(t, time.Minute, "host_metrics metrics at the sink", func() error {
			if _, host := nodeMetrics(sink); !host {
				return errors.New("no system.cpu.time from host_metrics")
			}
			return nil
		})
		// kubelet_stats authenticates with the agent's ServiceAccount token,
		// which the kubelet checks with a TokenReview and authorizes as get
		// nodes/stats (SubjectAccessReview): the chart's RBAC must grant it,
		// and only it. Another ServiceAccount of the namespace is refused.
		ds, err := n.client.AppsV1().DaemonSets("vigil").Get(ctx, "vigil-agent", metav1.GetOptions{})
		require.NoError(t, err)
		code, body := kubeletGet(ctx, t, n, ds.Spec.Template.Spec.ServiceAccountName, "/stats/summary")
		require.NotContainsf(t, []int{http.StatusUnauthorized, http.StatusForbidden}, code, "the kubelet refuses the agent's ServiceAccount: %s", body)
		other, _ := kubeletGet(ctx, t, n, "default", "/stats/summary")
		require.Equal(t, http.StatusForbidden, other, "a ServiceAccount without the chart's ClusterRole")
		if code != http.StatusOK {
			// This machine's kubelet cannot stat its root filesystem
			// (cAdvisor finds no filesystem info for /dev/vda), so
			// /stats/summary fails for everyone; on a real node it answers.
			t.Logf("the kubelet authorizes the agent but answers %d: %s", code, tail(body, 300))
			return
		}
		waitUntil(t, time.Minute, "kubelet_stats metrics of the logger pod at the sink", func() error {
			if pods, _ := nodeMetrics(sink); !pods["logger"] {
				return fmt.Errorf("no k8s.pod.* metric of the logger pod from kubelet_stats (pods seen: %v)", pods)
			}
			return nil
		})
	})

	t.Run("a cascade played in the cluster fires CascadingFailure on the agent", func(t *testing.T) {
		origin := simulationOrigin(t)
		pod, err := n.client.CoreV1().Pods("vigil").Get(ctx, agentPod(ctx, t, n), metav1.GetOptions{})
		require.NoError(t, err)
		var firing string
		waitUntil(t, time.Until(simStart.Add(simFaultAfter+90*time.Second)), "a firing CascadingFailure on the agent's :8889", func() error {
			alerts, err := scrapeAlertsAt(net.JoinHostPort(pod.Status.PodIP, "8889"))
			if err != nil {
				return err
			}
			for _, l := range alerts {
				if strings.Contains(l, `alertname="CascadingFailure"`) && strings.Contains(l, `alertstate="firing"`) {
					firing = l
					return nil
				}
			}
			return fmt.Errorf("ALERTS now: %v", alerts)
		})
		t.Logf("%s after the fault started: %s", time.Since(simStart.Add(simFaultAfter)).Round(time.Second), firing)
		require.Contains(t, firing, fmt.Sprintf(`origin_service=%q`, origin))
		require.Contains(t, firing, `severity="critical"`)

		// The status page, as a user without network access to the pods
		// reaches it: through the API server's pod proxy.
		raw, err := n.client.CoreV1().RESTClient().Get().Namespace("vigil").Resource("pods").
			Name(pod.Name + ":8890").SubResource("proxy").Suffix("api/status").DoRaw(ctx)
		require.NoError(t, err, "GET the status page through the API server's pod proxy")
		var status struct {
			Alerts []struct {
				Name   string            `json:"alertname"`
				State  string            `json:"state"`
				Labels map[string]string `json:"labels"`
			} `json:"alerts"`
		}
		require.NoError(t, json.Unmarshal(raw, &status), "%s", raw)
		found := false
		for _, a := range status.Alerts {
			found = found || (a.Name == "CascadingFailure" && a.Labels["origin_service"] == origin)
		}
		require.Truef(t, found, "the status page lists no CascadingFailure naming %s: %s", origin, raw)
		page, err := n.client.CoreV1().RESTClient().Get().Namespace("vigil").Resource("pods").
			Name(pod.Name + ":8890").SubResource("proxy").Suffix("/").DoRaw(ctx)
		require.NoError(t, err)
		require.Contains(t, string(page), "<html")
	})

	t.Run("the agent stays under its memory limit with GOMEMLIMIT from it", func(t *testing.T) {
		pod, err := n.client.CoreV1().Pods("vigil").Get(ctx, agentPod(ctx, t, n), metav1.GetOptions{})
		require.NoError(t, err)
		var c *corev1.Container
		for i := range pod.Spec.Containers {
			if pod.Spec.Containers[i].Name == "vigil" {
				c = &pod.Spec.Containers[i]
			}
		}
		require.NotNil(t, c)
		limit := c.Resources.Limits.Memory().Value()
		cg := agentMemoryCgroup(t, pod)
		require.Equal(t, limit, cg.limit, "the container's cgroup limit is the chart's")
		require.Equalf(t, fmt.Sprint(limit*80/100), cg.env["GOMEMLIMIT"], "the agent process's GOMEMLIMIT (environment %v)", cg.env)
		t.Logf("agent after logs, traces, node metrics and the simulated shop: rss %d MiB, peak usage with page cache %d MiB, limit %d MiB, GOMEMLIMIT %s",
			cg.rss>>20, cg.maxUsage>>20, limit>>20, cg.env["GOMEMLIMIT"])
		require.Less(t, cg.rss, limit*80/100, "the agent's resident memory is over GOMEMLIMIT")
		for _, cs := range pod.Status.ContainerStatuses {
			require.Zerof(t, cs.RestartCount, "the agent container restarted (last state %+v)", cs.LastTerminationState)
		}
		// The shop's load has served its purpose.
		require.NoError(t, n.client.CoreV1().Pods("shop").Delete(ctx, "shop-sim", metav1.DeleteOptions{}))
	})

	t.Run("helm upgrade rolls the agent, offsets kept across it and a log rotation", func(t *testing.T) {
		old := agentPod(ctx, t, n)
		const lines2 = 4000
		logger2, err := n.client.CoreV1().Pods("shop").Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "logger-2"},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "app", Image: n.Images.Logger, ImagePullPolicy: corev1.PullNever,
				// About 40 s and 1.7 MiB: the kubelet (containerLogMaxSize
				// 1Mi, checked every 10 s) rotates the file meanwhile.
				Args: []string{"-count", fmt.Sprint(lines2), "-every", "10ms", "-long", fmt.Sprint(longEvery)},
			}}},
		}, metav1.CreateOptions{})
		require.NoError(t, err)
		time.Sleep(5 * time.Second)
		out, err := helm(t, "upgrade", "vigil", chartDir, "--kubeconfig", n.kubeconfig, "--namespace", "vigil", "-f", values,
			"--set", "agent.logs.maxLogSize=2MiB", "--wait=false")
		require.NoError(t, err, out)
		start := time.Now()
		waitUntil(t, time.Minute, "a new agent pod, Ready by its probes", func() error {
			p, err := readyAgentPod(ctx, n)
			if err != nil {
				return err
			}
			if p == old {
				return errors.New("the old agent pod is still the one running")
			}
			return nil
		})
		t.Logf("new agent pod Ready %s after helm upgrade", time.Since(start).Round(time.Second))
		waitUntil(t, 3*time.Minute, "every line of logger-2 at the sink", func() error {
			got, _ := loggerLines(sink, string(logger2.UID), longEvery)
			if len(got) < lines2 {
				return fmt.Errorf("%d of %d lines arrived (pods: %s)", len(got), lines2, podStates(ctx, n, "shop"))
			}
			return nil
		})
		time.Sleep(2 * time.Second)
		got2, _ := loggerLines(sink, string(logger2.UID), longEvery)
		got1, _ := loggerLines(sink, string(logger.UID), longEvery)
		for i := 1; i <= lines2; i++ {
			require.Equalf(t, 1, got2[i], "logger-2 line %d arrived %d times", i, got2[i])
		}
		rotated, _ := filepath.Glob(fmt.Sprintf("/var/log/pods/shop_logger-2_%s/app/0.log.*", logger2.UID))
		require.NotEmpty(t, rotated, "the kubelet did not rotate logger-2's log: the test did not cover a rotation")
		t.Logf("rotated files: %v", rotated)
		for i := 1; i <= lines; i++ {
			require.Equalf(t, 1, got1[i], "logger line %d arrived %d times after the agent was replaced (offsets lost?)", i, got1[i])
		}
	})

	t.Run("a workload container restart and the agent pod's deletion mid-stream", func(t *testing.T) {
		const lines3 = 3000
		logger3, err := n.client.CoreV1().Pods("shop").Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "logger-3"},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "app", Image: n.Images.Logger, ImagePullPolicy: corev1.PullNever,
				Args: []string{"-count", fmt.Sprint(lines3), "-every", "10ms", "-long", fmt.Sprint(longEvery)},
			}}},
		}, metav1.CreateOptions{})
		require.NoError(t, err)
		uid := string(logger3.UID)
		// Kill the container in the middle of its output, as an OOM kill
		// or a crash would: the kubelet starts it again (restart 1, a new
		// file 1.log) and it writes all its lines again.
		var containerID string
		waitUntil(t, time.Minute, "logger-3 running", func() error {
			p, err := n.client.CoreV1().Pods("shop").Get(ctx, "logger-3", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if len(p.Status.ContainerStatuses) == 0 || p.Status.ContainerStatuses[0].State.Running == nil {
				return fmt.Errorf("not running: %s", podStates(ctx, n, "shop"))
			}
			containerID = strings.TrimPrefix(p.Status.ContainerStatuses[0].ContainerID, "containerd://")
			return nil
		})
		time.Sleep(5 * time.Second)
		out, err := exec.Command(n.ctr, "--address", n.socket, "--namespace", "k8s.io", "tasks", "kill", "--signal", "SIGKILL", containerID).CombinedOutput()
		require.NoError(t, err, "ctr tasks kill: %s", out)
		waitUntil(t, time.Minute, "logger-3's container restarted", func() error {
			p, err := n.client.CoreV1().Pods("shop").Get(ctx, "logger-3", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if cs := p.Status.ContainerStatuses; len(cs) == 0 || cs[0].RestartCount < 1 || cs[0].State.Running == nil {
				return fmt.Errorf("not restarted yet: %s", podStates(ctx, n, "shop"))
			}
			return nil
		})
		// While the restarted container writes, the agent's pod is deleted;
		// the DaemonSet controller makes a new one, which must go on from
		// the offsets the old one kept on the node.
		time.Sleep(8 * time.Second)
		old := agentPod(ctx, t, n)
		require.NoError(t, n.client.CoreV1().Pods("vigil").Delete(ctx, old, metav1.DeleteOptions{}))
		waitUntil(t, time.Minute, "the DaemonSet's new agent pod, Ready", func() error {
			p, err := readyAgentPod(ctx, n)
			if err != nil {
				return err
			}
			if p == old {
				return errors.New("the deleted agent pod is still the one running")
			}
			return nil
		})

		// The first run's lines are the ones the runtime wrote before the
		// kill, read back from its file; the second run's are all of them.
		first := criFileLines(t, fmt.Sprintf("/var/log/pods/shop_logger-3_%s/app/0.log*", uid), longEvery)
		require.NotEmpty(t, first, "the first run wrote nothing before the kill")
		require.Less(t, len(first), lines3, "the kill came after the first run's last line: no restart mid-stream")
		waitUntil(t, 3*time.Minute, "every line of both runs of logger-3 at the sink", func() error {
			got0 := loggerRunLines(sink, uid, "0", longEvery)
			got1 := loggerRunLines(sink, uid, "1", longEvery)
			if len(got0) < len(first) || len(got1) < lines3 {
				return fmt.Errorf("run 0: %d of %d lines, run 1: %d of %d (pods: %s)", len(got0), len(first), len(got1), lines3, podStates(ctx, n, "shop"))
			}
			return nil
		})
		time.Sleep(2 * time.Second)
		require.Equal(t, first, loggerRunLines(sink, uid, "0", longEvery), "the killed run's lines at the sink are not exactly the ones in its file")
		got1 := loggerRunLines(sink, uid, "1", longEvery)
		for i := 1; i <= lines3; i++ {
			require.Equalf(t, 1, got1[i], "logger-3 (restart 1) line %d arrived %d times across the agent pod's deletion", i, got1[i])
		}
		t.Logf("run 0: %d lines before the kill; run 1: %d lines, the agent pod deleted in the middle", len(first), lines3)
	})
}

// The simulated shop's fault: the detectors learn a minute of healthy
// traffic first.
const simFaultAfter = 60 * time.Second

// startShopSimulation runs `vigil simulate` from the Vigil image as a pod
// that sends to its node's agent on the hostPort, as an instrumented pod
// would: a leaf service starts failing after simFaultAfter, and the failure
// spreads to its callers.
func startShopSimulation(ctx context.Context, t *testing.T, n *kubeNode) {
	t.Helper()
	_, err := n.client.CoreV1().Pods("shop").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "shop-sim"},
		Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{
			Name: "sim", Image: n.Images.Vigil, ImagePullPolicy: corev1.PullNever,
			Args: []string{"simulate", "--endpoint", "$(HOST_IP):4317", "--scenario", "error-dependency", "--seed", "3",
				"--fault-after", simFaultAfter.String(), "--fault-duration", "5m", "--duration", "10m"},
			Env: []corev1.EnvVar{{Name: "HOST_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.hostIP"}}}},
		}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
}

// simulationOrigin is the ground truth the simulation printed first: the
// service its fault starts at, read from the file the runtime wrote.
func simulationOrigin(t *testing.T) string {
	t.Helper()
	re := regexp.MustCompile(`origin (\S+),`)
	var origin string
	waitUntil(t, time.Minute, "the simulation's ground truth in its log", func() error {
		files, _ := filepath.Glob("/var/log/pods/shop_shop-sim_*/sim/0.log")
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return err
			}
			if m := re.FindSubmatch(b); m != nil {
				origin = string(m[1])
				return nil
			}
		}
		return fmt.Errorf("no ground truth line yet in %v", files)
	})
	return origin
}

// kubeletGet calls the node's kubelet as a ServiceAccount of the vigil
// namespace would (a token from the TokenRequest API, the kubelet's
// self-signed serving certificate not verified, as the chart's default).
func kubeletGet(ctx context.Context, t *testing.T, n *kubeNode, serviceAccount, path string) (int, string) {
	t.Helper()
	if serviceAccount == "default" {
		// The namespace's default ServiceAccount appears asynchronously.
		waitUntil(t, 30*time.Second, "the default ServiceAccount", func() error {
			_, err := n.client.CoreV1().ServiceAccounts("vigil").Get(ctx, "default", metav1.GetOptions{})
			return err
		})
	}
	tok, err := n.client.CoreV1().ServiceAccounts("vigil").CreateToken(ctx, serviceAccount, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	require.NoError(t, err)
	c := http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+net.JoinHostPort(n.IP, "10250")+path, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+tok.Status.Token)
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b)
}

// scrapeAlertsAt returns the ALERTS lines of a Prometheus exposition.
func scrapeAlertsAt(addr string) ([]string, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out []string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if l := sc.Text(); strings.HasPrefix(l, "ALERTS{") {
			out = append(out, l)
		}
	}
	return out, sc.Err()
}

// nodeMetrics reports which pods kubelet_stats sent k8s.pod.* metrics for,
// and whether host_metrics sent system.cpu.time.
func nodeMetrics(sink *otlpsink.Sink) (pods map[string]bool, host bool) {
	pods = map[string]bool{}
	for _, md := range sink.Metrics() {
		for _, rm := range md.ResourceMetrics().All() {
			pod, hasPod := rm.Resource().Attributes().Get("k8s.pod.name")
			for _, sm := range rm.ScopeMetrics().All() {
				for _, m := range sm.Metrics().All() {
					switch {
					case strings.HasPrefix(m.Name(), "k8s.pod.") && hasPod:
						pods[pod.AsString()] = true
					case m.Name() == "system.cpu.time":
						host = true
					}
				}
			}
		}
	}
	return pods, host
}

// memoryCgroup is what the kernel says of the agent container's memory.
type memoryCgroup struct {
	limit, rss, maxUsage int64
	env                  map[string]string // of the container's first process
}

// agentMemoryCgroup reads the agent container's cgroup v1 memory controller
// (the kubelet's cgroupfs layout: kubepods/<qos>/pod<uid>/<container id>)
// and its process's environment.
func agentMemoryCgroup(t *testing.T, pod *corev1.Pod) memoryCgroup {
	t.Helper()
	var cid string
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name == "vigil" {
			cid = strings.TrimPrefix(cs.ContainerID, "containerd://")
		}
	}
	require.NotEmpty(t, cid)
	var dirs []string
	for _, pat := range []string{"/sys/fs/cgroup/memory/kubepods/pod%s/%s", "/sys/fs/cgroup/memory/kubepods/*/pod%s/%s"} {
		m, _ := filepath.Glob(fmt.Sprintf(pat, pod.UID, cid))
		dirs = append(dirs, m...)
	}
	require.Lenf(t, dirs, 1, "the agent container's memory cgroup (pod %s, container %s)", pod.UID, cid)
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dirs[0], name))
		require.NoError(t, err)
		return strings.TrimSpace(string(b))
	}
	num := func(s string) int64 {
		v, err := strconv.ParseInt(s, 10, 64)
		require.NoError(t, err)
		return v
	}
	cg := memoryCgroup{limit: num(read("memory.limit_in_bytes")), maxUsage: num(read("memory.max_usage_in_bytes")), env: map[string]string{}}
	for _, l := range strings.Split(read("memory.stat"), "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == "total_rss" {
			cg.rss = num(f[1])
		}
	}
	pids := strings.Fields(read("cgroup.procs"))
	require.NotEmpty(t, pids)
	environ, err := os.ReadFile("/proc/" + pids[0] + "/environ")
	require.NoError(t, err)
	for _, kv := range strings.Split(string(environ), "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			cg.env[k] = v
		}
	}
	return cg
}

// criFileLines reads the container log files matching glob (CRI format:
// time, stream, P for a partial line or F for the last part, content) and
// counts the logger's whole lines by number, as loggerLines does at the
// sink: the ground truth of what the runtime wrote. Rotated, compressed
// files are not read.
func criFileLines(t *testing.T, glob string, longEvery int) map[int]int {
	t.Helper()
	files, err := filepath.Glob(glob)
	require.NoError(t, err)
	got := map[int]int{}
	for _, f := range files {
		require.Falsef(t, strings.HasSuffix(f, ".gz"), "%s is compressed: the test wrote more than it can check", f)
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		var line strings.Builder
		for _, l := range strings.Split(string(b), "\n") {
			parts := strings.SplitN(l, " ", 4)
			if len(parts) < 4 {
				continue
			}
			line.WriteString(parts[3])
			if parts[2] == "P" {
				continue
			}
			if num, ok := loggerLineNumber(line.String(), longEvery); ok {
				got[num]++
			}
			line.Reset()
		}
	}
	return got
}

// loggerLineNumber is the number of one of the logger's lines, if body is
// one of them whole (a long line not merged is not).
func loggerLineNumber(body string, longEvery int) (int, bool) {
	var num int
	if _, err := fmt.Sscanf(body, "line %d", &num); err != nil {
		return 0, false
	}
	want := len(fmt.Sprintf("line %d", num))
	if num%longEvery == 0 {
		want += 1 + 40<<10
	}
	return num, len(strings.TrimRight(body, "\n")) == want
}

// loggerRunLines counts, by number, the lines at the sink of one run
// (k8s.container.restart_count) of the logger pod with uid.
func loggerRunLines(sink *otlpsink.Sink, uid, restart string, longEvery int) map[int]int {
	got := map[int]int{}
	for _, ld := range sink.Logs() {
		for _, rl := range ld.ResourceLogs().All() {
			attrs := rl.Resource().Attributes()
			if v, ok := attrs.Get("k8s.pod.uid"); !ok || v.AsString() != uid {
				continue
			}
			if v, ok := attrs.Get("k8s.container.restart_count"); !ok || v.AsString() != restart {
				continue
			}
			for _, sl := range rl.ScopeLogs().All() {
				for _, rec := range sl.LogRecords().All() {
					if num, ok := loggerLineNumber(rec.Body().AsString(), longEvery); ok {
						got[num]++
					}
				}
			}
		}
	}
	return got
}

// agentPod is the name of the agent's pod, which must be Ready.
func agentPod(ctx context.Context, t *testing.T, n *kubeNode) string {
	t.Helper()
	p, err := readyAgentPod(ctx, n)
	require.NoError(t, err)
	return p
}

func readyAgentPod(ctx context.Context, n *kubeNode) (string, error) {
	pods, err := n.client.CoreV1().Pods("vigil").List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=agent"})
	if err != nil {
		return "", err
	}
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				return p.Name, nil
			}
		}
	}
	return "", fmt.Errorf("no Ready agent pod: %s", podStates(ctx, n, "vigil"))
}

// spansOf counts the spans of service at the sink.
func spansOf(sink *otlpsink.Sink, service string) int {
	n := 0
	for _, td := range sink.Traces() {
		for i := 0; i < td.ResourceSpans().Len(); i++ {
			rs := td.ResourceSpans().At(i)
			if v, ok := rs.Resource().Attributes().Get("service.name"); !ok || v.AsString() != service {
				continue
			}
			for j := 0; j < rs.ScopeSpans().Len(); j++ {
				n += rs.ScopeSpans().At(j).Spans().Len()
			}
		}
	}
	return n
}

// cleanNodeHost removes what an earlier run's pods left on the host: their
// logs would be read again (start_at: beginning), and the agent's offsets.
func cleanNodeHost() {
	_ = os.RemoveAll("/var/lib/vigil")
	for _, ns := range []string{"vigil", "shop"} {
		dirs, _ := filepath.Glob("/var/log/pods/" + ns + "_*")
		for _, d := range dirs {
			_ = os.RemoveAll(d)
		}
	}
}

// loggerLines counts the lines of the logger pod with uid at the sink by
// number; a line whose body is not whole (a long line not merged) is not
// counted. attrs are the resource attributes of one of them.
func loggerLines(sink *otlpsink.Sink, uid string, longEvery int) (map[int]int, map[string]string) {
	got := map[int]int{}
	attrs := map[string]string{}
	for _, ld := range sink.Logs() {
		for i := 0; i < ld.ResourceLogs().Len(); i++ {
			rl := ld.ResourceLogs().At(i)
			if v, ok := rl.Resource().Attributes().Get("k8s.pod.uid"); !ok || v.AsString() != uid {
				continue
			}
			for j := 0; j < rl.ScopeLogs().Len(); j++ {
				recs := rl.ScopeLogs().At(j).LogRecords()
				for k := 0; k < recs.Len(); k++ {
					num, ok := loggerLineNumber(recs.At(k).Body().AsString(), longEvery)
					if !ok {
						continue
					}
					got[num]++
					rl.Resource().Attributes().Range(func(k string, v pcommon.Value) bool {
						attrs[k] = v.AsString()
						return true
					})
				}
			}
		}
	}
	return got, attrs
}

// podStates is a one-line summary of a namespace's pods, for wait messages.
func podStates(ctx context.Context, n *kubeNode, ns string) string {
	pods, err := n.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, p := range pods.Items {
		fmt.Fprintf(&b, "%s %s", p.Name, p.Status.Phase)
		for _, cs := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
			switch {
			case cs.State.Waiting != nil:
				fmt.Fprintf(&b, " [%s waiting: %s %s]", cs.Name, cs.State.Waiting.Reason, cs.State.Waiting.Message)
			case cs.State.Terminated != nil:
				fmt.Fprintf(&b, " [%s terminated: %s %d]", cs.Name, cs.State.Terminated.Reason, cs.State.Terminated.ExitCode)
			default:
				fmt.Fprintf(&b, " [%s ready=%v restarts=%d]", cs.Name, cs.Ready, cs.RestartCount)
			}
		}
		b.WriteString("; ")
	}
	return b.String()
}

// dumpPodLogs logs the tail of every container log the runtime wrote on the
// node (the agent's included), for a failed test.
func dumpPodLogs(t *testing.T) {
	files, _ := filepath.Glob("/var/log/pods/*/*/*.log")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		t.Logf("%s (tail):\n%s", f, tail(string(b), 4000))
	}
}
