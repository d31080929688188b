// Package simulate is a microservice system in code: a deterministic
// discrete-event simulation of a ten-service shop on a virtual clock, which
// emits the spans, logs and metrics its OpenTelemetry SDKs would, with faults
// injected at a known origin. It is how Vigil's red-flag detectors are
// demonstrated (`vigil simulate`) and evaluated (many scenarios x seeds, each
// with its ground truth).
//
// The model: services with instances, a worker pool and a bounded queue each,
// CPU limits that compute queues for, lognormal service times, per-call
// timeouts, retries with exponential backoff and jitter, circuit breakers,
// fallbacks, database connection pools, and external dependencies (PostgreSQL,
// Redis, a third-party HTTP API) without spans of their own. Root requests
// arrive as a Poisson process with a mild diurnal swing. Overload behaves as in
// real systems: queues grow, callers time out while callees keep working on
// abandoned requests, retries amplify load, and a short trigger can leave the
// system in a metastable overloaded state.
//
// Use:
//
//	s, err := simulate.New(simulate.Config{Scenario: "error-dependency", Seed: 7})
//	truth := s.Truth() // origin, fault window, expected alerts
//	for range 360 {
//		b := s.Advance(10 * time.Second) // what completed in the last 10 s
//		_ = b.Traces                     // feed it to a detector
//	}
//
// A Sim is single-goroutine; the same Config always yields byte-identical
// telemetry. Memory holds in-flight requests only.
package simulate
