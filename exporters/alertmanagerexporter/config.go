package alertmanagerexporter

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/configopaque"
	"go.opentelemetry.io/collector/confmap"

	"github.com/vigilhq/vigil/internal/confkeys"
)

// Config is the alertmanager exporter's configuration. The HTTP client
// settings (endpoint, tls, auth, headers, timeout, proxy_url, ...) are the
// collector's confighttp ones, at the top level, and apply to every
// Alertmanager. The minimal config is `endpoint: http://host:9093`.
type Config struct {
	confighttp.ClientConfig `mapstructure:",squash"`

	// Endpoints are further Alertmanagers, typically the other replicas of
	// an Alertmanager cluster. Every batch goes to endpoint and to each of
	// these, in parallel, as Prometheus sends to every Alertmanager it knows.
	// A URL may carry a path prefix (http://host/alertmanager); the exporter
	// appends /api/v2/alerts.
	//
	// Here and in endpoint, a URL prefixed with dns+ or dnssrv+ stands for
	// every address its host name resolves to, Thanos's convention
	// (--alertmanagers.url): dns+http://alertmanager-operated:9093 looks up
	// A/AAAA records and keeps the URL's port (required); dnssrv+ looks up
	// SRV records, then each record's target, and takes the port from the
	// record unless the URL gives one. Each address gets every batch. This is
	// how a StatefulSet behind a headless Service (kube-prometheus-stack's
	// alertmanager-operated) is reached replica by replica.
	Endpoints []string `mapstructure:"endpoints"`

	// DNSRefreshInterval is how often the names of dns+ and dnssrv+ URLs are
	// looked up again (Thanos's --alertmanagers.sd-dns-interval). A lookup
	// that fails keeps the addresses found before.
	DNSRefreshInterval time.Duration `mapstructure:"dns_refresh_interval"`

	// BasicAuth sends HTTP basic credentials with every request. The
	// collector's basicauth extension is not in this distribution (its
	// v0.161 release is not served); bearer tokens go through the
	// bearertokenauth extension with `auth: {authenticator: bearertokenauth}`.
	BasicAuth *BasicAuthConfig `mapstructure:"basic_auth"`

	// ResendDelay is how often a firing alert is sent again (Prometheus's
	// --rules.alert.resend-delay, 1m). Each send carries endsAt = now + 4 x
	// max(the producer's evaluation interval, resend_delay), so Alertmanager
	// resolves an alert by itself when sends stop (agent gone) after that.
	ResendDelay time.Duration `mapstructure:"resend_delay"`

	// ResolvedRetention is how long a resolved alert keeps being sent, with
	// its real endsAt, so an Alertmanager that missed the first send (down,
	// restarted) still learns of the resolution. Prometheus keeps 15m.
	ResolvedRetention time.Duration `mapstructure:"resolved_retention"`

	// MaxBatchSize is the most alerts one request carries.
	MaxBatchSize int `mapstructure:"max_batch_size"`

	// QueueSize bounds the alerts waiting to be sent. When it is full the
	// oldest is dropped (counted in otelcol_exporter_alertmanager_alerts_dropped).
	QueueSize int `mapstructure:"queue_size"`

	// MaxAlerts bounds the alerts held (firing, and resolved within
	// resolved_retention). An event for a new alert beyond it first evicts the
	// oldest resolved alert, else it is dropped and counted.
	MaxAlerts int `mapstructure:"max_alerts"`

	// ExternalLabels are added to every alert that lacks them (e.g.
	// cluster), as Prometheus's global external_labels. An alert's own label
	// wins over an external label of the same name.
	ExternalLabels map[string]string `mapstructure:"external_labels"`

	// GeneratorURL is sent as every alert's generatorURL, the link back from
	// Alertmanager: the agent's status page. Empty sends none.
	GeneratorURL string `mapstructure:"generator_url"`
}

// BasicAuthConfig is an HTTP basic username and password.
type BasicAuthConfig struct {
	Username string `mapstructure:"username"`
	// Password, or PasswordFile: a file holding it (read at start, trailing
	// newline trimmed), for a mounted Kubernetes secret.
	Password     configopaque.String `mapstructure:"password"`
	PasswordFile string              `mapstructure:"password_file"`
}

var _ confmap.Unmarshaler = (*Config)(nil)

// Unmarshal decodes the configuration, refusing unknown top-level keys (the
// embedded confighttp.ClientConfig's own Unmarshal ignores them).
func (c *Config) Unmarshal(conf *confmap.Conf) error {
	if err := confkeys.Check(conf, reflect.TypeFor[Config]()); err != nil {
		return err
	}
	return conf.Unmarshal(c)
}

