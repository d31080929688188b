package parse

import "strings"

// PodPath is what the kubelet's layout says of a container log file:
// <pod logs dir>/<namespace>_<pod>_<uid>/<container>/<restart>.log
// (pkg/kubelet/kuberuntime's BuildContainerLogsDirectory). Its fields are
// substrings of the path given to ParsePodPath.
type PodPath struct {
	Namespace, Pod, UID, Container, RestartCount string
}

// ParsePodPath reads the kubelet's layout from the last three elements of a
// container log file's path; whatever precedes them is not looked at (the
// pod logs directory is configurable, and the agent may see it under a host
// root mount such as /hostfs). The file may also be a rotated one,
// <restart>.log.<YYYYMMDD-hhmmss>, or a compressed rotated one with ".gz"
// after that (which the caller skips); anything else (such as the kubelet's
// ".tmp" files) is not a container log. Both '/' and '\' (Windows nodes)
// separate elements. It returns false for a path of any other shape, or whose
// names could not be Kubernetes names: the namespace and container must be
// DNS labels, the pod name a DNS subdomain (neither can hold '_', so the
// directory has exactly three '_' fields), the UID letters, digits and '-',
// the restart count decimal digits. ParsePodPath does not allocate.
func ParsePodPath(path string) (PodPath, bool) {
	rest, file := lastElem(path)
	rest, container := lastElem(rest)
	_, dir := lastElem(rest)

	// File: <restart>.log[.<YYYYMMDD-hhmmss>[.gz]]
	n := 0
	for n < len(file) && file[n] >= '0' && file[n] <= '9' {
		n++
	}
	if n == 0 || n > 10 || !strings.HasPrefix(file[n:], ".log") {
		return PodPath{}, false
	}
	if suffix := file[n+len(".log"):]; suffix != "" && !isRotationStamp(strings.TrimSuffix(suffix, ".gz")) {
		return PodPath{}, false
	}

	ns, podUID, ok1 := strings.Cut(dir, "_")
	pod, uid, ok2 := strings.Cut(podUID, "_")
	if !ok1 || !ok2 || !isDNSLabel(ns) || !isDNSSubdomain(pod) || !isUID(uid) || !isDNSLabel(container) {
		return PodPath{}, false
	}
	return PodPath{Namespace: ns, Pod: pod, UID: uid, Container: container, RestartCount: file[:n]}, true
}

// lastElem splits path at its last separator.
func lastElem(path string) (dir, elem string) {
	i := strings.LastIndexAny(path, `/\`)
	if i < 0 {
		return "", path
	}
	return path[:i], path[i+1:]
}

// isRotationStamp reports whether s is ".YYYYMMDD-hhmmss", the suffix the
// kubelet's container log manager gives a rotated file (timestampFormat in
// pkg/kubelet/logs).
func isRotationStamp(s string) bool {
	if len(s) != len(".20060102-150405") || s[0] != '.' || s[9] != '-' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if i != 9 && (s[i] < '0' || s[i] > '9') {
			return false
		}
	}
	return true
}

// isDNSLabel reports whether s is an RFC 1123 label: at most 63 lowercase
// letters, digits and '-', starting and ending with a letter or digit.
func isDNSLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// isDNSSubdomain reports whether s is an RFC 1123 subdomain: at most 253
// bytes of labels separated by '.'.
func isDNSSubdomain(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for s != "" {
		label, rest, _ := strings.Cut(s, ".")
		if !isDNSLabel(label) {
			return false
		}
		if len(rest) == 0 && len(label) < len(s) { // trailing '.'
			return false
		}
		s = rest
	}
	return true
}

// isUID reports whether s can be a pod UID: a UUID from the API server, or
// the hex hash the kubelet gives a static pod.
func isUID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
