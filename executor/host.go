package executor

// Host is what the executor found on this machine and uses for every
// container (HostInfo).
type Host struct {
	// Rootless is true unless the process is root of the initial user
	// namespace; containers then run in the process's user namespace.
	Rootless bool `json:"rootless"`
	// Overlay is the kind of the overlay mounts: "userxattr" when
	// rootless (whiteouts and opaque markers in user.overlay.* xattrs),
	// "trusted" otherwise.
	Overlay string `json:"overlay"`
	// Seccomp is true when the kernel filters system calls (every
	// container gets docker's default profile unless told otherwise).
	Seccomp bool `json:"seccomp"`
	// NAT is the user-space NAT of the default network, "slirp4netns"
	// or "pasta", with its path; empty when neither is installed (RUN
	// then has no network).
	NAT     string `json:"nat,omitempty"`
	NATPath string `json:"natPath,omitempty"`
	// NATError says why there is no NAT.
	NATError string `json:"natError,omitempty"`
	// Cgroup is "v1" or "v2", the hierarchy containers get a cgroup in,
	// or "" when this process may not create one (rootless): containers
	// then run without one, so resource limits are unavailable and a
	// running container cannot be paused.
	Cgroup string `json:"cgroup"`
	// CgroupError says why there is no Cgroup.
	CgroupError string `json:"cgroupError,omitempty"`
	// Runtimes are the OCI runtimes found on PATH (runc, crun), by name,
	// with their paths; the built-in runtime is always there.
	Runtimes map[string]string `json:"runtimes,omitempty"`
}
