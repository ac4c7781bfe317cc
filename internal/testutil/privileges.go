package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
)

// InCI reports whether the tests run under CI (CI=true), where a missing
// prerequisite is a failure rather than a skip.
func InCI() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v == "true" || v == "1" || v == "yes"
}

// Unavailable skips t with reason locally, and fails it when InCI is true.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("prerequisite missing under CI=true: %s", msg)
	}
	t.Skipf("prerequisite missing (not CI, skipping): %s", msg)
}

// RequirePrivileges checks each named capability and calls Unavailable for
// the first one missing. Known names: "root", "overlay" (root on Linux; the
// mount itself is tried by the test), "userns", "linux".
func RequirePrivileges(t testing.TB, needs ...string) {
	t.Helper()
	for _, n := range needs {
		switch n {
		case "linux":
			if runtime.GOOS != "linux" {
				Unavailable(t, "needs linux, have %s", runtime.GOOS)
			}
		case "root", "overlay":
			if runtime.GOOS != "linux" || os.Geteuid() != 0 {
				Unavailable(t, "%s needs root on linux", n)
			}
		case "userns":
			if runtime.GOOS != "linux" {
				Unavailable(t, "userns needs linux")
			}
			if _, err := os.Stat("/proc/self/ns/user"); err != nil {
				Unavailable(t, "no user namespaces: %v", err)
			}
		default:
			t.Fatalf("RequirePrivileges: unknown need %q", n)
		}
	}
}

// RequireTool returns the path of an executable on PATH, or calls Unavailable.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Unavailable(t, "tool %s not on PATH (install it; .ci/run does)", name)
	}
	return p
}
