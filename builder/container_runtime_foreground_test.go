package builder

import (
	"errors"
	"testing"
)

// TestStartFailureCode checks docker's exit statuses for a process that
// could not start, from the messages of every runtime.
func TestStartFailureCode(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		want int
	}{
		{"starting /nope: no such file or directory", 127},
		{"starting /etc/passwd: permission denied", 126},
		{"starting /bin/x: exec format error", 126},
		{`running container with runc: runc run failed: unable to start container process: exec: "/nope": stat /nope: no such file or directory`, 127},
		{`running container with runc: runc run failed: unable to start container process: exec: "nope": executable file not found in $PATH`, 127},
		{`running container with runc: runc run failed: unable to start container process: exec: "/etc/passwd": permission denied`, 126},
		{"running container with crun: executable file `nope` not found in $PATH: No such file or directory", 127},
		{"creating cgroup: no space left on device", 125},
		{"mounting overlay: no such file or directory", 125},
	} {
		if got := startFailureCode(errors.New(tc.msg)); got != tc.want {
			t.Errorf("startFailureCode(%q) = %d, want %d", tc.msg, got, tc.want)
		}
	}
}
