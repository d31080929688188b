package statusextension

import (
	"errors"
	"fmt"
	"reflect"
	"time"

	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/confmap"

	"github.com/vigilhq/vigil/internal/confkeys"
)

// Config is the vigil_status extension's configuration. The HTTP server
// settings (endpoint, tls, auth, timeouts, ...) are the collector's confighttp
// ones, at the top level; the endpoint defaults to 127.0.0.1:8890.
type Config struct {
	confighttp.ServerConfig `mapstructure:",squash"`

	// Refresh is how often the page reloads itself (a meta refresh: no
	// script). The connector publishes every evaluation interval (10 s).
	Refresh time.Duration `mapstructure:"refresh"`

	// MaxEdges bounds the edges drawn in the service graph and listed on the
	// page and in the JSON: flagged edges first, then anomalous ones, then the
	// busiest. The rest are counted as omitted.
	MaxEdges int `mapstructure:"max_edges"`
}

var _ confmap.Unmarshaler = (*Config)(nil)

// Unmarshal decodes the configuration, refusing unknown top-level keys (the
// embedded confighttp.ServerConfig's own Unmarshal ignores them).
func (c *Config) Unmarshal(conf *confmap.Conf) error {
	if err := confkeys.Check(conf, reflect.TypeFor[Config]()); err != nil {
		return err
	}
	return conf.Unmarshal(c)
}

// Validate checks the configuration without I/O.
func (c *Config) Validate() error {
	var errs []error
	if c.NetAddr.Endpoint == "" {
		errs = append(errs, errors.New("endpoint: must not be empty (default 127.0.0.1:8890)"))
	}
	if c.Refresh < time.Second {
		errs = append(errs, fmt.Errorf("refresh: %s must be at least 1s", c.Refresh))
	}
	if c.MaxEdges <= 0 || c.MaxEdges > 5000 {
		errs = append(errs, fmt.Errorf("max_edges: %d must be in [1, 5000]", c.MaxEdges))
	}
	return errors.Join(errs...)
}
