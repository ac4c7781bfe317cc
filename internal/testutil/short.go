package testutil

import "testing"

// SkipIfShort skips t under `go test -short` (make test-short), giving
// reason. It is for tests that are slow rather than privileged: they run
// external programs (skopeo, umoci, runc), start many processes or build
// large trees. Unlike Unavailable it skips under CI=true too, because
// -short asks for the subset on purpose; the full run (make test) has no
// -short and runs them.
func SkipIfShort(t testing.TB, reason string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("slow, skipped under -short: %s", reason)
	}
}
