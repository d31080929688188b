package policy

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"go.opentelemetry.io/collector/confmap"
)

// Config is one entry of `policies` (or of a sub-policy list), in the contrib
// tail_sampling format: a name, a type, and a block named after the type.
// Decoding is strict: a key that is neither name, type nor a policy block is
// an error naming it. (Upstream silently accepts unknown mapping-valued keys
// for extension policies, so a typo like `latencyy:` is ignored there.)
type Config struct {
	Name string `mapstructure:"name"`
	Type string `mapstructure:"type"`

	Latency          *LatencyCfg          `mapstructure:"latency"`
	NumericAttribute *NumericAttributeCfg `mapstructure:"numeric_attribute"`
	Probabilistic    *ProbabilisticCfg    `mapstructure:"probabilistic"`
	StatusCode       *StatusCodeCfg       `mapstructure:"status_code"`
	StringAttribute  *StringAttributeCfg  `mapstructure:"string_attribute"`
	RateLimiting     *RateLimitingCfg     `mapstructure:"rate_limiting"`
	BytesLimiting    *BytesLimitingCfg    `mapstructure:"bytes_limiting"`
	SpanCount        *SpanCountCfg        `mapstructure:"span_count"`
	TraceState       *TraceStateCfg       `mapstructure:"trace_state"`
	BooleanAttribute *BooleanAttributeCfg `mapstructure:"boolean_attribute"`
	OTTLCondition    *OTTLConditionCfg    `mapstructure:"ottl_condition"`
	And              *AndCfg              `mapstructure:"and"`
	Not              *NotCfg              `mapstructure:"not"`
	Drop             *DropCfg             `mapstructure:"drop"`
	Composite        *CompositeCfg        `mapstructure:"composite"`
	RedFlag          *RedFlagCfg          `mapstructure:"red_flag"`
}

// LatencyCfg samples traces whose duration is above threshold_ms (and at most
// upper_threshold_ms when set).
type LatencyCfg struct {
	ThresholdMs      int64 `mapstructure:"threshold_ms"`
	UpperThresholdMs int64 `mapstructure:"upper_threshold_ms"`
}

// NumericAttributeCfg samples traces with an int attribute in [min, max].
type NumericAttributeCfg struct {
	Key         string `mapstructure:"key"`
	MinValue    int64  `mapstructure:"min_value"`
	MaxValue    int64  `mapstructure:"max_value"`
	InvertMatch bool   `mapstructure:"invert_match"`
}

// ProbabilisticCfg samples a share of traces by hashing the trace ID.
type ProbabilisticCfg struct {
	HashSalt           string  `mapstructure:"hash_salt"`
	SamplingPercentage float64 `mapstructure:"sampling_percentage"`
}

// StatusCodeCfg samples traces with a span of one of the status codes.
type StatusCodeCfg struct {
	StatusCodes []string `mapstructure:"status_codes"`
}

// StringAttributeCfg samples traces with a string attribute in values.
type StringAttributeCfg struct {
	Key                  string   `mapstructure:"key"`
	Values               []string `mapstructure:"values"`
	EnabledRegexMatching bool     `mapstructure:"enabled_regex_matching"`
	CacheMaxSize         int      `mapstructure:"cache_max_size"`
	InvertMatch          bool     `mapstructure:"invert_match"`
}

// RateLimitingCfg samples traces while a spans-per-second budget lasts.
type RateLimitingCfg struct {
	SpansPerSecond int64 `mapstructure:"spans_per_second"`
	BurstCapacity  int64 `mapstructure:"burst_capacity"`
}

// BytesLimitingCfg samples traces while a bytes-per-second budget lasts.
type BytesLimitingCfg struct {
	BytesPerSecond int64 `mapstructure:"bytes_per_second"`
	BurstCapacity  int64 `mapstructure:"burst_capacity"`
}

// SpanCountCfg samples traces with between min and max spans.
type SpanCountCfg struct {
	MinSpans int32 `mapstructure:"min_spans"`
	MaxSpans int32 `mapstructure:"max_spans"`
}

// TraceStateCfg samples traces with a tracestate key in values.
type TraceStateCfg struct {
	Key    string   `mapstructure:"key"`
	Values []string `mapstructure:"values"`
}

// BooleanAttributeCfg samples traces with a bool attribute equal to value.
type BooleanAttributeCfg struct {
	Key         string `mapstructure:"key"`
	Value       bool   `mapstructure:"value"`
	InvertMatch bool   `mapstructure:"invert_match"`
}

// OTTLConditionCfg samples traces with a span or span event matching an OTTL condition.
type OTTLConditionCfg struct {
	ErrorMode           string   `mapstructure:"error_mode"`
	SpanConditions      []string `mapstructure:"span"`
	SpanEventConditions []string `mapstructure:"spanevent"`
}

// AndCfg samples when every sub-policy samples.
type AndCfg struct {
	SubPolicies []Config `mapstructure:"and_sub_policy"`
}

// NotCfg inverts its sub-policy.
type NotCfg struct {
	SubPolicy *Config `mapstructure:"not_sub_policy"`
}

// DropCfg drops traces every sub-policy samples.
type DropCfg struct {
	SubPolicies []Config `mapstructure:"drop_sub_policy"`
}

// CompositeCfg shares a spans-per-second budget among sub-policies.
type CompositeCfg struct {
	MaxTotalSpansPerSecond int64               `mapstructure:"max_total_spans_per_second"`
	PolicyOrder            []string            `mapstructure:"policy_order"`
	SubPolicies            []Config            `mapstructure:"composite_sub_policy"`
	RateAllocation         []RateAllocationCfg `mapstructure:"rate_allocation"`
}

