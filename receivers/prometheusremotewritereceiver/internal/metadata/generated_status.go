// Package metadata holds the component type, stability and the telemetry
// builder of the prometheus_remote_write receiver. mdatagen cannot run here
// (its dependencies are not served by the module proxy), so this package is
// written by hand from ../../metadata.yaml; keep the two in step.
package metadata

import (
	"go.opentelemetry.io/collector/component"
)

var (
	// Type is the receiver's config type.
	Type = component.MustNewType("prometheus_remote_write")
	// DeprecatedType is the pre-v0.161 spelling, still accepted in configs.
	DeprecatedType = component.MustNewType("prometheusremotewrite")
	// ScopeName is the instrumentation scope of the receiver's own metrics and
	// of the metrics it translates when a series names no otel_scope_name.
	ScopeName = "github.com/vigilhq/vigil/receivers/prometheusremotewritereceiver"
)

// MetricsStability is the stability of the receiver's metrics signal.
const MetricsStability = component.StabilityLevelAlpha
