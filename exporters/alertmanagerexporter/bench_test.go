package alertmanagerexporter

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/alertevent"
)

// BenchmarkResendTick measures one scheduler tick over 1000 firing alerts
// that are all due: the resend path, and encoding their 256-alert batches.
func BenchmarkResendTick(b *testing.B) {
	s := testSet(func(c *Config) { c.ExternalLabels = map[string]string{"cluster": "prod"} })
	for i := range 1000 {
		ev := cascadeEvent(alertevent.StateFiring, t0)
		ev.Labels["origin_service"] = fmt.Sprintf("svc-%04d", i)
		s.apply(ev)
	}
	var buf []postableAlert
	now := t0
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Minute)
		buf = s.due(now, buf[:0])
		for i := 0; i < len(buf); i += 256 {
			if _, err := json.Marshal(buf[i:min(i+256, len(buf))]); err != nil {
				b.Fatal(err)
			}
		}
	}
	if len(buf) != 1000 {
		b.Fatalf("%d due", len(buf))
	}
}
