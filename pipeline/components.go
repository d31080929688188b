// Package pipeline is the Vigil distribution: the flat list of component
// factories linked into the agent and the embedded default configuration.
package pipeline

import (
	"reflect"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/open-telemetry/opentelemetry-collector-contrib/connector/spanmetricsconnector"
	"github.com/open-telemetry/opentelemetry-collector-contrib/exporter/fileexporter"
	"github.com/open-telemetry/opentelemetry-collector-contrib/exporter/kafkaexporter"
	"github.com/open-telemetry/opentelemetry-collector-contrib/exporter/loadbalancingexporter"
	"github.com/open-telemetry/opentelemetry-collector-contrib/exporter/prometheusexporter"
	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/bearertokenauthextension"
	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/healthcheckextension"
	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/pprofextension"
	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/storage/filestorage"
	"github.com/open-telemetry/opentelemetry-collector-contrib/processor/attributesprocessor"
	"github.com/open-telemetry/opentelemetry-collector-contrib/processor/filterprocessor"
	"github.com/open-telemetry/opentelemetry-collector-contrib/processor/k8sattributesprocessor"
	"github.com/open-telemetry/opentelemetry-collector-contrib/processor/resourcedetectionprocessor"
	"github.com/open-telemetry/opentelemetry-collector-contrib/processor/resourceprocessor"
	"github.com/open-telemetry/opentelemetry-collector-contrib/processor/transformprocessor"
	"github.com/open-telemetry/opentelemetry-collector-contrib/receiver/filelogreceiver"
	"github.com/open-telemetry/opentelemetry-collector-contrib/receiver/fluentforwardreceiver"
	"github.com/open-telemetry/opentelemetry-collector-contrib/receiver/hostmetricsreceiver"
	"github.com/open-telemetry/opentelemetry-collector-contrib/receiver/journaldreceiver"
	"github.com/open-telemetry/opentelemetry-collector-contrib/receiver/kubeletstatsreceiver"
	"github.com/open-telemetry/opentelemetry-collector-contrib/receiver/prometheusreceiver"
	"github.com/open-telemetry/opentelemetry-collector-contrib/receiver/syslogreceiver"
	"github.com/open-telemetry/opentelemetry-collector-contrib/receiver/tcplogreceiver"
	"github.com/open-telemetry/opentelemetry-collector-contrib/receiver/udplogreceiver"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/connector"
	"go.opentelemetry.io/collector/connector/forwardconnector"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/debugexporter"
	"go.opentelemetry.io/collector/exporter/otlpexporter"
	"go.opentelemetry.io/collector/exporter/otlphttpexporter"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/zpagesextension"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/batchprocessor"
	"go.opentelemetry.io/collector/processor/memorylimiterprocessor"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/service/telemetry/otelconftelemetry"

	"github.com/vigilhq/vigil/connectors/redflagconnector"
	// gRPC's "gzip" (the OTLP gRPC default) from klauspost/compress: the
	// same format at a fraction of the standard library's CPU.
	"github.com/vigilhq/vigil/exporters/alertmanagerexporter"
	"github.com/vigilhq/vigil/exporters/prometheusremotewriteexporter"
	"github.com/vigilhq/vigil/extensions/statusextension"
	_ "github.com/vigilhq/vigil/internal/grpcgzip"
	"github.com/vigilhq/vigil/processors/tailsamplingprocessor"
	"github.com/vigilhq/vigil/receivers/containerlogreceiver"
	"github.com/vigilhq/vigil/receivers/prometheusremotewritereceiver"
)

// Components returns the factories of every component in the Vigil
// distribution. It is called once per collector start.
func Components() (otelcol.Factories, error) {
	var err error
	f := otelcol.Factories{Telemetry: otelconftelemetry.NewFactory()}

	f.Receivers, f.ReceiverModules, err = factories[receiver.Factory](
		otlpreceiver.NewFactory,
		prometheusreceiver.NewFactory,
		prometheusremotewritereceiver.NewFactory,
		filelogreceiver.NewFactory,
		containerlogreceiver.NewFactory,
		syslogreceiver.NewFactory,
		tcplogreceiver.NewFactory,
		udplogreceiver.NewFactory,
		fluentforwardreceiver.NewFactory,
		journaldreceiver.NewFactory,
		hostmetricsreceiver.NewFactory,
		kubeletstatsreceiver.NewFactory,
	)
	if err != nil {
		return f, err
	}

	f.Processors, f.ProcessorModules, err = factories[processor.Factory](
		batchprocessor.NewFactory,
		memorylimiterprocessor.NewFactory,
		k8sattributesprocessor.NewFactory,
		resourceprocessor.NewFactory,
		resourcedetectionprocessor.NewFactory,
		attributesprocessor.NewFactory,
		filterprocessor.NewFactory,
		transformprocessor.NewFactory,
		tailsamplingprocessor.NewFactory,
	)
	if err != nil {
		return f, err
	}

	f.Exporters, f.ExporterModules, err = factories[exporter.Factory](
		otlpexporter.NewFactory,
		otlphttpexporter.NewFactory,
		debugexporter.NewFactory,
		fileexporter.NewFactory,
		prometheusexporter.NewFactory,
		prometheusremotewriteexporter.NewFactory,
		loadbalancingexporter.NewFactory,
		kafkaexporter.NewFactory,
		alertmanagerexporter.NewFactory,
	)
	if err != nil {
		return f, err
	}

	f.Connectors, f.ConnectorModules, err = factories[connector.Factory](
		forwardconnector.NewFactory,
		spanmetricsconnector.NewFactory,
		redflagconnector.NewFactory,
	)
	if err != nil {
		return f, err
	}

	f.Extensions, f.ExtensionModules, err = factories[extension.Factory](
		healthcheckextension.NewFactory,
		pprofextension.NewFactory,
		zpagesextension.NewFactory,
		filestorage.NewFactory,
		bearertokenauthextension.NewFactory,
		statusextension.NewFactory,
	)
	return f, err
}

// factories makes a factory map from constructors, with the Go module each
// comes from (what `vigil components` shows): the module of the
// constructor's package and its version in the binary's build information,
// so the list cannot drift from what is linked.
func factories[F component.Factory](ctors ...func() F) (map[component.Type]F, map[component.Type]string, error) {
	facs := make([]F, 0, len(ctors))
	mods := make(map[component.Type]string, len(ctors))
	for _, ctor := range ctors {
		fac := ctor()
		facs = append(facs, fac)
		mods[fac.Type()] = moduleOf(ctor)
	}
	m, err := otelcol.MakeFactoryMap(facs...)
	return m, mods, err
}

// moduleOf names the module of the package that defines fn, with its
// version ("path version"), or the package path for Vigil's own.
func moduleOf(fn any) string {
	f := runtime.FuncForPC(reflect.ValueOf(fn).Pointer())
	if f == nil {
		return ""
	}
	pkg := f.Name()
	if i := strings.LastIndexByte(pkg, '/'); i >= 0 {
		if j := strings.IndexByte(pkg[i:], '.'); j >= 0 {
			pkg = pkg[:i+j]
		}
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return pkg
	}
	best := ""
	version := ""
	for _, d := range bi.Deps {
		m := d
		if d.Replace != nil {
			m = d.Replace
		}
		if (pkg == d.Path || strings.HasPrefix(pkg, d.Path+"/")) && len(d.Path) > len(best) {
			best, version = d.Path, m.Version
		}
	}
	if best == "" {
		return pkg // the main module: Vigil's own component
	}
	return best + " " + version
}
