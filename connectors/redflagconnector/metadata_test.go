package redflagconnector

import (
	"testing"

	"go.opentelemetry.io/collector/component"

	"github.com/vigilhq/vigil/connectors/redflagconnector/internal/metadata"
	"github.com/vigilhq/vigil/testkit/metadatatest"
)

type noGauges struct{}

func (noGauges) Gauges() metadata.Gauges { return metadata.Gauges{} }

// The telemetry the component creates is what metadata.yaml documents.
func TestTelemetryMatchesMetadata(t *testing.T) {
	metadatatest.Check(t, "metadata.yaml", func(set component.TelemetrySettings) error {
		_, err := metadata.NewTelemetryBuilder(set, noGauges{})
		return err
	})
}
