package pipeline

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/storage/filestorage"
	"github.com/open-telemetry/opentelemetry-collector-contrib/receiver/filelogreceiver"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/exporter/otlpexporter"
	"go.opentelemetry.io/collector/exporter/otlphttpexporter"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/pipeline"
	"go.opentelemetry.io/collector/processor/batchprocessor"
	"go.opentelemetry.io/collector/processor/memorylimiterprocessor"

	"github.com/vigilhq/vigil/processors/tailsamplingprocessor"
)

// loadEmbedded resolves an embedded config the way vigil does (env
// references expanded) and unmarshals it with the distribution's factories.
func loadEmbedded(t *testing.T, name string) (*otelcol.Config, *confmap.Conf) {
	t.Helper()
	ctx := context.Background()
	set := confmap.ResolverSettings{
		URIs:              []string{embeddedScheme + ":" + name},
		ProviderFactories: []confmap.ProviderFactory{envprovider.NewFactory(), NewEmbeddedProviderFactory()},
	}
	r, err := confmap.NewResolver(set)
	require.NoError(t, err)
	conf, err := r.Resolve(ctx)
	require.NoError(t, err)
	cp, err := otelcol.NewConfigProvider(otelcol.ConfigProviderSettings{ResolverSettings: set})
	require.NoError(t, err)
	f, err := Components()
	require.NoError(t, err)
	cfg, err := cp.Get(ctx, f)
	require.NoError(t, err)
	return cfg, conf
}

// Every embedded config is valid as a whole (the same check as `vigil
// validate`), given the environment it documents.
func TestEmbeddedConfigsValidate(t *testing.T) {
	t.Setenv("VIGIL_OTLP_ENDPOINT", "gateway.example:4317")
	for _, name := range EmbeddedConfigNames() {
		t.Run(name, func(t *testing.T) {
			cfg, _ := loadEmbedded(t, name)
			require.NoError(t, confmap.Validate(cfg))
		})
	}
}

// Every listener of every embedded config binds 127.0.0.1 unless told
// otherwise: receivers' and extensions' endpoints, the prometheus exporter's,
// and the agent's own telemetry endpoint.
func TestEmbeddedListenersOnLoopback(t *testing.T) {
	t.Setenv("VIGIL_OTLP_ENDPOINT", "gateway.example:4317")
	for _, name := range EmbeddedConfigNames() {
		t.Run(name, func(t *testing.T) {
			_, conf := loadEmbedded(t, name)
			var listeners []string
			check := func(path, hostport string) {
				listeners = append(listeners, path)
				host, _, err := net.SplitHostPort(hostport)
				require.NoErrorf(t, err, "%s: %q", path, hostport)
				require.Equalf(t, "127.0.0.1", host, "%s listens on %q", path, hostport)
			}
			raw := conf.ToStringMap()
			for _, kind := range []string{"receivers", "extensions", "exporters"} {
				comps, _ := raw[kind].(map[string]any)
				for id, c := range comps {
					if kind == "exporters" && componentType(id) != "prometheus" {
						continue // clients, not listeners
					}
					walkEndpoints(kind+"::"+id, c, check)
				}
			}
			readers := conf.Get("service::telemetry::metrics::readers")
			rs, _ := readers.([]any)
			for i, r := range rs {
				host := conf.Get(fmt.Sprintf("service::telemetry::metrics::readers::%d::pull::exporter::prometheus::host", i))
				if m, ok := r.(map[string]any); ok {
					if pull, ok := m["pull"].(map[string]any); ok {
						if exp, ok := pull["exporter"].(map[string]any); ok {
							if p, ok := exp["prometheus"].(map[string]any); ok {
								host = p["host"]
							}
						}
					}
				}
				require.Equalf(t, "127.0.0.1", host, "service::telemetry reader %d listens on %v", i, host)
				listeners = append(listeners, "service::telemetry")
			}
			require.NotEmpty(t, listeners)
			t.Logf("%d listeners, all on 127.0.0.1: %s", len(listeners), strings.Join(listeners, ", "))
		})
	}
}

func componentType(id string) string {
	typ, _, _ := strings.Cut(id, "/")
	return typ
}

// walkEndpoints calls f for every "endpoint" key under v.
func walkEndpoints(path string, v any, f func(path, hostport string)) {
	m, ok := v.(map[string]any)
	if !ok {
		return
	}
	for k, sub := range m {
		if k == "endpoint" {
			if s, ok := sub.(string); ok {
				f(path+"::"+k, s)
			}
			continue
		}
		walkEndpoints(path+"::"+k, sub, f)
	}
}

