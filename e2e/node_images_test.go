package e2e

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/stretchr/testify/require"
)

// The node test's images are built here, from local files only (nothing can
// be pulled on these machines), with go-containerregistry, and imported into
// containerd's k8s.io namespace with ctr: Vigil's image laid out as the
// Dockerfile's (the static binary, the container config, CA certificates and
// the distroless nonroot user, run as 65532), a pause image for the pod
// sandboxes, and small static Go programs for the workload pods.

// imageFile is one file of an image layer.
type imageFile struct {
	data []byte
	mode int64
}

// buildImage writes ref as a docker-archive tarball holding one layer with
// files (directories are added as needed) and the given config.
func buildImage(t *testing.T, dir, ref string, files map[string]imageFile, cfg v1.Config) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	dirs := map[string]bool{}
	mtime := time.Unix(0, 0)
	for _, p := range paths {
		parts := strings.Split(p, "/")
		for i := 1; i < len(parts); i++ {
			d := strings.Join(parts[:i], "/") + "/"
			if dirs[d] {
				continue
			}
			dirs[d] = true
			mode := int64(0o755)
			if d == "tmp/" {
				mode = 0o1777
			}
			require.NoError(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: mode, ModTime: mtime}))
		}
		f := files[p]
		require.NoError(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: p, Mode: f.mode, Size: int64(len(f.data)), ModTime: mtime}))
		_, err := tw.Write(f.data)
		require.NoError(t, err)
	}
	if !dirs["tmp/"] {
		require.NoError(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777, ModTime: mtime}))
	}
	require.NoError(t, tw.Close())
	layerBytes := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerBytes)), nil
	})
	require.NoError(t, err)
	img, err := mutate.AppendLayers(empty.Image, layer)
	require.NoError(t, err)
	cf, err := img.ConfigFile()
	require.NoError(t, err)
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Config = "linux", "amd64", cfg
	img, err = mutate.ConfigFile(img, cf)
	require.NoError(t, err)
	tag, err := name.NewTag(ref, name.StrictValidation)
	require.NoError(t, err)
	out := filepath.Join(dir, strings.NewReplacer("/", "_", ":", "_").Replace(ref)+".tar")
	require.NoError(t, tarball.WriteToFile(out, tag, img))
	return out
}

// staticBinary reads a binary for an image and fails unless it is statically
// linked: scratch-style images have no libc.
func staticBinary(t *testing.T, path string) []byte {
	t.Helper()
	f, err := elf.Open(path)
	require.NoError(t, err)
	defer f.Close()
	for _, p := range f.Progs {
		require.NotEqualf(t, elf.PT_INTERP, p.Type, "%s is dynamically linked; build it with CGO_ENABLED=0 (make build does)", path)
	}
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}

// buildHelper compiles one of the node test's small programs
// (testdata/nodeimages/<name>) as a static binary.
func buildHelper(t *testing.T, dir, name string) []byte {
	t.Helper()
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, "./testdata/nodeimages/"+name)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	b, err := cmd.CombinedOutput()
	require.NoErrorf(t, err, "build %s: %s", name, b)
	return staticBinary(t, out)
}

// nodeImages are the references of the images the node test imports.
type nodeImages struct {
	Vigil, Pause, Logger, Tracer, Chown string
}

// buildNodeImages builds every image the node test needs and imports them
// into containerd (ctr on socket, namespace k8s.io).
func buildNodeImages(t *testing.T, dir, ctr, socket string) nodeImages {
	t.Helper()
	imgs := nodeImages{Vigil: "vigil.test/vigil:test", Pause: "vigil.test/pause:1", Logger: "vigil.test/logger:1", Tracer: "vigil.test/tracer:1", Chown: "vigil.test/chown:1"}
	passwd := imageFile{data: []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"), mode: 0o644}
	group := imageFile{data: []byte("root:x:0:\nnonroot:x:65532:\n"), mode: 0o644}
	container, err := os.ReadFile("../deploy/docker/container.yaml")
	require.NoError(t, err)
	vigilFiles := map[string]imageFile{
		"usr/bin/vigil":            {data: staticBinary(t, vigilBin), mode: 0o755},
		"etc/vigil/container.yaml": {data: container, mode: 0o644},
		"etc/passwd":               passwd,
		"etc/group":                group,
		"home/nonroot/.keep":       {mode: 0o644},
	}
	if ca, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt"); err == nil {
		vigilFiles["etc/ssl/certs/ca-certificates.crt"] = imageFile{data: ca, mode: 0o644}
	}
	tars := []string{
		buildImage(t, dir, imgs.Vigil, vigilFiles, v1.Config{
			User: "65532:65532", Entrypoint: []string{"/usr/bin/vigil"},
			Cmd: []string{"--config", "vigil:default", "--config", "/etc/vigil/container.yaml"},
		}),
		buildImage(t, dir, imgs.Pause, map[string]imageFile{"pause": {data: buildHelper(t, dir, "pause"), mode: 0o755}},
			v1.Config{Entrypoint: []string{"/pause"}, User: "65535:65535"}),
		buildImage(t, dir, imgs.Logger, map[string]imageFile{"logger": {data: buildHelper(t, dir, "logger"), mode: 0o755}, "etc/passwd": passwd, "etc/group": group},
			v1.Config{Entrypoint: []string{"/logger"}, User: "65532:65532"}),
		buildImage(t, dir, imgs.Tracer, map[string]imageFile{"tracer": {data: buildHelper(t, dir, "tracer"), mode: 0o755}, "etc/passwd": passwd, "etc/group": group},
			v1.Config{Entrypoint: []string{"/tracer"}, User: "65532:65532"}),
		// The chart's storage init container runs `chown UID:GID DIR`.
		buildImage(t, dir, imgs.Chown, map[string]imageFile{"bin/chown": {data: buildHelper(t, dir, "chown"), mode: 0o755}},
			v1.Config{Env: []string{"PATH=/bin"}}),
	}
	for _, tarPath := range tars {
		out, err := exec.Command(ctr, "--address", socket, "--namespace", "k8s.io", "images", "import", tarPath).CombinedOutput()
		require.NoErrorf(t, err, "ctr images import %s: %s", tarPath, out)
	}
	return imgs
}
