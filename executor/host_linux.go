package executor

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/builder-project/builder/internal/userns"
	"golang.org/x/sys/unix"
)

// HostInfo probes what containers get on this machine, without starting
// one.
func HostInfo() Host {
	h := Host{Rootless: userns.Rootless(), Overlay: "trusted"}
	if h.Rootless {
		h.Overlay = "userxattr"
	}
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		h.Seccomp = bytes.Contains(b, []byte("\nSeccomp:"))
	}
	if t, err := findNAT(); err == nil {
		h.NAT, h.NATPath = t.name, t.path
	} else {
		h.NATError = err.Error()
	}
	h.Cgroup, h.CgroupError = cgroupAvailable()
	for _, r := range []string{Runc, Crun} {
		if p, err := exec.LookPath(r); err == nil {
			if h.Runtimes == nil {
				h.Runtimes = map[string]string{}
			}
			h.Runtimes[r] = p
		}
	}
	return h
}

// cgroupAvailable returns the hierarchy a new container's cgroup would be
// created in, or why none can be: the directories it would be created in
// must be writable.
func cgroupAvailable() (string, string) {
	cg, err := newCgroup("probe")
	if err != nil {
		return "", err.Error()
	}
	kind := "v1"
	if cg.V2 {
		kind = "v2"
	}
	for _, p := range cg.Paths {
		parent := filepath.Dir(p) // .../builder, created on first use
		for !dirExists(parent) {
			parent = filepath.Dir(parent)
		}
		if err := unix.Access(parent, unix.W_OK); err != nil {
			return "", fmt.Sprintf("cannot create cgroups under %s: %v (rootless: a cgroup delegated by systemd is not used yet)", parent, err)
		}
	}
	return kind, ""
}

func dirExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}
