package policy

import (
	"errors"
	"math"
	"math/big"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/sampling"
)

const defaultHashSalt = "default-hash-seed"

// probabilistic samples a trace when the 64-bit FNV-1a hash of the salt
// followed by the 16 trace-ID bytes is at most a threshold. Same hash, same
// threshold arithmetic as upstream, so a mixed fleet keeps the same traces.
type probabilistic struct {
	salt      []byte
	threshold uint64
	otel      sampling.Threshold // the OTEP 235 threshold of the same probability
}

// Threshold is the sampling threshold kept spans report (their adjusted count).
func (p *probabilistic) Threshold() sampling.Threshold { return p.otel }

func (p *probabilistic) Evaluate(t *Trace) Decision {
	if fnv1a(p.salt, t.ID[:]) <= p.threshold {
		return Sampled
	}
	return NotSampled
}

func fnv1a(salt, id []byte) uint64 {
	const offset, prime = 0xcbf29ce484222325, 0x100000001b3
	h := uint64(offset)
	for _, c := range salt {
		h ^= uint64(c)
		h *= prime
	}
	for _, c := range id {
		h ^= uint64(c)
		h *= prime
	}
	return h
}

// threshold is (2^64-1) x ratio rounded to a 64-bit mantissa, truncated to an
// integer: the exact arithmetic upstream uses (float64 arithmetic gives a
// different value, e.g. for 10%).
func threshold(ratio float64) uint64 {
	max := new(big.Float).SetInt(new(big.Int).SetUint64(math.MaxUint64))
	v, _ := max.Mul(max, big.NewFloat(ratio)).Uint64()
	return v
}

func buildProbabilistic(_ *Builder, c *Config, _ level) (Evaluator, error) {
	cfg := ProbabilisticCfg{}
	if c.Probabilistic != nil {
		cfg = *c.Probabilistic
	}
	if math.IsNaN(cfg.SamplingPercentage) || math.IsInf(cfg.SamplingPercentage, 0) {
		return nil, errors.New("probabilistic: sampling_percentage must be a finite number")
	}
	salt := cfg.HashSalt
	if salt == "" {
		salt = defaultHashSalt
	}
	ratio := cfg.SamplingPercentage / 100
	th, err := sampling.ProbabilityToThreshold(ratio)
	if err != nil {
		th = sampling.NeverSampleThreshold
		if ratio >= 1 {
			th = sampling.AlwaysSampleThreshold
		}
	}
	return &probabilistic{salt: []byte(salt), threshold: threshold(ratio), otel: th}, nil
}
