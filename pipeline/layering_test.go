package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/vigilhq/vigil/"

// TestLayering checks the layering of what the binary links (docs/CONVENTIONS.md):
// components never import one another (what they share has one owner in
// internal/), harnesses under testkit/ and tools under scripts/ never ship,
// and one Vigil package imports github.com/prometheus/prometheus.
func TestLayering(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "-json=ImportPath,Imports,Standard", "../cmd/vigil")
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	var promImporters []string
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct {
			ImportPath string
			Imports    []string
			Standard   bool
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if p.Standard || !strings.HasPrefix(p.ImportPath, module) {
			continue
		}
		rel := strings.TrimPrefix(p.ImportPath, module)
		if top, _, _ := strings.Cut(rel, "/"); top == "testkit" || top == "scripts" {
			t.Errorf("%s is linked into the binary; testkit/ and scripts/ are for tests and tools", p.ImportPath)
		}
		own := componentOf(rel)
		for _, imp := range p.Imports {
			if strings.HasPrefix(imp, "github.com/prometheus/prometheus/") && !slices.Contains(promImporters, p.ImportPath) {
				promImporters = append(promImporters, p.ImportPath)
			}
			if !strings.HasPrefix(imp, module) {
				continue
			}
			if other := componentOf(strings.TrimPrefix(imp, module)); other != "" && own != "" && other != own {
				t.Errorf("component package %s imports component %s: share it through internal/ instead", p.ImportPath, imp)
			}
		}
	}
	if len(promImporters) != 1 {
		t.Errorf("Vigil packages importing github.com/prometheus/prometheus: %v; want exactly one (internal/promrw)", promImporters)
	}
}

// componentOf returns the component a package path (relative to the module)
// belongs to, e.g. "connectors/redflagconnector" for its internal/detect,
// or "" outside the component folders.
func componentOf(rel string) string {
	parts := strings.SplitN(rel, "/", 3)
	if len(parts) < 2 {
		return ""
	}
	switch parts[0] {
	case "receivers", "processors", "exporters", "connectors", "extensions":
		return parts[0] + "/" + parts[1]
	}
	return ""
}
