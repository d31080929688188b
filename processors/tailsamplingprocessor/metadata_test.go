package tailsamplingprocessor

import (
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/collector/component"

	"github.com/vigilhq/vigil/testkit/metadatatest"
)

// The telemetry the component creates is what metadata.yaml documents.
func TestTelemetryMatchesMetadata(t *testing.T) {
	metadatatest.Check(t, "metadata.yaml", func(set component.TelemetrySettings) error {
		_, err := newTelemetry(set, &atomic.Pointer[gaugeValues]{})
		return err
	})
}
