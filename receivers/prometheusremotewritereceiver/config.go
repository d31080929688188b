package prometheusremotewritereceiver

import (
	"errors"
	"fmt"
	"reflect"
	"time"

	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/confmap"

	"github.com/vigilhq/vigil/internal/confkeys"
)

// Config is the prometheus_remote_write receiver's configuration. The HTTP
// server settings (endpoint, tls, auth, max_request_body_size, timeouts) are
// the collector's confighttp ones, at the top level.
type Config struct {
	confighttp.ServerConfig `mapstructure:",squash"`

	// MaxDecompressedSize bounds a request body after snappy decompression,
	// in bytes. The snappy header announces the decoded size, so a larger
	// request is refused with 413 before it is decompressed. Prometheus'
	// own receiver uses 32 MiB.
	MaxDecompressedSize int64 `mapstructure:"max_decompressed_size"`

	// MetadataCacheSize bounds the remote write 1.0 metric metadata (type,
	// help, unit) kept across requests, in metric families. Prometheus sends
	// 1.0 metadata in requests of their own; without it types are inferred
	// from name suffixes.
	MetadataCacheSize int `mapstructure:"metadata_cache_size"`

	// TargetInfoCacheSize bounds the target_info label sets kept across
	// requests, in targets, so resource attributes apply to samples that
	// arrive in a later request than their target_info.
	TargetInfoCacheSize int `mapstructure:"target_info_cache_size"`

	// MaxNativeHistogramBuckets bounds the buckets one side of one native
	// histogram may expand to.
	MaxNativeHistogramBuckets int `mapstructure:"max_native_histogram_buckets"`

	// RetryAfter is sent in the Retry-After header of 503 responses when the
	// next consumer refuses data (for example memory_limiter), telling the
	// Prometheus client when to retry.
	RetryAfter time.Duration `mapstructure:"retry_after"`
}

var _ confmap.Unmarshaler = (*Config)(nil)

// Unmarshal decodes the configuration. confighttp.ServerConfig has an
// Unmarshal of its own which, promoted through the squashed embedding, would
// otherwise be called alone and decode only the HTTP settings; conf here
// skips the top-level unmarshaler, so this decodes every field once.
//
// confmap decodes squashed structs that have their own Unmarshal with unused
// keys ignored, so a misspelt key would pass silently; unknown top-level keys
// are therefore checked here against the struct's tags.
func (c *Config) Unmarshal(conf *confmap.Conf) error {
	if err := confkeys.Check(conf, reflect.TypeFor[Config]()); err != nil {
		return err
	}
	return conf.Unmarshal(c)
}

// Validate checks the configuration without doing I/O.
func (c *Config) Validate() error {
	var errs []error
	if c.NetAddr.Endpoint == "" {
		errs = append(errs, errors.New("endpoint: must not be empty"))
	}
	if c.MaxDecompressedSize <= 0 {
		errs = append(errs, fmt.Errorf("max_decompressed_size: must be positive, got %d", c.MaxDecompressedSize))
	}
	if c.MaxRequestBodySize < 0 {
		errs = append(errs, fmt.Errorf("max_request_body_size: must not be negative, got %d", c.MaxRequestBodySize))
	}
	if c.MetadataCacheSize <= 0 {
		errs = append(errs, fmt.Errorf("metadata_cache_size: must be positive, got %d", c.MetadataCacheSize))
	}
	if c.TargetInfoCacheSize <= 0 {
		errs = append(errs, fmt.Errorf("target_info_cache_size: must be positive, got %d", c.TargetInfoCacheSize))
	}
	if c.MaxNativeHistogramBuckets <= 0 {
		errs = append(errs, fmt.Errorf("max_native_histogram_buckets: must be positive, got %d", c.MaxNativeHistogramBuckets))
	}
	if c.RetryAfter < time.Second {
		errs = append(errs, fmt.Errorf("retry_after: must be at least 1s (Retry-After has whole seconds), got %s", c.RetryAfter))
	}
	if len(c.CompressionAlgorithms) > 0 {
		errs = append(errs, errors.New("compression_algorithms: not supported; remote-write bodies are snappy blocks and the receiver decodes them itself, with a size check first"))
	}
	return errors.Join(errs...)
}