// The agent profile holds the promises its header makes: a persistent queue
// and endless retry on every exporter to a backend, no asynchronous batch
// processor that could drop what a full queue refuses, memory_limiter first
// in every pipeline fed by a receiver and sized from the container's limit,
// with the tail sampler's off-heap budget left outside it, and log offsets
// and sampler state kept in storage.
func TestAgentProfile(t *testing.T) {
	t.Setenv("VIGIL_OTLP_ENDPOINT", "gateway.example:4317")
	cfg, _ := loadEmbedded(t, "agent")

	storages := map[component.ID]bool{}
	for id, c := range cfg.Extensions {
		if _, ok := c.(*filestorage.Config); ok {
			require.Containsf(t, cfg.Service.Extensions, id, "storage extension %s is not enabled in service::extensions", id)
			storages[id] = true
		}
	}
	require.NotEmpty(t, storages, "no file_storage extension")

	backends := 0
	for id, c := range cfg.Exporters {
		switch c := c.(type) {
		case *otlpexporter.Config:
			backends++
			q := c.QueueConfig.Get()
			require.NotNilf(t, q, "%s: no sending_queue", id)
			require.Truef(t, c.QueueConfig.HasValue(), "%s: sending_queue disabled", id)
			require.NotNilf(t, q.StorageID, "%s: sending_queue is not persistent", id)
			require.Truef(t, storages[*q.StorageID], "%s: sending_queue::storage %s is not a file_storage extension", id, q.StorageID)
			require.Truef(t, c.RetryConfig.Enabled, "%s: retry_on_failure disabled", id)
			require.Zerof(t, c.RetryConfig.MaxElapsedTime, "%s: retry_on_failure::max_elapsed_time gives up on data", id)
		case *otlphttpexporter.Config:
			backends++
			q := c.QueueConfig.Get()
			require.Truef(t, c.QueueConfig.HasValue() && q.StorageID != nil && storages[*q.StorageID], "%s: sending_queue is not persistent", id)
			require.Truef(t, c.RetryConfig.Enabled && c.RetryConfig.MaxElapsedTime == 0, "%s: retry gives up", id)
		default:
			// The only other exporter allowed is the local Prometheus endpoint.
			require.Equalf(t, "prometheus", id.Type().String(), "%s: an exporter this test does not know; add its checks", id)
		}
	}
	require.Positive(t, backends)

	var limiter *memorylimiterprocessor.Config
	var sampler *tailsamplingprocessor.Config
	for id, c := range cfg.Processors {
		switch c := c.(type) {
		case *memorylimiterprocessor.Config:
			limiter = c
		case *tailsamplingprocessor.Config:
			sampler = c
		case *batchprocessor.Config:
			t.Fatalf("%s: the batch processor acknowledges before the queue and drops what a full queue refuses; batch in sending_queue instead", id)
		}
	}
	require.NotNil(t, limiter, "no memory_limiter")
	require.Zero(t, limiter.MemoryLimitMiB, "memory_limiter must follow the container's limit (limit_percentage), not a fixed limit_mib")
	require.Positive(t, limiter.MemoryLimitPercentage)
	require.NotNil(t, sampler, "no tail_sampling")
	require.Zero(t, sampler.MemoryLimitMiB, "tail_sampling's budget must follow the container's limit (a quarter of it)")
	require.LessOrEqual(t, limiter.MemoryLimitPercentage+25, uint32(80),
		"the heap limit plus the sampler's off-heap quarter must leave room for the runtime")
	require.NotEmpty(t, sampler.Storage, "tail_sampling keeps no state across restarts")

	for id, c := range cfg.Receivers {
		if fl, ok := c.(*filelogreceiver.FileLogConfig); ok {
			require.NotNilf(t, fl.BaseConfig.StorageID, "%s: offsets not checkpointed", id)
			require.Truef(t, fl.BaseConfig.RetryOnFailure.Enabled && fl.BaseConfig.RetryOnFailure.MaxElapsedTime == 0,
				"%s: a refused batch would be dropped", id)
		}
	}

	limiterID := component.MustNewID("memory_limiter")
	for pid, p := range cfg.Service.Pipelines {
		fromReceiver := false
		for _, r := range p.Receivers {
			if _, ok := cfg.Receivers[r]; ok {
				fromReceiver = true
			}
		}
		if !fromReceiver {
			continue
		}
		require.NotEmptyf(t, p.Processors, "pipeline %s has no memory_limiter", pid)
		require.Equalf(t, limiterID, p.Processors[0], "pipeline %s: memory_limiter must come first", pid)
	}
	require.Contains(t, cfg.Service.Pipelines, pipeline.NewIDWithName(pipeline.SignalTraces, "in"))
}
