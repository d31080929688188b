package prometheusremotewritereceiver

import (
	"testing"

	"go.opentelemetry.io/collector/component"

	"github.com/vigilhq/vigil/receivers/prometheusremotewritereceiver/internal/metadata"
	"github.com/vigilhq/vigil/testkit/metadatatest"
)

// The telemetry the component creates is what metadata.yaml documents.
func TestTelemetryMatchesMetadata(t *testing.T) {
	metadatatest.Check(t, "metadata.yaml", func(set component.TelemetrySettings) error {
		_, err := metadata.NewTelemetryBuilder(set)
		return err
	})
}
