// Package executor owns running one process of a build step (a RUN
// instruction) in a fresh container whose root filesystem is an overlay of
// read-only layer directories and a fresh upper directory, and long-lived
// containers on such a root filesystem (StartContainer and the functions
// that manage them).
//
// # Lifecycle
//
// The builder prepares a snapshot (lower directories, a fresh upperdir and a
// workdir on the same filesystem), fills a Spec and calls Executor.Run. Run
// mounts the overlay inside the container's own mount namespace, so nothing
// is ever mounted on the host and a killed build leaves no mount behind. When
// Run returns, every process of the container is gone and the upperdir holds
// exactly the changes the process made: mountpoint stubs the executor had to
// create (for /etc/hosts, /etc/resolv.conf, /proc, extra mounts) are removed
// again, resolving every path inside the upperdir so that cleaning a stub can
// never touch a host file. The upperdir is then ready for layer.Diff.
//
// # Runtimes
//
// New("") returns the built-in runtime, which needs only the kernel: it
// re-executes the current binary as the container's init (see Init), which
// mounts the overlay and the usual /proc, /dev, /sys, pivots into the merged
// root and runs the process as a child, reaping zombies and forwarding its
// exit status. New("runc") (or "crun", or a path) uses an external OCI
// runtime: a re-executed helper mounts the overlay in a private mount
// namespace, writes an OCI bundle (Spec.OCI) and runs the runtime in it.
//
// Either way the current binary must call Init first thing in main (and in
// TestMain of test packages that run containers).
//
// # Isolation
//
// Every container, a RUN step's or a long-lived one, in either runtime,
// is isolated at least as docker's defaults isolate one:
//
//   - Namespaces: mount, pid, UTS, IPC, cgroup, and network unless
//     Spec.Network is "host".
//   - Capabilities: docker's 14; none for a non-root user.
//   - Seccomp: docker's default profile unless Spec.Seccomp says
//     otherwise. runc gets it as linux.seccomp; the built-in init
//     compiles it to BPF (pure Go) and loads it just before it starts the
//     process, after its own setup (mounts, keyring) is done.
//   - Network: "default" is a network namespace of its own, with a
//     user-space NAT (slirp4netns or pasta, see CheckNetwork) that the
//     executor starts for that namespace and stops with the container;
//     the host's loopback and abstract unix sockets are out of reach. The
//     NAT starts while the init sets the container up, which waits for it
//     only before it starts the process. runc's container shares the
//     namespace of the helper that execs runc.
//   - Devices: a devices cgroup denies all but the standard devices and
//     terminals (mknod is allowed, opening what it made is not): runc's,
//     or the built-in runtime's on cgroup v1. The built-in runtime mounts
//     /dev as a nodev tmpfs with the standard devices bound read-only
//     from the host, and, on cgroup v2 (no BPF device program), the root
//     filesystem nodev too. Extra mounts are nodev unless they say "dev".
//   - Keyring: a new anonymous session keyring (runc: one named after
//     the container), so the caller's keys are out of reach.
//   - cgroups: a cgroup per container (builder/<id>, below the creating
//     process's own cgroup in each v1 hierarchy, as runc places a relative
//     cgroupsPath), with Spec.Resources applied, a cgroup namespace, and
//     /sys/fs/cgroup mounted read-only inside. Cancelling a run kills the
//     whole cgroup.
//   - Lifetime: the built-in init dies with the caller's thread
//     (parent-death signal), and the container with it (pid namespace).
//     runc runs as pid 1 of a pid namespace of its own with the same
//     parent-death signal, so its containers die with it too; what it
//     leaves in its state directory is removed by CleanupRuncState, and
//     temporary directories of dead owners by SweepTemp.
//
// # Long-lived containers
//
// StartContainer starts a container that lives beyond one call, with the
// built-in runtime only. Its re-executed init is pid 1 of the container
// and its supervisor: it needs no builder process once the process runs.
// The caller owns a state directory per container, where the executor
// keeps what later processes need:
//
//	state.json  written by StartContainer: the init's host pid and start
//	            time (/proc/PID/stat field 22, so that a reused pid reads as
//	            exited), the cgroup, the upperdir, the process's defaults
//	init.json   written by the init: the mountpoint stubs it created (before
//	            the process starts) and when the process started
//	exit        written by the init, atomically, when the process exited:
//	            its status and the time
//	log         a detached container's output (stdout and stderr, or its
//	            terminal)
//	bundle/     generated hosts and resolv.conf, the rootfs mountpoint
//
// The init is placed in a cgroup of its own, builder/<id>: in the v1
// freezer, pids, memory, cpu and devices hierarchies where a v1 freezer is
// mounted (hybrid hosts included), else in the v2 hierarchy, detected when
// the container starts and recorded in state.json. The cgroup holds every process of the
// container, exec'd ones included: FreezeContainer and ThawContainer
// freeze it, KillContainer with SIGKILL and RemoveContainer kill and wait
// for what it lists (freezing it first on v1 so that nothing forks
// meanwhile; cgroup.kill on v2). Other signals go to the init, which
// forwards them to the process.
//
// When the process exits, the init kills whatever is left in the
// container, removes the mountpoint stubs from the upperdir (opened before
// it pivoted), records the exit status and exits: the upperdir then holds
// exactly the process's changes, ready to be committed. If the init itself
// was killed (SIGKILL, the OOM killer), the next ContainerStateOf or
// RemoveContainer finds it gone without an exit status, removes the stubs
// and records 137. Nothing is mounted on the host at any time.
//
// An attached container (without ContainerConfig.Detach) streams the
// caller's stdio and dies with the caller: the init's config pipe stays
// open as a lifeline, and its end makes the init kill the container. A
// detached one is in a session of its own and ignores it.
//
// ExecContainer runs a further process in a running container through a
// helper that joins its cgroup, its namespaces and its root, with the
// helper's pipe as lifeline in the same way.
//
// Spec.OCI is pure and works on any OS; running containers needs Linux and
// root.
package executor
