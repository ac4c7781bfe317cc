package testutil

import (
	"testing"
	"time"
)

// WaitUntil polls cond every 20 ms until it reports true, and fails t
// ("timed out waiting for what") when d has passed first.
func WaitUntil(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
