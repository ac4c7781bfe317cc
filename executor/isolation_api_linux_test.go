package executor

// The probes reach the isolation API only through these helpers, so that
// they can run against an executor without it (with this file replaced)
// to show that each probe fails there.

// withSeccomp returns s with Spec.Seccomp set to v.
func withSeccomp(s Spec, v string) Spec {
	s.Seccomp = v
	return s
}

// withLimits returns s with a memory, CPU and pids limit.
func withLimits(s Spec, memory int64, cpus float64, pids int64) Spec {
	s.Resources = Resources{Memory: memory, CPUs: cpus, PidsLimit: pids}
	return s
}

// cleanupRuncState is CleanupRuncState.
func cleanupRuncState(dir string) error { return CleanupRuncState(dir) }

// sweepTemp is SweepTemp, without the grace period for new directories.
func sweepTemp() error {
	old := sweepMinAge
	sweepMinAge = 0
	defer func() { sweepMinAge = old }()
	return SweepTemp()
}

// checkNetwork is CheckNetwork.
func checkNetwork() error { return CheckNetwork() }
