package alertmanagerexporter

import (
	"testing"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/otel/attribute"

	"github.com/vigilhq/vigil/exporters/alertmanagerexporter/internal/metadata"
	"github.com/vigilhq/vigil/testkit/metadatatest"
)

type noneHeld struct{}

func (noneHeld) Held() (firing, resolved, queued int64) { return 0, 0, 0 }

// The telemetry the component creates is what metadata.yaml documents.
func TestTelemetryMatchesMetadata(t *testing.T) {
	metadatatest.Check(t, "metadata.yaml", func(set component.TelemetrySettings) error {
		_, err := metadata.NewTelemetryBuilder(set, noneHeld{}, attribute.String("exporter", "alertmanager"))
		return err
	})
}
