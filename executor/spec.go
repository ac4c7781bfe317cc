package executor

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// DefaultPath is the PATH a process gets when Spec.Env sets none.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Network modes accepted in Spec.Network.
const (
	NetworkDefault = "default"
	NetworkHost    = "host"
	NetworkNone    = "none"
)

// defaultNofile is the RLIMIT_NOFILE (soft and hard) a process gets, as in
// Docker.
const defaultNofile = 1048576

// defaultCapabilities is Docker's default capability set.
var defaultCapabilities = []string{
	"CAP_CHOWN",
	"CAP_DAC_OVERRIDE",
	"CAP_FSETID",
	"CAP_FOWNER",
	"CAP_MKNOD",
	"CAP_NET_RAW",
	"CAP_SETGID",
	"CAP_SETUID",
	"CAP_SETFCAP",
	"CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT",
	"CAP_KILL",
	"CAP_AUDIT_WRITE",
}

// maskedPaths and readonlyPaths follow Docker's defaults.
var (
	maskedPaths = []string{
		"/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore",
		"/proc/keys", "/proc/latency_stats", "/proc/timer_list",
		"/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
		"/sys/firmware", "/sys/devices/virtual/powercap",
	}
	readonlyPaths = []string{
		"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
	}
)

// OCI returns the runtime-spec configuration for s. It is pure but for
// reading the seccomp profile Spec.Seccomp names, if any, so it works on
// any OS; the seccomp section is filled in on Linux only, where Docker's
// profiles are defined. Root.Path is "rootfs". The network namespace is
// listed unless Network is "host"; the runners may provide it themselves
// (see Spec.Network).
//
// User is only partly resolved here: "" becomes root, a numeric "uid" or
// "uid:gid" becomes those IDs, and a name stays in Process.User.Username
// with UID 0. The runners resolve names (and supplementary groups) against
// the merged root filesystem and replace Process.User before starting the
// process. Mounts for /etc/hosts and /etc/resolv.conf appear only when
// Hosts and ResolvConf are set; the runners fill them in first.
func (s Spec) OCI() (*specs.Spec, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	user, err := numericUser(s.User)
	if err != nil {
		return nil, err
	}
	caps := append([]string(nil), defaultCapabilities...)
	hostname := s.Hostname
	if hostname == "" {
		hostname = randomHostname()
	}
	sp := &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			User: user,
			Args: append([]string(nil), s.Args...),
			Env:  withDefaultEnv(s.Env, "PATH", DefaultPath),
			Cwd:  s.cwd(),
			Capabilities: &specs.LinuxCapabilities{
				Bounding:  caps,
				Effective: caps,
				Permitted: caps,
			},
			Rlimits: []specs.POSIXRlimit{
				{Type: "RLIMIT_NOFILE", Hard: defaultNofile, Soft: defaultNofile},
			},
			NoNewPrivileges: false,
		},
		Root:     &specs.Root{Path: "rootfs"},
		Hostname: hostname,
		Mounts:   standardMounts(),
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.MountNamespace},
				{Type: specs.PIDNamespace},
				{Type: specs.UTSNamespace},
				{Type: specs.IPCNamespace},
			},
			// The standard devices (/dev/null, zero, full, random, urandom,
			// tty) are not listed in Devices: the runtime-spec has runtimes
			// provide them.
			Resources:     s.Resources.oci(),
			MaskedPaths:   append([]string(nil), maskedPaths...),
			ReadonlyPaths: append([]string(nil), readonlyPaths...),
		},
	}
	if s.Network != NetworkHost {
		sp.Linux.Namespaces = append(sp.Linux.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace})
	}
	sp.Linux.Namespaces = append(sp.Linux.Namespaces, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	if sp.Linux.Seccomp, err = seccompProfile(s.Seccomp, sp); err != nil {
		return nil, err
	}
	for _, f := range []struct{ src, dst string }{{s.Hosts, "/etc/hosts"}, {s.ResolvConf, "/etc/resolv.conf"}} {
		if f.src != "" {
			sp.Mounts = append(sp.Mounts, specs.Mount{
				Destination: f.dst, Type: "bind", Source: f.src,
				Options: []string{"rbind", "ro", "nosuid", "nodev", "noexec"},
			})
		}
	}
	for _, m := range s.Mounts {
		sp.Mounts = append(sp.Mounts, m.oci())
	}
	return sp, nil
}

