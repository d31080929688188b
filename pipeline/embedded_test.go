package pipeline

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
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

// `vigil components` names the module each component comes from, as a
// collector built by ocb does. (A test binary carries no dependency
// versions; e2e's TestComponentsListsTheDistribution checks them on the
// real binary.)
func TestComponentsNameTheirModules(t *testing.T) {
	f, err := Components()
	require.NoError(t, err)
	require.Regexp(t, `^go\.opentelemetry\.io/collector/receiver/otlpreceiver( |$)`, f.ReceiverModules[component.MustNewType("otlp")])
	require.Regexp(t, `^github\.com/open-telemetry/opentelemetry-collector-contrib/processor/k8sattributesprocessor( |$)`,
		f.ProcessorModules[component.MustNewType("k8s_attributes")])
	require.Equal(t, "github.com/vigilhq/vigil/connectors/redflagconnector", f.ConnectorModules[component.MustNewType("redflag")])
	for kind, mods := range map[string]map[component.Type]string{
		"receiver": f.ReceiverModules, "processor": f.ProcessorModules, "exporter": f.ExporterModules,
		"connector": f.ConnectorModules, "extension": f.ExtensionModules,
	} {
		require.NotEmpty(t, mods, kind)
		for typ, m := range mods {
			require.NotEmptyf(t, m, "%s %s has no module", kind, typ)
		}
	}
	for _, fac := range f.Receivers {
		require.NotEmptyf(t, f.ReceiverModules[fac.Type()], "receiver %s has no module", fac.Type())
	}
}
