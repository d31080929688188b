// Package statusextension is the vigil_status extension: the agent's status
// page (default 127.0.0.1:8890) with the live service graph of the edges the
// redflag connector sees, flagged edges and the origin of an incident
// coloured, the active alerts with their annotations, and detector and
// sampler counters, as plain HTML and SVG that refresh themselves, plus a
// JSON endpoint (/api/status). It is also where the tail sampler's red_flag
// policy reads the flagged edges and services (FlaggedSet).
package statusextension

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/extension"

	"github.com/vigilhq/vigil/extensions/statusextension/internal/metadata"
)

// DefaultEndpoint is the status page's address in the embedded default
// (docs/DESIGN.md's port table): loopback only.
const DefaultEndpoint = "127.0.0.1:8890"

// NewFactory returns the vigil_status extension's factory.
func NewFactory() extension.Factory {
	return extension.NewFactory(metadata.Type, createDefaultConfig, create, metadata.ExtensionStability)
}

func createDefaultConfig() component.Config {
	srv := confighttp.NewDefaultServerConfig()
	srv.NetAddr.Endpoint = DefaultEndpoint
	return &Config{ServerConfig: srv, Refresh: 5 * time.Second, MaxEdges: 200}
}

func create(_ context.Context, set extension.Settings, cfg component.Config) (extension.Extension, error) {
	return newStatus(set, cfg.(*Config))
}