func (s Spec) cwd() string {
	if s.Cwd == "" {
		return "/"
	}
	return path.Clean(s.Cwd)
}

func (s Spec) validate() error {
	if len(s.Args) == 0 || s.Args[0] == "" {
		return fmt.Errorf("validating spec: no command given")
	}
	if s.Cwd != "" && !path.IsAbs(s.Cwd) {
		return fmt.Errorf("validating spec: working directory %q is not absolute", s.Cwd)
	}
	switch s.Network {
	case "", NetworkDefault, NetworkHost, NetworkNone:
	default:
		return fmt.Errorf("validating spec: unknown network mode %q (want default, host or none)", s.Network)
	}
	if r := s.Resources; r.Memory < 0 || r.CPUs < 0 || (r.CPUs > 0 && r.CPUs*cfsPeriod < 1000) {
		return fmt.Errorf("validating spec: invalid resources %+v (memory and CPUs must not be negative, CPUs at least 0.01)", r)
	}
	for _, e := range s.Env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			return fmt.Errorf("validating spec: environment entry %q is not KEY=VALUE", e)
		}
	}
	for _, m := range s.Mounts {
		if !path.IsAbs(m.Destination) || path.Clean(m.Destination) == "/" {
			return fmt.Errorf("validating spec: mount destination %q must be an absolute path other than /", m.Destination)
		}
		switch m.Type {
		case "bind":
			if !path.IsAbs(m.Source) {
				return fmt.Errorf("validating spec: bind mount source %q for %s is not an absolute path", m.Source, m.Destination)
			}
		case "tmpfs":
		default:
			return fmt.Errorf("validating spec: unsupported mount type %q for %s (want bind or tmpfs)", m.Type, m.Destination)
		}
	}
	return nil
}

func (m Mount) oci() specs.Mount {
	om := specs.Mount{Destination: path.Clean(m.Destination), Type: m.Type, Source: m.Source}
	switch m.Type {
	case "bind":
		if !hasOption(m.Options, "bind") && !hasOption(m.Options, "rbind") {
			om.Options = append(om.Options, "rbind")
		}
	case "tmpfs":
		om.Source = "tmpfs"
	}
	om.Options = append(om.Options, m.Options...)
	// A device node in a mount is no way to reach a host device.
	if !hasOption(om.Options, "dev") && !hasOption(om.Options, "nodev") {
		om.Options = append(om.Options, "nodev")
	}
	return om
}

func hasOption(opts []string, o string) bool {
	for _, x := range opts {
		if x == o {
			return true
		}
	}
	return false
}

func standardMounts() []specs.Mount {
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
	}
}

// defaultDeviceRules are the devices cgroup rules of every container, as
// in Docker: deny everything, then allow creating any device node (mknod)
// but reading and writing only the standard devices and terminals.
func defaultDeviceRules() []specs.LinuxDeviceCgroup {
	num := func(n int64) *int64 { return &n }
	rule := func(typ string, major, minor *int64, access string) specs.LinuxDeviceCgroup {
		return specs.LinuxDeviceCgroup{Allow: true, Type: typ, Major: major, Minor: minor, Access: access}
	}
	return []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		rule("c", nil, nil, "m"),
		rule("b", nil, nil, "m"),
		rule("c", num(1), num(3), "rwm"), // null
		rule("c", num(1), num(5), "rwm"), // zero
		rule("c", num(1), num(7), "rwm"), // full
		rule("c", num(1), num(8), "rwm"), // random
		rule("c", num(1), num(9), "rwm"), // urandom
		rule("c", num(5), num(0), "rwm"), // tty
		rule("c", num(5), num(1), "rwm"), // console
		rule("c", num(5), num(2), "rwm"), // ptmx
		rule("c", num(136), nil, "rwm"),  // pts/*
	}
}

