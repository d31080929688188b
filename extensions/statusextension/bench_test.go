package statusextension

import (
	"bytes"
	"fmt"
	"testing"

	"go.opentelemetry.io/collector/extension/extensiontest"

	"github.com/vigilhq/vigil/extensions/statusextension/internal/metadata"
)

// BenchmarkRenderPage measures what one status page request costs after a
// publish: laying out a 1000-edge graph (200 drawn) and rendering the HTML.
func BenchmarkRenderPage(b *testing.B) {
	snap := cascade()
	for i := range 1000 {
		snap.Edges = append(snap.Edges, edge(fmt.Sprintf("svc-%03d", i%100), fmt.Sprintf("svc-%03d", 100+i), uint32(i), 0, false, false))
	}
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		v := buildView(snap, nil, 200, 5e9)
		buf.Reset()
		if err := pageTmpl.Execute(&buf, v); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(buf.Len()), "page-bytes")
}

// BenchmarkFlaggedSet is the tail sampler's read on its hot path.
func BenchmarkFlaggedSet(b *testing.B) {
	s, err := newStatus(extensiontest.NewNopSettings(metadata.Type), createDefaultConfig().(*Config))
	if err != nil {
		b.Fatal(err)
	}
	s.PublishRedFlags(cascade())
	b.ReportAllocs()
	for b.Loop() {
		if !s.FlaggedSet().HasEdge("catalog", "catalog-db") {
			b.Fatal("not flagged")
		}
	}
}
