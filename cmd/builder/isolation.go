package main

import (
	"fmt"

	"github.com/builder-project/builder/builder"
	units "github.com/docker/go-units"
	"github.com/spf13/pflag"
)

// isolationFlags adds docker's sandbox flags (--security-opt, --memory,
// --cpus, --pids-limit) and returns what they say once parsed.
func isolationFlags(fs *pflag.FlagSet) func() (builder.Isolation, error) {
	secOpts := fs.StringArray("security-opt", nil, "security options: seccomp=unconfined or seccomp=PROFILE.json")
	memory := fs.StringP("memory", "m", "", "memory limit (e.g. 512m, 2g)")
	cpus := fs.Float64("cpus", 0, "number of CPUs (e.g. 1.5)")
	pids := fs.Int64("pids-limit", 0, "process limit (0 or -1: unlimited)")
	return func() (builder.Isolation, error) {
		iso := builder.Isolation{CPUs: *cpus, PidsLimit: *pids}
		for _, o := range *secOpts {
			if err := iso.ParseSecurityOpt(o); err != nil {
				return iso, err
			}
		}
		if *memory != "" {
			n, err := units.RAMInBytes(*memory)
			if err != nil {
				return iso, fmt.Errorf("--memory %q: %w", *memory, err)
			}
			iso.Memory = n
		}
		return iso, nil
	}
}
