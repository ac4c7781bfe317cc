// Package executor owns running one process of a build step (a RUN
// instruction) in a fresh container whose root filesystem is an overlay of
// read-only layer directories and a fresh upper directory.
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
// Spec.OCI is pure and works on any OS; running containers needs Linux and
// root.
package executor
