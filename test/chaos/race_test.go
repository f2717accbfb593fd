//go:build race

package chaos

// raceEnabled: this test binary has the race detector, so the services it
// runs are built with it too.
const raceEnabled = true
