//go:build tools

// Package mdatagen pins go.opentelemetry.io/collector/cmd/mdatagen, which
// generates each component's internal/metadata from its metadata.yaml.
package mdatagen

import _ "go.opentelemetry.io/collector/cmd/mdatagen"