var labelNameRe = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// Validate checks the configuration without I/O, naming each bad key.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key string, v any, why string) {
		errs = append(errs, fmt.Errorf("%s: %v %s", key, v, why))
	}
	urls := c.alertmanagers()
	if len(urls) == 0 {
		bad("endpoint", `""`, "must name an Alertmanager, e.g. http://127.0.0.1:9093")
	}
	seen := map[string]bool{}
	for i, raw := range urls {
		key := "endpoint"
		if c.ClientConfig.Endpoint == "" || i > 0 {
			key = fmt.Sprintf("endpoints[%d]", i-btoi(c.ClientConfig.Endpoint != ""))
		}
		if _, _, err := parseAlertmanagerURL(raw); err != nil {
			bad(key, fmt.Sprintf("%q", raw), err.Error())
			continue
		}
		if seen[raw] {
			bad(key, fmt.Sprintf("%q", raw), "is listed twice")
		}
		seen[raw] = true
	}
	if c.Timeout <= 0 {
		bad("timeout", c.Timeout, "must be positive: every call to an Alertmanager needs a bound")
	}
	if c.DNSRefreshInterval <= 0 {
		bad("dns_refresh_interval", c.DNSRefreshInterval, "must be positive")
	}
	if c.ResendDelay <= 0 {
		bad("resend_delay", c.ResendDelay, "must be positive")
	}
	if c.ResolvedRetention < 0 {
		bad("resolved_retention", c.ResolvedRetention, "must not be negative")
	}
	if c.MaxBatchSize <= 0 {
		bad("max_batch_size", c.MaxBatchSize, "must be positive")
	}
	if c.QueueSize < c.MaxBatchSize || c.QueueSize <= 0 {
		bad("queue_size", c.QueueSize, fmt.Sprintf("must be at least max_batch_size (%d)", c.MaxBatchSize))
	}
	if c.MaxAlerts <= 0 {
		bad("max_alerts", c.MaxAlerts, "must be positive")
	}
	for _, k := range slices.Sorted(maps.Keys(c.ExternalLabels)) {
		if !labelNameRe.MatchString(k) {
			bad("external_labels::"+k, fmt.Sprintf("%q", k), "is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*)")
		}
		if c.ExternalLabels[k] == "" {
			bad("external_labels::"+k, `""`, "must not be empty (an empty label is no label)")
		}
	}
	if c.GeneratorURL != "" {
		if u, err := url.Parse(c.GeneratorURL); err != nil || !u.IsAbs() || u.Host == "" {
			bad("generator_url", fmt.Sprintf("%q", c.GeneratorURL), "must be an absolute URL, e.g. http://127.0.0.1:8890/")
		}
	}
	if b := c.BasicAuth; b != nil {
		if b.Username == "" {
			bad("basic_auth::username", `""`, "must not be empty")
		}
		if (b.Password == "") == (b.PasswordFile == "") {
			bad("basic_auth", "password/password_file", "set exactly one of password and password_file")
		}
		if c.Auth.HasValue() {
			bad("basic_auth", "with auth", "cannot be combined with an auth extension; use one")
		}
	}
	return errors.Join(errs...)
}

// alertmanagers returns endpoint followed by endpoints.
func (c *Config) alertmanagers() []string {
	var out []string
	if c.ClientConfig.Endpoint != "" {
		out = append(out, c.ClientConfig.Endpoint)
	}
	return append(out, c.Endpoints...)
}

// lookup is how the host of a URL in endpoint or endpoints becomes the
// addresses posted to: the prefix before its scheme, as in Thanos.
type lookup string

const (
	// lookupNone posts to the URL as written.
	lookupNone lookup = ""
	// lookupA posts to every A/AAAA address of the host, on the URL's port.
	lookupA lookup = "dns"
	// lookupSRV posts to every address of every target of the host's SRV
	// records, on the record's port unless the URL has one.
	lookupSRV lookup = "dnssrv"
)

// parseAlertmanagerURL splits a URL of endpoint or endpoints into its lookup
// prefix and the http(s) URL after it, and checks both.
func parseAlertmanagerURL(raw string) (lookup, *url.URL, error) {
	kind, rest := lookupNone, raw
	for _, k := range []lookup{lookupA, lookupSRV} {
		if r, ok := strings.CutPrefix(raw, string(k)+"+"); ok {
			kind, rest = k, r
		}
	}
	u, err := url.Parse(rest)
	if err != nil {
		return kind, nil, errors.New("is not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return kind, nil, errors.New("must be an http:// or https:// URL, optionally prefixed with dns+ or dnssrv+ (dns+http://host:9093)")
	}
	if u.Host == "" {
		return kind, nil, errors.New("has no host")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return kind, nil, errors.New("must not have a query or fragment")
	}
	if strings.HasSuffix(strings.TrimSuffix(u.Path, "/"), "/api/v2/alerts") {
		return kind, nil, errors.New("must be the Alertmanager's base URL; /api/v2/alerts is appended")
	}
	if kind != lookupNone {
		if net.ParseIP(u.Hostname()) != nil {
			return kind, nil, fmt.Errorf("names an IP address: %s+ looks up a DNS name; drop the prefix", kind)
		}
		if kind == lookupA && u.Port() == "" {
			return kind, nil, errors.New("needs a port: dns+ looks up A/AAAA records, which carry none (dns+http://host:9093)")
		}
	}
	return kind, u, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
