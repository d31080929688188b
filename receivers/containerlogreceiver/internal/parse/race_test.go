//go:build race

package parse

// raceEnabled skips allocation counts under the race detector, whose
// sync.Pool drops items at random (regexp pools its machines).
const raceEnabled = true
