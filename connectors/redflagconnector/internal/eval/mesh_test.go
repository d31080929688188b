package eval

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vigilhq/vigil/connectors/redflagconnector/internal/detect"
	"github.com/vigilhq/vigil/internal/simulate"
)

// With no span at all, only what Istio's sidecars report for the same calls,
// a cascade is paged naming the service it started in, and a fault a circuit
// breaker contains (the mesh's UO responses) is an IsolatedFailure, not a
// cascade. Seeds from the tuning range.
func TestMeshOnlyRedFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates 35 minutes twice")
	}
	o := Options{Rate: 30, FaultAfter: 15 * time.Minute, FaultDuration: 10 * time.Minute, After: 10 * time.Minute,
		Config: detect.DefaultConfig(), JoinSample: 1, Mesh: true}
	for _, tc := range []struct {
		scenario string
		headline string
	}{
		{"error-dependency", simulate.AlertCascadingFailure},
		{"cpu-starvation", simulate.AlertCascadingFailure},
		{"contained-by-fallback", simulate.AlertIsolatedFailure},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			r, err := Simulate(tc.scenario, 3, o)
			require.NoError(t, err)
			s := ScoreRun(r)
			require.Len(t, r.Truth.Faults, 1)
			f := r.Truth.Faults[0]
			assert.True(t, s.Detected[0], "%s not raised for %s; fired %s", tc.headline, f.Origin, firedNames(r.Firings))
			if tc.headline == simulate.AlertCascadingFailure {
				assert.Equal(t, 1, s.OriginCorrect[0], "origin %s; fired %s", f.Origin, firedNames(r.Firings))
			}
			for _, fp := range s.FalsePositives {
				if fp.Name() == simulate.AlertCascadingFailure {
					t.Errorf("a cascade no fault explains: %v", fp.Labels)
				}
			}
		})
	}
}
