package detect

import "math"

// significant reports whether observing x events in n trials is unlikely
// (probability below e^-minInfo) if the true rate were p0. It uses the
// Chernoff bound P(X >= x) <= exp(-n KL(x/n || p0)), which holds for any n and
// stays sound for the tiny baseline rates healthy services have, where the
// normal approximation calls three errors in fifty calls "12 sigma".
func significant(x, n, p0, minInfo float64) bool {
	if n <= 0 || x <= 0 {
		return false
	}
	p := x / n
	if p <= p0 {
		return false
	}
	return n*klBernoulli(p, p0) >= minInfo
}

// klBernoulli is the Kullback-Leibler divergence of Bernoulli(p) from Bernoulli(q).
func klBernoulli(p, q float64) float64 {
	q = math.Min(math.Max(q, 1e-9), 1-1e-9)
	var kl float64
	if p > 0 {
		kl += p * math.Log(p/q)
	}
	if p < 1 {
		kl += (1 - p) * math.Log((1-p)/(1-q))
	}
	return kl
}

// poissonSignificant is significant for counts: observing x where lambda was
// expected, via the Chernoff bound for the Poisson tail.
func poissonSignificant(x, lambda, minInfo float64) bool {
	if x <= lambda || x <= 0 {
		return false
	}
	lambda = math.Max(lambda, 1e-9)
	info := x*math.Log(x/lambda) - x + lambda
	return info >= minInfo
}

func ratio(a, b uint32) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}
