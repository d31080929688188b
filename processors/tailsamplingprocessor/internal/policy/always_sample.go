package policy

type alwaysSample struct{}

func (alwaysSample) Evaluate(*Trace) Decision { return Sampled }

func buildAlways(*Builder, *Config, level) (Evaluator, error) { return alwaysSample{}, nil }
