package executor

import (
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestOCI(t *testing.T) {
	s := Spec{
		Args:     []string{"/bin/sh", "-c", "true"},
		Env:      []string{"FOO=bar"},
		Cwd:      "/src/./app/",
		User:     "1000:10",
		Hostname: "h",
		Network:  NetworkNone,
		Hosts:    "/run/h",
		Mounts: []Mount{
			{Type: "bind", Source: "/cache", Destination: "/root/.cache", Options: []string{"rw"}},
			{Type: "tmpfs", Destination: "/tmp", Options: []string{"size=1m"}},
		},
	}
	sp, err := s.OCI()
	if err != nil {
		t.Fatal(err)
	}
	if sp.Process.Cwd != "/src/app" || sp.Hostname != "h" || sp.Root.Path != "rootfs" {
		t.Errorf("cwd %q hostname %q root %q", sp.Process.Cwd, sp.Hostname, sp.Root.Path)
	}
	if want := []string{"FOO=bar", "PATH=" + DefaultPath}; !slices.Equal(sp.Process.Env, want) {
		t.Errorf("env = %q, want %q", sp.Process.Env, want)
	}
	if sp.Process.User.UID != 1000 || sp.Process.User.GID != 10 {
		t.Errorf("user = %+v", sp.Process.User)
	}
	var ns []string
	for _, n := range sp.Linux.Namespaces {
		ns = append(ns, string(n.Type))
	}
	if want := "mount,pid,uts,ipc,network,cgroup"; strings.Join(ns, ",") != want {
		t.Errorf("namespaces = %v, want %s", ns, want)
	}
	var dests []string
	for _, m := range sp.Mounts {
		dests = append(dests, m.Destination)
	}
	if want := "/proc,/dev,/dev/pts,/dev/shm,/dev/mqueue,/sys,/sys/fs/cgroup,/etc/hosts,/root/.cache,/tmp"; strings.Join(dests, ",") != want {
		t.Errorf("mounts = %v, want %s", dests, want)
	}
	if m := sp.Mounts[8]; m.Type != "bind" || !slices.Equal(m.Options, []string{"rbind", "rw", "nodev"}) {
		t.Errorf("bind mount = %+v", m)
	}
	if m := sp.Mounts[9]; m.Source != "tmpfs" || !slices.Contains(m.Options, "nodev") {
		t.Errorf("tmpfs mount = %+v", m)
	}
	if len(sp.Process.Capabilities.Bounding) != 14 || !slices.Contains(sp.Process.Capabilities.Effective, "CAP_CHOWN") {
		t.Errorf("capabilities = %+v", sp.Process.Capabilities)
	}
	if sp.Process.NoNewPrivileges || len(sp.Process.Rlimits) != 1 || sp.Process.Rlimits[0].Type != "RLIMIT_NOFILE" {
		t.Errorf("process = %+v", sp.Process)
	}
}

func TestOCIDefaults(t *testing.T) {
	sp, err := Spec{Args: []string{"true"}, Env: []string{"PATH=/x"}}.OCI()
	if err != nil {
		t.Fatal(err)
	}
	if sp.Process.Cwd != "/" || len(sp.Hostname) != 12 || !slices.Equal(sp.Process.Env, []string{"PATH=/x"}) {
		t.Errorf("cwd %q hostname %q env %q", sp.Process.Cwd, sp.Hostname, sp.Process.Env)
	}
	if !slices.ContainsFunc(sp.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.NetworkNamespace }) {
		t.Error("the default network must have a namespace of its own")
	}
	sp, err = Spec{Args: []string{"true"}, Network: NetworkHost}.OCI()
	if err != nil || slices.ContainsFunc(sp.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.NetworkNamespace }) {
		t.Errorf("network host must share the host's namespace (%v)", err)
	}
	sp, err = Spec{Args: []string{"true"}, User: "app:wheel"}.OCI()
	if err != nil || sp.Process.User.Username != "app:wheel" || sp.Process.User.UID != 0 {
		t.Errorf("named user: %+v, %v", sp.Process.User, err)
	}
}

func TestOCIInvalid(t *testing.T) {
	for name, s := range map[string]Spec{
		"no-args":       {},
		"relative-cwd":  {Args: []string{"x"}, Cwd: "src"},
		"network":       {Args: []string{"x"}, Network: "bridge"},
		"env":           {Args: []string{"x"}, Env: []string{"NOEQUALS"}},
		"mount-type":    {Args: []string{"x"}, Mounts: []Mount{{Type: "cache", Destination: "/c"}}},
		"mount-dest":    {Args: []string{"x"}, Mounts: []Mount{{Type: "tmpfs", Destination: "c"}}},
		"mount-root":    {Args: []string{"x"}, Mounts: []Mount{{Type: "tmpfs", Destination: "/"}}},
		"bind-relative": {Args: []string{"x"}, Mounts: []Mount{{Type: "bind", Source: "rel", Destination: "/c"}}},
		"user-no-name":  {Args: []string{"x"}, User: ":10"},
		"memory":        {Args: []string{"x"}, Resources: Resources{Memory: -1}},
		"cpus":          {Args: []string{"x"}, Resources: Resources{CPUs: 0.001}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := s.OCI(); err == nil {
				t.Error("no error")
			}
		})
	}
}

func TestApplyUser(t *testing.T) {
	sp, err := Spec{Args: []string{"x"}}.OCI()
	if err != nil {
		t.Fatal(err)
	}
	applyUser(sp, execUser{UID: 1000, GID: 1000, Groups: []uint32{10}, Home: "/home/app"})
	if sp.Process.User.UID != 1000 || !slices.Equal(sp.Process.User.AdditionalGids, []uint32{10}) {
		t.Errorf("user = %+v", sp.Process.User)
	}
	if !slices.Contains(sp.Process.Env, "HOME=/home/app") {
		t.Errorf("env = %q", sp.Process.Env)
	}
	if len(sp.Process.Capabilities.Effective) != 0 || len(sp.Process.Capabilities.Bounding) == 0 {
		t.Errorf("non-root capabilities = %+v", sp.Process.Capabilities)
	}
}

func TestOCIResources(t *testing.T) {
	sp, err := Spec{Args: []string{"x"}, Resources: Resources{Memory: 64 << 20, CPUs: 1.5, PidsLimit: 100}}.OCI()
	if err != nil {
		t.Fatal(err)
	}
	r := sp.Linux.Resources
	if r.Memory == nil || *r.Memory.Limit != 64<<20 || r.CPU == nil || *r.CPU.Quota != 150000 || *r.CPU.Period != 100000 || r.Pids == nil || *r.Pids.Limit != 100 {
		t.Errorf("resources = %+v", r)
	}
	if len(r.Devices) < 2 || r.Devices[0].Allow || r.Devices[0].Access != "rwm" {
		t.Errorf("device rules = %+v, want deny-all first", r.Devices)
	}
	sp, err = Spec{Args: []string{"x"}}.OCI()
	if err != nil || sp.Linux.Resources.Memory != nil || sp.Linux.Resources.CPU != nil || sp.Linux.Resources.Pids != nil {
		t.Errorf("default resources = %+v, %v: want no limits", sp.Linux.Resources, err)
	}
}
