package simulate

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// DefaultStart is the virtual start time used when Config.Start is zero: a
// fixed instant, so a run is reproducible from its seed alone.
var DefaultStart = time.Date(2026, time.January, 5, 8, 0, 0, 0, time.UTC)

// Defaults used when the corresponding Config field is zero.
const (
	DefaultRootRate      = 30.0
	DefaultFaultAfter    = 10 * time.Minute
	DefaultFaultDuration = 10 * time.Minute
	// MaxRootRate bounds the root request rate (per second).
	MaxRootRate = 5000.0
)

// Config selects what a Sim simulates. The zero value of a field means its
// default (documented per field); negative or out-of-range values are errors.
type Config struct {
	// Scenario is one of the names Scenarios returns; "" means "healthy".
	Scenario string
	// Seed drives every random choice: the scenario's parameters (origin,
	// fault size) and the traffic. The same Config gives the same telemetry.
	Seed int64
	// Start is the virtual time of the first instant; zero means DefaultStart.
	Start time.Time
	// RootRate is the mean rate of root requests at the edge, per second
	// (Poisson arrivals, with a mild diurnal swing); zero means 30. Scenarios
	// that change load (traffic-surge, low-traffic) scale it.
	RootRate float64
	// FaultAfter is when the (first) fault or perturbation starts, after
	// Start; zero means 10 minutes, which gives detectors a baseline.
	FaultAfter time.Duration
	// FaultDuration is how long the fault lasts; zero means 10 minutes. For
	// metastable it is the time until the overload is mitigated (the trigger
	// itself is 40 to 90 s).
	FaultDuration time.Duration
	// Topology replaces DefaultTopology; scenarios that name services expect
	// the default's service names.
	Topology *Topology
}

// DefaultConfig returns the healthy scenario with seed 1 and every default.
func DefaultConfig() Config {
	return Config{Scenario: "healthy", Seed: 1, Start: DefaultStart, RootRate: DefaultRootRate,
		FaultAfter: DefaultFaultAfter, FaultDuration: DefaultFaultDuration}
}

// withDefaults validates c and fills in zero fields. Errors name the field.
func (c Config) withDefaults() (Config, error) {
	if c.Scenario == "" {
		c.Scenario = "healthy"
	}
	if findScenario(c.Scenario) == nil {
		return c, fmt.Errorf("scenario: unknown %q (known: %s)", c.Scenario, strings.Join(ScenarioNames(), ", "))
	}
	if c.Start.IsZero() {
		c.Start = DefaultStart
	}
	if y := c.Start.Year(); y < 1971 || y > 2200 {
		return c, fmt.Errorf("start: %s is outside the years 1971 to 2200", c.Start.Format(time.RFC3339))
	}
	switch {
	case math.IsNaN(c.RootRate) || c.RootRate < 0 || c.RootRate > MaxRootRate:
		return c, fmt.Errorf("root_rate: %v not in (0, %v] requests/s", c.RootRate, MaxRootRate)
	case c.RootRate == 0:
		c.RootRate = DefaultRootRate
	}
	const maxDur = 30 * 24 * time.Hour
	switch {
	case c.FaultAfter < 0 || c.FaultAfter > maxDur:
		return c, fmt.Errorf("fault_after: %v not in [0, %v]", c.FaultAfter, maxDur)
	case c.FaultAfter == 0:
		c.FaultAfter = DefaultFaultAfter
	}
	switch {
	case c.FaultDuration < 0 || c.FaultDuration > maxDur:
		return c, fmt.Errorf("fault_duration: %v not in [0, %v]", c.FaultDuration, maxDur)
	case c.FaultDuration == 0:
		c.FaultDuration = DefaultFaultDuration
	case c.FaultDuration < time.Second:
		return c, fmt.Errorf("fault_duration: %v is shorter than 1s", c.FaultDuration)
	}
	var topo Topology
	if c.Topology == nil {
		topo = DefaultTopology()
	} else {
		topo = c.Topology.clone()
	}
	if err := topo.validate(); err != nil {
		return c, err
	}
	c.Topology = &topo
	return c, nil
}

// ScenarioNames returns the scenario names in a stable order.
func ScenarioNames() []string {
	out := make([]string, 0, len(scenarios))
	for _, s := range scenarios {
		out = append(out, s.info.Name)
	}
	return out
}

// Scenarios describes every scenario: name, description, whether it is a
// negative control, and the alerts a good detector raises for it.
func Scenarios() []ScenarioInfo {
	out := make([]ScenarioInfo, 0, len(scenarios))
	for _, s := range scenarios {
		info := s.info
		info.Expect = append([]string(nil), info.Expect...)
		sort.Strings(info.Expect)
		out = append(out, info)
	}
	return out
}

func findScenario(name string) *scenarioDef {
	for i := range scenarios {
		if scenarios[i].info.Name == name {
			return &scenarios[i]
		}
	}
	return nil
}