// RateAllocationCfg gives a composite sub-policy a percent of the budget.
type RateAllocationCfg struct {
	Policy  string `mapstructure:"policy"`
	Percent int64  `mapstructure:"percent"`
}

// RedFlagCfg samples every trace that crosses an edge or service the redflag
// connector has flagged (Vigil's own policy type).
type RedFlagCfg struct {
	// Status names the vigil_status extension the connector publishes to.
	Status string `mapstructure:"status"`
}

// blocks maps each policy block key to where it decodes.
func (c *Config) blocks() map[string]any {
	return map[string]any{
		"latency": &c.Latency, "numeric_attribute": &c.NumericAttribute, "probabilistic": &c.Probabilistic,
		"status_code": &c.StatusCode, "string_attribute": &c.StringAttribute, "rate_limiting": &c.RateLimiting,
		"bytes_limiting": &c.BytesLimiting, "span_count": &c.SpanCount, "trace_state": &c.TraceState,
		"boolean_attribute": &c.BooleanAttribute, "ottl_condition": &c.OTTLCondition, "and": &c.And,
		"not": &c.Not, "drop": &c.Drop, "composite": &c.Composite, "red_flag": &c.RedFlag,
	}
}

var _ confmap.Unmarshaler = (*Config)(nil)

// Unmarshal decodes one policy entry strictly.
func (c *Config) Unmarshal(conf *confmap.Conf) error {
	raw := conf.ToStringMap()
	blocks := c.blocks()
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(raw)) {
		if k == "name" || k == "type" {
			continue
		}
		if _, ok := blocks[k]; !ok {
			errs = append(errs, fmt.Errorf("unknown key %q in policy %q (an entry has name, type and a block named after its type)", k, fmt.Sprint(raw["name"])))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	for key, dst := range map[string]*string{"name": &c.Name, "type": &c.Type} {
		v, ok := raw[key]
		if !ok || v == nil {
			continue
		}
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("policy %s: expected a string, got %T %v", key, v, v)
		}
		*dst = s
	}
	for _, k := range slices.Sorted(maps.Keys(blocks)) {
		if _, ok := raw[k]; !ok {
			continue
		}
		sub, err := conf.Sub(k)
		if err != nil {
			return err
		}
		if err := decodeBlock(sub, k, blocks[k]); err != nil {
			return fmt.Errorf("policy %q: '%s' %w", c.Name, k, err)
		}
	}
	return nil
}

// decodeBlock allocates the block's struct and decodes into it.
func decodeBlock(conf *confmap.Conf, key string, dst any) error {
	switch p := dst.(type) {
	case **LatencyCfg:
		*p = &LatencyCfg{}
		return conf.Unmarshal(*p)
	case **NumericAttributeCfg:
		*p = &NumericAttributeCfg{}
		return conf.Unmarshal(*p)
	case **ProbabilisticCfg:
		*p = &ProbabilisticCfg{}
		return conf.Unmarshal(*p)
	case **StatusCodeCfg:
		*p = &StatusCodeCfg{}
		return conf.Unmarshal(*p)
	case **StringAttributeCfg:
		*p = &StringAttributeCfg{}
		return conf.Unmarshal(*p)
	case **RateLimitingCfg:
		*p = &RateLimitingCfg{}
		return conf.Unmarshal(*p)
	case **BytesLimitingCfg:
		*p = &BytesLimitingCfg{}
		return conf.Unmarshal(*p)
	case **SpanCountCfg:
		*p = &SpanCountCfg{}
		return conf.Unmarshal(*p)
	case **TraceStateCfg:
		*p = &TraceStateCfg{}
		return conf.Unmarshal(*p)
	case **BooleanAttributeCfg:
		*p = &BooleanAttributeCfg{}
		return conf.Unmarshal(*p)
	case **OTTLConditionCfg:
		*p = &OTTLConditionCfg{}
		return conf.Unmarshal(*p)
	case **AndCfg:
		*p = &AndCfg{}
		return conf.Unmarshal(*p)
	case **NotCfg:
		*p = &NotCfg{}
		return conf.Unmarshal(*p)
	case **DropCfg:
		*p = &DropCfg{}
		return conf.Unmarshal(*p)
	case **CompositeCfg:
		*p = &CompositeCfg{}
		return conf.Unmarshal(*p)
	case **RedFlagCfg:
		*p = &RedFlagCfg{}
		return conf.Unmarshal(*p)
	}
	return fmt.Errorf("no decoder for %s", key)
}

// level is where a policy entry sits; each level allows some types.
type level int

const (
	levelTop level = iota
	levelComposite
	levelAnd // and_sub_policy and drop_sub_policy
	levelNot
)

func (l level) String() string {
	return [...]string{"policies", "composite_sub_policy", "and_sub_policy/drop_sub_policy", "not_sub_policy"}[l]
}

var sharedTypes = []string{
	"always_sample", "latency", "numeric_attribute", "probabilistic", "status_code", "string_attribute",
	"rate_limiting", "bytes_limiting", "span_count", "trace_state", "boolean_attribute", "ottl_condition",
	"trace_flags", "red_flag",
}

// allowed reports whether a type may appear at a level: the nesting upstream
// allows (top -> composite -> and -> not -> a shared type).
func (l level) allowed(t string) bool {
	if slices.Contains(sharedTypes, t) {
		return true
	}
	switch l {
	case levelTop:
		return t == "composite" || t == "and" || t == "not" || t == "drop"
	case levelComposite:
		return t == "and"
	case levelAnd:
		return t == "not"
	}
	return false
}

var errTooManyPredicates = fmt.Errorf("more than %d span-level conditions (attribute, trace_state, trace_flags, latency, ottl_condition policies) in one processor", maxBits)

func knownTypes() string {
	return strings.Join(append(slices.Clone(sharedTypes), "and", "not", "drop", "composite"), ", ")
}
