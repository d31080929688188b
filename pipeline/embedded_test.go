package pipeline

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/confmap"
)

func TestEmbeddedProvider(t *testing.T) {
	p := NewEmbeddedProviderFactory().Create(confmap.ProviderSettings{})
	ret, err := p.Retrieve(context.Background(), DefaultConfigURI, nil)
	require.NoError(t, err)
	conf, err := ret.AsConf()
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:4317", conf.Get("receivers::otlp::protocols::grpc::endpoint"))
	require.Equal(t, "127.0.0.1:13133", conf.Get("extensions::health_check::endpoint"))
	require.Equal(t, "127.0.0.1:19291", conf.Get("receivers::prometheus_remote_write::endpoint"))
	require.Equal(t, "127.0.0.1:8890", conf.Get("extensions::vigil_status::endpoint"))
	require.Equal(t, "vigil_status", conf.Get("connectors::redflag::status"))

	_, err = p.Retrieve(context.Background(), "vigil:nope", nil)
	require.ErrorContains(t, err, `no embedded config "nope" (have agent, default`)
	_, err = p.Retrieve(context.Background(), "file:x.yaml", nil)
	require.Error(t, err)
}

func TestComponentsHaveNoDuplicates(t *testing.T) {
	f, err := Components()
	require.NoError(t, err)
	require.NotEmpty(t, f.Receivers)
	require.NotNil(t, f.Telemetry)
}
