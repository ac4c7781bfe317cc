//go:build race

package layer

// raceEnabled: the race detector changes what the runtime allocates.
const raceEnabled = true
