package builder

import (
	"fmt"
	"strings"

	"github.com/builder-project/builder/executor"
)

// Isolation are the settings of the sandbox RUN steps and containers run
// in, beyond the namespaces every one gets. The zero value is docker's
// default: its seccomp profile and no resource limit.
type Isolation struct {
	// Seccomp is "" for docker's default profile, "unconfined" for no
	// filter, or the path of a profile in docker's JSON format
	// (--security-opt seccomp=…).
	Seccomp string
	// Memory limits memory in bytes (--memory); 0 is no limit.
	Memory int64
	// CPUs limits CPU time, in CPUs (--cpus 1.5); 0 is no limit.
	CPUs float64
	// PidsLimit limits processes and threads (--pids-limit); 0 or less is
	// no limit.
	PidsLimit int64
}

// ParseSecurityOpt applies one docker --security-opt value: only
// seccomp=unconfined|PATH is supported; anything else is an error, never
// silently ignored.
func (i *Isolation) ParseSecurityOpt(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok {
		k, v, ok = strings.Cut(s, ":") // docker's older form
	}
	if !ok || k != "seccomp" || v == "" {
		return fmt.Errorf("--security-opt %q: only seccomp=unconfined or seccomp=PROFILE.json is supported", s)
	}
	i.Seccomp = v
	return nil
}

// check reports values the executor cannot apply.
func (i Isolation) check() error {
	if i.Memory < 0 || i.CPUs < 0 {
		return fmt.Errorf("--memory and --cpus cannot be negative")
	}
	return nil
}

// apply sets the isolation fields of a spec.
func (i Isolation) apply(s *executor.Spec) {
	s.Seccomp = i.Seccomp
	s.Resources = executor.Resources{Memory: i.Memory, CPUs: i.CPUs, PidsLimit: i.PidsLimit}
}
