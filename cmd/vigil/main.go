// Command vigil is the Vigil observability pipeline agent: a distribution of
// the OpenTelemetry Collector with Vigil's own components.
package main

import (
	"fmt"
	"os"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/confmap/provider/yamlprovider"
	"go.opentelemetry.io/collector/otelcol"

	"github.com/vigilhq/vigil/internal/confighint"
	"github.com/vigilhq/vigil/internal/simulate"
	"github.com/vigilhq/vigil/pipeline"
)

// Set by the Makefile with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "unknown"
)

func main() {
	info := component.BuildInfo{
		Command:     "vigil",
		Description: "Vigil observability pipeline agent",
		Version:     version + " (commit " + commit + ")",
	}
	set := otelcol.CollectorSettings{
		BuildInfo: info,
		Factories: pipeline.Components,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{
			ResolverSettings: confmap.ResolverSettings{
				// Used when no --config flag is given: the embedded default.
				URIs: []string{pipeline.DefaultConfigURI},
				ProviderFactories: []confmap.ProviderFactory{
					fileprovider.NewFactory(),
					envprovider.NewFactory(),
					yamlprovider.NewFactory(),
					pipeline.NewEmbeddedProviderFactory(),
				},
			},
		},
	}
	cmd := otelcol.NewCommand(set)
	cmd.AddCommand(simulate.NewCommand())
	cmd.SilenceErrors = true
	if err := cmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		// Point a config error at the line it is about.
		for _, h := range confighint.Hints(err.Error(), confighint.Files(os.Args[1:])) {
			fmt.Fprintln(os.Stderr, "  at", h)
		}
		os.Exit(1)
	}
}
