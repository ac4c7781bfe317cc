//go:build !linux

package testutil

import (
	"runtime"
	"testing"
)

// MountsBelow fails t: only Linux's /proc/self/mountinfo tells this
// package what is mounted, and a check that cannot look must not pass.
func MountsBelow(t testing.TB, dirs ...string) []string {
	t.Helper()
	t.Fatalf("listing the mounts below %q: no mount table on %s", dirs, runtime.GOOS)
	return nil
}

// NoMountsBelow fails t, as MountsBelow does.
func NoMountsBelow(t testing.TB, dirs ...string) {
	t.Helper()
	MountsBelow(t, dirs...)
}
