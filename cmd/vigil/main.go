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
	"go.opentelemetry.io/collector/featuregate"
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
	// Log receivers built on stanza (file_log, syslog, tcp_log, udp_log,
	// journald) batch entries asynchronously by default, after the file
	// offsets are checkpointed: a crash loses what is in that batch. The
	// synchronous emitter hands each batch to the pipeline before the offset
	// moves on (measured in e2e TestCrashDuringOutage; docs/RELIABILITY.md).
	// --feature-gates=-stanza.synchronousLogEmitter turns it back off.
	if err := featuregate.GlobalRegistry().Set("stanza.synchronousLogEmitter", true); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
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
