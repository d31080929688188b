// Package metadatatest is a test helper: it checks that a component's own
// telemetry, as its internal/metadata package creates it, is what its
// metadata.yaml declares (names, descriptions, units, instrument kinds and
// value types), in both directions, so the two cannot drift apart.
package metadatatest

import (
	"cmp"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/embedded"
	"go.opentelemetry.io/otel/metric/noop"
	"go.yaml.in/yaml/v3"
)

// Instrument is one metric as declared or as created.
type Instrument struct {
	Description string
	Unit        string
	// Kind is counter, updowncounter, gauge or histogram; ValueType int or
	// double.
	Kind, ValueType string
	// Buckets are a histogram's explicit bucket boundaries, formatted ("" for
	// none: the SDK's defaults).
	Buckets string
}

func (i Instrument) String() string {
	s := fmt.Sprintf("%s %s, unit %q, %q", i.ValueType, i.Kind, i.Unit, i.Description)
	if i.Buckets != "" {
		s += ", buckets " + i.Buckets
	}
	return s
}

// prefix is what the collector's own telemetry puts before the names
// metadata.yaml declares (mdatagen generates the same).
const prefix = "otelcol_"

// Declared reads the telemetry.metrics of a metadata.yaml, keyed by the
// names the instruments get.
func Declared(path string) (map[string]Instrument, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	type valueType struct {
		ValueType string    `yaml:"value_type"`
		Monotonic bool      `yaml:"monotonic"`
		Buckets   []float64 `yaml:"bucket_boundaries"`
	}
	var doc struct {
		Telemetry struct {
			Metrics map[string]struct {
				Description string     `yaml:"description"`
				Stability   string     `yaml:"stability"`
				Unit        string     `yaml:"unit"`
				Sum         *valueType `yaml:"sum"`
				Gauge       *valueType `yaml:"gauge"`
				Histogram   *valueType `yaml:"histogram"`
			} `yaml:"metrics"`
		} `yaml:"telemetry"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out := map[string]Instrument{}
	for name, m := range doc.Telemetry.Metrics {
		// mdatagen appends the metric's stability to its description.
		level := cmp.Or(strings.ToLower(strings.TrimSpace(m.Stability)), "alpha")
		desc := strings.TrimSpace(m.Description) + " [" + strings.ToUpper(level[:1]) + level[1:] + "]"
		in := Instrument{Description: desc, Unit: m.Unit}
		switch {
		case m.Sum != nil && m.Sum.Monotonic:
			in.Kind, in.ValueType = "counter", m.Sum.ValueType
		case m.Sum != nil:
			in.Kind, in.ValueType = "updowncounter", m.Sum.ValueType
		case m.Gauge != nil:
			in.Kind, in.ValueType = "gauge", m.Gauge.ValueType
		case m.Histogram != nil:
			in.Kind, in.ValueType, in.Buckets = "histogram", m.Histogram.ValueType, buckets(m.Histogram.Buckets)
		default:
			return nil, fmt.Errorf("%s: telemetry metric %s declares no sum, gauge or histogram", path, name)
		}
		out[prefix+name] = in
	}
	return out, nil
}

// Check creates the component's telemetry with build, on a meter provider
// that records every instrument, and fails t where it differs from what the
// metadata.yaml at path declares.
func Check(t testing.TB, path string, build func(component.TelemetrySettings) error) {
	t.Helper()
	want, err := Declared(path)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{got: map[string]Instrument{}}
	set := componenttest.NewNopTelemetrySettings()
	set.MeterProvider = rec
	if err := build(set); err != nil {
		t.Fatalf("creating the component's telemetry: %v", err)
	}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		got, ok := rec.got[name]
		switch {
		case !ok:
			t.Errorf("%s declares %s, which the component does not create", path, name)
		case got != want[name]:
			t.Errorf("%s: the component creates %s, %s declares %s", name, got, path, want[name])
		}
	}
	for _, name := range slices.Sorted(maps.Keys(rec.got)) {
		if _, ok := want[name]; !ok {
			t.Errorf("the component creates %s (%s), which %s does not declare", name, rec.got[name], path)
		}
	}
}

// recorder is a meter provider whose meters record the instruments created
// and otherwise do nothing.
type recorder struct {
	embedded.MeterProvider
	mu  sync.Mutex
	got map[string]Instrument
}

func (r *recorder) Meter(string, ...metric.MeterOption) metric.Meter { return &meter{r: r} }

func (r *recorder) add(name, kind, valueType, desc, unit string, bounds ...float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got[name] = Instrument{Description: desc, Unit: unit, Kind: kind, ValueType: valueType, Buckets: buckets(bounds)}
}

func buckets(b []float64) string {
	if len(b) == 0 {
		return ""
	}
	return fmt.Sprint(b)
}

type meter struct {
	noop.Meter
	r *recorder
}

func (m *meter) Int64Counter(name string, o ...metric.Int64CounterOption) (metric.Int64Counter, error) {
	c := metric.NewInt64CounterConfig(o...)
	m.r.add(name, "counter", "int", c.Description(), c.Unit())
	return m.Meter.Int64Counter(name, o...)
}

func (m *meter) Int64UpDownCounter(name string, o ...metric.Int64UpDownCounterOption) (metric.Int64UpDownCounter, error) {
	c := metric.NewInt64UpDownCounterConfig(o...)
	m.r.add(name, "updowncounter", "int", c.Description(), c.Unit())
	return m.Meter.Int64UpDownCounter(name, o...)
}

func (m *meter) Int64Histogram(name string, o ...metric.Int64HistogramOption) (metric.Int64Histogram, error) {
	c := metric.NewInt64HistogramConfig(o...)
	m.r.add(name, "histogram", "int", c.Description(), c.Unit(), c.ExplicitBucketBoundaries()...)
	return m.Meter.Int64Histogram(name, o...)
}

func (m *meter) Int64Gauge(name string, o ...metric.Int64GaugeOption) (metric.Int64Gauge, error) {
	c := metric.NewInt64GaugeConfig(o...)
	m.r.add(name, "gauge", "int", c.Description(), c.Unit())
	return m.Meter.Int64Gauge(name, o...)
}

func (m *meter) Int64ObservableCounter(name string, o ...metric.Int64ObservableCounterOption) (metric.Int64ObservableCounter, error) {
	c := metric.NewInt64ObservableCounterConfig(o...)
	m.r.add(name, "counter", "int", c.Description(), c.Unit())
	return m.Meter.Int64ObservableCounter(name, o...)
}

func (m *meter) Int64ObservableUpDownCounter(name string, o ...metric.Int64ObservableUpDownCounterOption) (metric.Int64ObservableUpDownCounter, error) {
	c := metric.NewInt64ObservableUpDownCounterConfig(o...)
	m.r.add(name, "updowncounter", "int", c.Description(), c.Unit())
	return m.Meter.Int64ObservableUpDownCounter(name, o...)
}

func (m *meter) Int64ObservableGauge(name string, o ...metric.Int64ObservableGaugeOption) (metric.Int64ObservableGauge, error) {
	c := metric.NewInt64ObservableGaugeConfig(o...)
	m.r.add(name, "gauge", "int", c.Description(), c.Unit())
	return m.Meter.Int64ObservableGauge(name, o...)
}

func (m *meter) Float64Counter(name string, o ...metric.Float64CounterOption) (metric.Float64Counter, error) {
	c := metric.NewFloat64CounterConfig(o...)
	m.r.add(name, "counter", "double", c.Description(), c.Unit())
	return m.Meter.Float64Counter(name, o...)
}

func (m *meter) Float64UpDownCounter(name string, o ...metric.Float64UpDownCounterOption) (metric.Float64UpDownCounter, error) {
	c := metric.NewFloat64UpDownCounterConfig(o...)
	m.r.add(name, "updowncounter", "double", c.Description(), c.Unit())
	return m.Meter.Float64UpDownCounter(name, o...)
}

func (m *meter) Float64Histogram(name string, o ...metric.Float64HistogramOption) (metric.Float64Histogram, error) {
	c := metric.NewFloat64HistogramConfig(o...)
	m.r.add(name, "histogram", "double", c.Description(), c.Unit(), c.ExplicitBucketBoundaries()...)
	return m.Meter.Float64Histogram(name, o...)
}

func (m *meter) Float64Gauge(name string, o ...metric.Float64GaugeOption) (metric.Float64Gauge, error) {
	c := metric.NewFloat64GaugeConfig(o...)
	m.r.add(name, "gauge", "double", c.Description(), c.Unit())
	return m.Meter.Float64Gauge(name, o...)
}

func (m *meter) Float64ObservableCounter(name string, o ...metric.Float64ObservableCounterOption) (metric.Float64ObservableCounter, error) {
	c := metric.NewFloat64ObservableCounterConfig(o...)
	m.r.add(name, "counter", "double", c.Description(), c.Unit())
	return m.Meter.Float64ObservableCounter(name, o...)
}

func (m *meter) Float64ObservableUpDownCounter(name string, o ...metric.Float64ObservableUpDownCounterOption) (metric.Float64ObservableUpDownCounter, error) {
	c := metric.NewFloat64ObservableUpDownCounterConfig(o...)
	m.r.add(name, "updowncounter", "double", c.Description(), c.Unit())
	return m.Meter.Float64ObservableUpDownCounter(name, o...)
}

func (m *meter) Float64ObservableGauge(name string, o ...metric.Float64ObservableGaugeOption) (metric.Float64ObservableGauge, error) {
	c := metric.NewFloat64ObservableGaugeConfig(o...)
	m.r.add(name, "gauge", "double", c.Description(), c.Unit())
	return m.Meter.Float64ObservableGauge(name, o...)
}
