package redflagconnector

import (
	"fmt"
	"time"

	"go.opentelemetry.io/collector/component"

	"github.com/vigilhq/vigil/connectors/redflagconnector/internal/detect"
)

// Snapshot is the connector's live state after an evaluation, published to
// the status extension for the status page and alert-driven sampling. It is
// immutable once published.
type Snapshot struct {
	At       time.Time
	Edges    []EdgeView
	Services []ServiceView
	Alerts   []Alert
	// FlaggedEdges are [caller, callee] pairs covered by active alerts;
	// FlaggedServices are origins and affected services of active alerts.
	FlaggedEdges    [][2]string
	FlaggedServices []string
	// Counters are the detectors' running totals (telemetry observed, state
	// dropped at its bounds), keyed by a short snake_case name.
	Counters map[string]int64
}

// EdgeView is one caller -> callee edge in a Snapshot.
type EdgeView = detect.EdgeView

// ServiceView is one service in a Snapshot.
type ServiceView = detect.ServiceView

// Alert is one active alert in a Snapshot.
type Alert = detect.Alert

// Counts are an edge's or a service's call counts in a Snapshot.
type Counts = detect.Counts

// statusSink is what the status extension implements to receive snapshots.
type statusSink interface {
	PublishRedFlags(*Snapshot)
}

func findStatusSink(host component.Host, id component.ID) (statusSink, error) {
	ext, ok := host.GetExtensions()[id]
	if !ok {
		return nil, fmt.Errorf("status: extension %q is not configured (add it under extensions and service.extensions)", id)
	}
	s, ok := ext.(statusSink)
	if !ok {
		return nil, fmt.Errorf("status: extension %q cannot receive red-flag state (use a vigil_status extension)", id)
	}
	return s, nil
}
