package executor

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// Spec describes one container run. The zero values of the optional fields
// select the defaults documented on each field.
type Spec struct {
	// Lowers are the overlay lower directories, topmost first. When empty,
	// the runner uses an empty directory as the only lower.
	Lowers []string
	// Upper and Work are a fresh overlay upperdir and workdir on the same
	// filesystem. After Run, Upper holds the changes made by the process.
	Upper, Work string
	// Args is the argv of the process; the caller wraps shell-form
	// commands in a shell. Args[0] without a slash is looked up in the PATH
	// of Env inside the container.
	Args []string
	// Env holds KEY=VALUE pairs. PATH defaults to DefaultPath and HOME to
	// the user's home directory from the container's /etc/passwd.
	Env []string
	// Cwd is the absolute working directory inside the container, "/" by
	// default. It is created (owned by root, mode 0755) when missing, and
	// stays in the upperdir as Docker's WORKDIR does.
	Cwd string
	// User is "", name, uid, name:group, uid:gid (any mix). It is resolved
	// against /etc/passwd and /etc/group of the merged root filesystem.
	// Without a group, supplementary groups come from /etc/group. An
	// unknown name is an error. "" means root.
	User string
	// Hostname defaults to a random 12-character hex string.
	Hostname string
	// Network is "default" (also when empty), "host" or "none".
	//
	// "default" gives the container a network namespace of its own with
	// the loopback interface up and outbound connectivity through a
	// user-space NAT, slirp4netns (preferred) or pasta, which the runtime
	// starts for that namespace and stops with it: the host's loopback
	// services and abstract unix sockets are out of reach, outbound TCP
	// and UDP work, and /etc/resolv.conf (unless ResolvConf is set) names
	// the NAT's DNS forwarder (slirp4netns: 10.0.2.3; pasta: 169.254.1.1,
	// forwarded to the host's first resolver). When neither tool is
	// installed, "default" means "none", never the host's network;
	// CheckNetwork reports that.
	//
	// "host" shares the host's network namespace. "none" is a namespace
	// with only the loopback interface, brought up.
	Network string
	// Seccomp selects the seccomp filter of the process: "" for Docker's
	// default profile (github.com/moby/profiles/seccomp, adjusted to the
	// process's capabilities as Docker does), "unconfined" for none, or
	// the path of a profile in Docker's JSON format (what docker run
	// --security-opt seccomp=PATH takes). /proc/self/status then shows
	// "Seccomp: 2" (filtered) or "Seccomp: 0" (unconfined).
	Seccomp string
	// Resources limits the container's memory, CPU and number of
	// processes; the zero value means no limit.
	Resources Resources
	// Mounts are extra mounts, applied after the standard ones in order.
	Mounts []Mount
	// Hosts and ResolvConf are host files bind-mounted read-only onto
	// /etc/hosts and /etc/resolv.conf. When empty, the runner generates a
	// hosts file (localhost and Hostname) and copies the host's
	// /etc/resolv.conf. Mountpoint stubs never remain in the upperdir.
	Hosts, ResolvConf string
}

// SeccompUnconfined is the Spec.Seccomp value that runs the process
// without a seccomp filter.
const SeccompUnconfined = "unconfined"

// Resources are the limits of a container's cgroup. Every process of the
// container counts: its init (built-in runtime) and whatever the process
// starts. Zero fields mean no limit.
type Resources struct {
	// Memory is the memory limit in bytes (docker --memory): cgroup v1
	// memory.limit_in_bytes, v2 memory.max. Exceeding it invokes the OOM
	// killer inside the container.
	Memory int64
	// CPUs is the number of CPUs the container may use (docker --cpus,
	// e.g. 1.5): a CFS quota of CPUs times a 100ms period (v1
	// cpu.cfs_quota_us and cpu.cfs_period_us, v2 cpu.max).
	CPUs float64
	// PidsLimit is the maximum number of processes and threads (docker
	// --pids-limit): v1 and v2 pids.max. Negative means unlimited, as
	// with docker.
	PidsLimit int64
}

// Mount is an extra mount at a path inside the container, such as the ones
// RUN --mount asks for.
type Mount struct {
	// Type is "bind" or "tmpfs".
	Type string
	// Source is the host path of a bind mount; it is ignored for tmpfs.
	// The caller is responsible for resolving it safely.
	Source string
	// Destination is the absolute path inside the container. It is
	// resolved inside the root filesystem, and a missing mountpoint is
	// created for the run and removed afterwards.
	Destination string
	// Options are OCI mount options such as "ro", "rw", "nosuid" or
	// "size=64m". Bind mounts are recursive unless "bind" is given.
	Options []string
}

// IO connects the process's standard streams. A nil Stdin reads from
// /dev/null; a nil Stdout or Stderr discards the output.
type IO struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Resize carries the window size (rows, columns) of the caller's
	// terminal to a process that has a pseudo-terminal
	// (ContainerConfig.Terminal, ProcessSpec.Terminal): sizes waiting in
	// the channel when the process starts give its initial size, later
	// ones resize it. Run ignores it.
	Resize <-chan [2]uint16
}

// ErrNoNAT reports that neither pasta nor slirp4netns is installed, so
// that a container's default network has no outbound connectivity: it
// gets a network namespace with only the loopback interface, as with
// Spec.Network "none", and never the host's (see CheckNetwork).
var ErrNoNAT = errors.New("no pasta or slirp4netns: RUN steps have no network")

// ExitError reports that the process ran and exited with a non-zero status.
// A process killed by signal N reports 128+N, as a shell would.
type ExitError struct {
	Code int
}

// Error implements error.
func (e *ExitError) Error() string {
	return fmt.Sprintf("process exited with code %d", e.Code)
}

// Executor runs the steps of a build that need a root filesystem: RUN
// steps as processes (Run), and COPY and WORKDIR steps as file work on a
// mounted root filesystem without a process (WithRootfs).
//
// Run returns nil when the process exits with status 0, an *ExitError for
// any other status, and a different error when the container could not be
// set up. Cancelling ctx kills the whole process tree; Run returns ctx's
// error only after every process is gone. No mount is ever made on the
// host, so none is left behind either way.
//
// WithRootfs mounts each root filesystem and calls fn with their paths, in
// order; the mounts are gone when it returns (see the package function
// WithRootfs for the built-in way of doing that).
type Executor interface {
	Run(ctx context.Context, s Spec, stdio IO) error
	WithRootfs(mounts []RootfsMount, fn func(roots []string) error) error
}

// Runtime names accepted by New.
const (
	// Builtin selects the built-in runtime; "" selects it too.
	Builtin = "builtin"
	// Runc selects the runc binary found on PATH.
	Runc = "runc"
	// Crun selects the crun binary found on PATH.
	Crun = "crun"
)

// New returns an Executor for runtime: "" or Builtin for the built-in
// runtime, or the name (looked up on PATH) or path of an OCI runtime
// binary that understands runc's command line, such as runc or crun.
func New(runtime string) (Executor, error) {
	if runtime == "" || runtime == Builtin {
		return newBuiltin()
	}
	return newOCIRuntime(runtime)
}
