//go:build !linux

package executor

import specs "github.com/opencontainers/runtime-spec/specs-go"

// seccompProfile leaves the seccomp section empty: Docker's profiles are
// defined for Linux only, and containers run only there.
func seccompProfile(string, *specs.Spec) (*specs.LinuxSeccomp, error) { return nil, nil }