// cfsPeriod is the CFS period (microseconds) the CPU limit is a quota of.
const cfsPeriod = 100000

// oci returns the runtime-spec resources: r's limits and the default
// device rules.
func (r Resources) oci() *specs.LinuxResources {
	res := &specs.LinuxResources{Devices: defaultDeviceRules()}
	if r.Memory > 0 {
		res.Memory = &specs.LinuxMemory{Limit: &r.Memory}
	}
	if r.CPUs > 0 {
		quota, period := int64(r.CPUs*cfsPeriod), uint64(cfsPeriod)
		res.CPU = &specs.LinuxCPU{Quota: &quota, Period: &period}
	}
	if r.PidsLimit > 0 {
		res.Pids = &specs.LinuxPids{Limit: &r.PidsLimit}
	}
	return res
}

// standardDevices are the devices every container gets (runtime-spec
// "Default Devices").
func standardDevices() []specs.LinuxDevice {
	mode := func(m os.FileMode) *os.FileMode { return &m }
	zero := uint32(0)
	dev := func(p string, major, minor int64) specs.LinuxDevice {
		return specs.LinuxDevice{Path: p, Type: "c", Major: major, Minor: minor, FileMode: mode(0o666), UID: &zero, GID: &zero}
	}
	return []specs.LinuxDevice{
		dev("/dev/null", 1, 3),
		dev("/dev/zero", 1, 5),
		dev("/dev/full", 1, 7),
		dev("/dev/random", 1, 8),
		dev("/dev/urandom", 1, 9),
		dev("/dev/tty", 5, 0),
	}
}

// numericUser turns "", "uid" and "uid:gid" into IDs; anything else keeps
// the name for the runner to resolve.
func numericUser(u string) (specs.User, error) {
	if u == "" {
		return specs.User{}, nil
	}
	name, group, _ := strings.Cut(u, ":")
	if name == "" {
		return specs.User{}, fmt.Errorf("validating spec: user %q has no user part", u)
	}
	uid, uerr := parseID(name)
	gid, gerr := uint32(0), error(nil)
	if group != "" {
		gid, gerr = parseID(group)
	}
	if uerr != nil || gerr != nil {
		return specs.User{Username: u}, nil
	}
	return specs.User{UID: uid, GID: gid}, nil
}

func parseID(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, err
	}
	return uint32(n), nil
}

// withDefaultEnv returns env with key=value appended when env has no key.
func withDefaultEnv(env []string, key, value string) []string {
	out := append([]string(nil), env...)
	for _, e := range env {
		if k, _, _ := strings.Cut(e, "="); k == key {
			return out
		}
	}
	return append(out, key+"="+value)
}

// applyUser stores a resolved user in sp: IDs, supplementary groups, a
// default HOME, and, as Docker does, no effective or permitted
// capabilities for a non-root user.
func applyUser(sp *specs.Spec, u execUser) {
	sp.Process.User = specs.User{UID: u.UID, GID: u.GID, AdditionalGids: u.Groups}
	sp.Process.Env = withDefaultEnv(sp.Process.Env, "HOME", u.Home)
	if u.UID != 0 && sp.Process.Capabilities != nil {
		sp.Process.Capabilities.Effective = nil
		sp.Process.Capabilities.Permitted = nil
	}
}

// randomHostname returns 12 random hex characters.
func randomHostname() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// hostsFile returns the content of the generated /etc/hosts.
func hostsFile(hostname string) []byte {
	return []byte("127.0.0.1\tlocalhost " + hostname + "\n" +
		"::1\tlocalhost ip6-localhost ip6-loopback\n")
}
