package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
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
	APIPort  string
	dir      string
	socket   string // containerd's
	Images   nodeImages
	ctr      string
	podCIDR  string
	hostPath string // where the kubelet keeps pods (under dir)
}

// nodeBins are the binaries the node needs, from KUBE_BIN_DIR and PATH.
type nodeBins struct {
	apiserver, controllerManager, scheduler, kubelet string
	etcd, containerd, ctr, runc                      string
	cniDir                                           string
}

func lookNodeBins(t *testing.T) nodeBins {
	dir := os.Getenv("KUBE_BIN_DIR")
	if dir == "" {
		t.Skip("set KUBE_BIN_DIR to the kube-apiserver, kube-controller-manager, kube-scheduler and kubelet binaries (make test-node)")
	}
	if os.Geteuid() != 0 {
		t.Skip("the kubelet and containerd need root")
	}
	b := nodeBins{
		apiserver: filepath.Join(dir, "kube-apiserver"), controllerManager: filepath.Join(dir, "kube-controller-manager"),
		scheduler: filepath.Join(dir, "kube-scheduler"), kubelet: filepath.Join(dir, "kubelet"),
		cniDir: "/usr/lib/cni",
	}
	for _, p := range []string{b.apiserver, b.controllerManager, b.scheduler, b.kubelet, filepath.Join(b.cniDir, "bridge"), filepath.Join(b.cniDir, "host-local"), filepath.Join(b.cniDir, "loopback"), filepath.Join(b.cniDir, "portmap")} {
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

	const nodeToken = "vigil-test-node-token"
	k := startKube(t, bins.apiserver, bins.etcd, kubeOptions{
		Address: n.IP, Dir: filepath.Join(dir, "control"),
		Tokens: []string{nodeToken + ",system:node:" + nodeName + ",node-uid,system:nodes"},
		Args:   []string{"--authorization-mode=Node,RBAC", "--allow-privileged=true", "--kubelet-preferred-address-types=InternalIP"},
	})
	n.kubeCluster = k
	_, n.APIPort, _ = net.SplitHostPort(strings.TrimPrefix(k.host, "https://"))

	startProcess(t, "kube-controller-manager", bins.controllerManager,
		"--kubeconfig="+k.kubeconfig, "--authentication-kubeconfig="+k.kubeconfig, "--authorization-kubeconfig="+k.kubeconfig,
		"--root-ca-file="+k.caFile, "--service-account-private-key-file="+k.saKey,
		"--leader-elect=false", "--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", freePort(t)),
		"--controllers=*", "--use-service-account-credentials=false", "--v=1")
	startProcess(t, "kube-scheduler", bins.scheduler,
		"--kubeconfig="+k.kubeconfig, "--authentication-kubeconfig="+k.kubeconfig, "--authorization-kubeconfig="+k.kubeconfig,
		"--leader-elect=false", "--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", freePort(t)), "--v=1")

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
port: %d
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
`, n.IP, freePort(t), freePort(t), n.socket, resolv, n.podCIDR), 0o600))
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
	cleanupCNIRules(t)
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

// cleanupCNIRules removes the NAT rules the CNI plugins added for pods the
// kubelet never tore down (it is stopped, not drained). A hostPort rule left
// behind DNATs every local connection to that port, 127.0.0.1:4317
// included, to a pod that is gone.
func cleanupCNIRules(t *testing.T) {
	out, err := exec.Command("iptables", "-t", "nat", "-S").Output()
	if err != nil {
		t.Logf("iptables -t nat -S: %v", err)
		return
	}
	var chains []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "-N" && (strings.HasPrefix(f[1], "CNI-") || f[1] == "KUBE-KUBELET-CANARY"):
			chains = append(chains, f[1])
		case len(f) > 2 && f[0] == "-A" && !strings.HasPrefix(f[1], "CNI-") && strings.Contains(line, "CNI-"):
			// A jump from a built-in chain. -S quotes comments, so run it
			// through a shell to get the same arguments back.
			if b, err := exec.Command("sh", "-c", "iptables -t nat -D "+strings.TrimPrefix(line, "-A ")).CombinedOutput(); err != nil {
				t.Logf("iptables -t nat -D %s: %v %s", line, err, b)
			}
		}
	}
	for _, c := range chains {
		_ = exec.Command("iptables", "-t", "nat", "-F", c).Run()
	}
	for _, c := range chains {
		if b, err := exec.Command("iptables", "-t", "nat", "-X", c).CombinedOutput(); err != nil {
			t.Logf("iptables -t nat -X %s: %v %s", c, err, b)
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
  # No kube-proxy on this node: the agent reaches the API server directly.
  extraEnv:
    - {name: KUBERNETES_SERVICE_HOST, value: %q}
    - {name: KUBERNETES_SERVICE_PORT, value: %q}
exporters:
  otlp_grpc:
    endpoint: %s
    tls: {insecure: true}
pipelines:
  traces: [otlp_grpc]
  metrics: [otlp_grpc]
  logs: [otlp_grpc]
`, n.IP, n.APIPort, net.JoinHostPort(n.IP, fmt.Sprint(sinkPort))), 0o600))
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
			if v, _ := rs.Resource().Attributes().Get("service.name"); v.AsString() != service {
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
			if v, _ := rl.Resource().Attributes().Get("k8s.pod.uid"); v.AsString() != uid {
				continue
			}
			for j := 0; j < rl.ScopeLogs().Len(); j++ {
				recs := rl.ScopeLogs().At(j).LogRecords()
				for k := 0; k < recs.Len(); k++ {
					body := recs.At(k).Body().AsString()
					var num int
					if _, err := fmt.Sscanf(body, "line %d", &num); err != nil {
						continue
					}
					want := len(fmt.Sprintf("line %d", num))
					if num%longEvery == 0 {
						want += 1 + 40<<10
					}
					if len(strings.TrimRight(body, "\n")) != want {
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
