package pipeline

import (
	"context"
	"embed"
	"fmt"
	"strings"

	"go.opentelemetry.io/collector/confmap"
)

// embeddedScheme is the confmap scheme of the configs compiled into the binary:
// "vigil:default" is the standalone default, used when no --config is given.
const embeddedScheme = "vigil"

// DefaultConfigURI names the embedded default configuration.
const DefaultConfigURI = embeddedScheme + ":default"

//go:embed configs/*.yaml
var configs embed.FS

// EmbeddedConfig returns the embedded configuration called name ("default", ...).
func EmbeddedConfig(name string) ([]byte, error) {
	b, err := configs.ReadFile("configs/" + name + ".yaml")
	if err != nil {
		return nil, fmt.Errorf("no embedded config %q (have %s)", name, strings.Join(EmbeddedConfigNames(), ", "))
	}
	return b, nil
}

// EmbeddedConfigNames lists the names of the embedded configurations.
func EmbeddedConfigNames() []string {
	entries, _ := configs.ReadDir("configs")
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	return names
}

// NewEmbeddedProviderFactory returns a confmap provider for the "vigil:" scheme,
// which resolves "vigil:<name>" to an embedded configuration. It lets a user
// layer their own file on the default: --config vigil:default --config mine.yaml.
func NewEmbeddedProviderFactory() confmap.ProviderFactory {
	return confmap.NewProviderFactory(func(confmap.ProviderSettings) confmap.Provider {
		return embeddedProvider{}
	})
}

type embeddedProvider struct{}

func (embeddedProvider) Retrieve(_ context.Context, uri string, _ confmap.WatcherFunc) (*confmap.Retrieved, error) {
	name, ok := strings.CutPrefix(uri, embeddedScheme+":")
	if !ok {
		return nil, fmt.Errorf("%q uri is not supported by %q provider", uri, embeddedScheme)
	}
	b, err := EmbeddedConfig(name)
	if err != nil {
		return nil, err
	}
	return confmap.NewRetrievedFromYAML(b)
}

func (embeddedProvider) Scheme() string { return embeddedScheme }

func (embeddedProvider) Shutdown(context.Context) error { return nil }
