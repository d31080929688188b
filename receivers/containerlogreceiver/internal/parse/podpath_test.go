package parse

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestParsePodPath(t *testing.T) {
	web := PodPath{Namespace: "default", Pod: "web-7d4b9c8f6-x2x7k", UID: "4b1c5a0e-2f3d-4e5a-9b8c-7d6e5f4a3b2c", Container: "nginx", RestartCount: "0"}
	tests := []struct {
		path string
		want PodPath
		ok   bool
	}{
		{path: "/var/log/pods/default_web-7d4b9c8f6-x2x7k_4b1c5a0e-2f3d-4e5a-9b8c-7d6e5f4a3b2c/nginx/0.log", want: web, ok: true},
		{path: "/hostfs/var/log/pods/default_web-7d4b9c8f6-x2x7k_4b1c5a0e-2f3d-4e5a-9b8c-7d6e5f4a3b2c/nginx/0.log", want: web, ok: true},
		{path: "default_web-7d4b9c8f6-x2x7k_4b1c5a0e-2f3d-4e5a-9b8c-7d6e5f4a3b2c/nginx/0.log", want: web, ok: true},
		{path: "/var/log/pods/default_web-7d4b9c8f6-x2x7k_4b1c5a0e-2f3d-4e5a-9b8c-7d6e5f4a3b2c/nginx/0.log.20240115-103000", want: web, ok: true},
		{path: "/var/log/pods/default_web-7d4b9c8f6-x2x7k_4b1c5a0e-2f3d-4e5a-9b8c-7d6e5f4a3b2c/nginx/0.log.20240115-103000.gz", want: web, ok: true},
		{
			path: "/var/log/pods/kube-system_kube-apiserver-node-1.example.com_3c2a8f9b0d1e4f5a6b7c8d9e0f1a2b3c/kube-apiserver/12.log",
			want: PodPath{Namespace: "kube-system", Pod: "kube-apiserver-node-1.example.com", UID: "3c2a8f9b0d1e4f5a6b7c8d9e0f1a2b3c", Container: "kube-apiserver", RestartCount: "12"},
			ok:   true,
		},
		{
			path: `C:\var\log\pods\default_web-7d4b9c8f6-x2x7k_4b1c5a0e-2f3d-4e5a-9b8c-7d6e5f4a3b2c\nginx\0.log`,
			want: web, ok: true,
		},
		// Not the kubelet's layout.
		{path: ""},
		{path: "/"},
		{path: "0.log"},
		{path: "nginx/0.log"},
		{path: "/var/log/containers/web-7d4b9c8f6-x2x7k_default_nginx-0123456789abcdef.log"},
		{path: "/var/log/pods/default_web_uid/nginx/0.log.20240115-103000.gz.tmp"},
		{path: "/var/log/pods/default_web_uid/nginx/0.log.tmp"},
		{path: "/var/log/pods/default_web_uid/nginx/0.log.2024011-103000"},
		{path: "/var/log/pods/default_web_uid/nginx/0.log.20240115_103000"},
		{path: "/var/log/pods/default_web_uid/nginx/0.txt"},
		{path: "/var/log/pods/default_web_uid/nginx/.log"},
		{path: "/var/log/pods/default_web_uid/nginx/-1.log"},
		{path: "/var/log/pods/default_web_uid/nginx/12345678901.log"},
		{path: "/var/log/pods/default_web_uid/nginx/0.logx"},
		{path: "/var/log/pods/default_web_uid//0.log"},
		{path: "/var/log/pods/default_web_uid/Nginx/0.log"},
		{path: "/var/log/pods/default_web_uid/nginx_1/0.log"},
		{path: "/var/log/pods/default_web/nginx/0.log"},
		{path: "/var/log/pods/default_web_uid_more/nginx/0.log"},
		{path: "/var/log/pods/_web_uid/nginx/0.log"},
		{path: "/var/log/pods/default__uid/nginx/0.log"},
		{path: "/var/log/pods/default_web_/nginx/0.log"},
		{path: "/var/log/pods/Default_web_uid/nginx/0.log"},
		{path: "/var/log/pods/default_web._uid/nginx/0.log"},
		{path: "/var/log/pods/default_-web_uid/nginx/0.log"},
		{path: "/var/log/pods/default_web_u.id/nginx/0.log"},
		{path: "/var/log/pods/4b1c5a0e-2f3d-4e5a-9b8c-7d6e5f4a3b2c/nginx_0.log"}, // kubelet before 1.14
		{path: "/var/log/syslog"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			got, ok := ParsePodPath(tt.path)
			assert.Equal(t, tt.ok, ok)
			assert.Equal(t, tt.want, got)
		})
	}
	assert.True(t, func() bool { _, ok := ParsePodPath("/var/log/pods/default_web_uid/nginx/0.log"); return ok }())
}

func TestParsePodPathNoAlloc(t *testing.T) {
	path := "/var/log/pods/default_web-7d4b9c8f6-x2x7k_4b1c5a0e-2f3d-4e5a-9b8c-7d6e5f4a3b2c/nginx/0.log"
	assert.Zero(t, testing.AllocsPerRun(100, func() { _, _ = ParsePodPath(path) }))
}
