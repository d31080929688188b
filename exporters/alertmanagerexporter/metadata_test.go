package alertmanagerexporter

import (
	"testing"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/otel/attribute"

	"github.com/vigilhq/vigil/testkit/metadatatest"
)

// The telemetry the component creates is what metadata.yaml documents.
func TestTelemetryMatchesMetadata(t *testing.T) {
	metadatatest.Check(t, "metadata.yaml", func(set component.TelemetrySettings) error {
		_, err := newTelemetry(set, &amExporter{exporterAttr: attribute.String("exporter", "alertmanager")})
		return err
	})
}
