package executor

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// setResources applies r's limits and device rules to the cgroup, which
// must exist and be empty. It reports whether the device rules are
// enforced: they are with a v1 devices hierarchy, and not on cgroup v2,
// where they would need a BPF program; the built-in runtime then mounts
// the root filesystem nodev instead. A limit whose controller is missing
// is an error.
func (c cgroup) setResources(r *specs.LinuxResources) (devices bool, err error) {
	if r == nil {
		return false, nil
	}
	if c.V2 {
		if err := c.enableV2Controllers(r); err != nil {
			return false, err
		}
	}
	type setting struct{ controller, file, value string }
	var set []setting
	if r.Memory != nil && r.Memory.Limit != nil && *r.Memory.Limit > 0 {
		file := "memory.limit_in_bytes"
		if c.V2 {
			file = "memory.max"
		}
		set = append(set, setting{"memory", file, strconv.FormatInt(*r.Memory.Limit, 10)})
	}
	if r.CPU != nil && r.CPU.Quota != nil && r.CPU.Period != nil && *r.CPU.Quota > 0 {
		q, p := strconv.FormatInt(*r.CPU.Quota, 10), strconv.FormatUint(*r.CPU.Period, 10)
		if c.V2 {
			set = append(set, setting{"cpu", "cpu.max", q + " " + p})
		} else {
			set = append(set, setting{"cpu", "cpu.cfs_period_us", p}, setting{"cpu", "cpu.cfs_quota_us", q})
		}
	}
	if r.Pids != nil && r.Pids.Limit != nil && *r.Pids.Limit > 0 {
		set = append(set, setting{"pids", "pids.max", strconv.FormatInt(*r.Pids.Limit, 10)})
	}
	for _, s := range set {
		dir := c.dir(s.controller)
		if dir == "" || !fileExists(filepath.Join(dir, s.file)) {
			return false, fmt.Errorf("setting %s: the %s cgroup controller is not available", s.file, s.controller)
		}
		if err := os.WriteFile(filepath.Join(dir, s.file), []byte(s.value), 0); err != nil {
			return false, fmt.Errorf("setting %s: %w", s.file, err)
		}
	}
	dir := c.dir("devices")
	if c.V2 || dir == "" || len(r.Devices) == 0 {
		return false, nil
	}
	for _, d := range r.Devices {
		file := "devices.deny"
		if d.Allow {
			file = "devices.allow"
		}
		if err := os.WriteFile(filepath.Join(dir, file), []byte(deviceRule(d)), 0); err != nil {
			return false, fmt.Errorf("setting device rule %q: %w", deviceRule(d), err)
		}
	}
	return true, nil
}

// deviceRule formats d for devices.allow and devices.deny.
func deviceRule(d specs.LinuxDeviceCgroup) string {
	typ, major, minor := d.Type, "*", "*"
	if typ == "" {
		typ = "a"
	}
	if d.Major != nil {
		major = strconv.FormatInt(*d.Major, 10)
	}
	if d.Minor != nil {
		minor = strconv.FormatInt(*d.Minor, 10)
	}
	return fmt.Sprintf("%s %s:%s %s", typ, major, minor, d.Access)
}

// enableV2Controllers enables the controllers r's limits need in every
// ancestor of the cgroup below the hierarchy's root.
func (c cgroup) enableV2Controllers(r *specs.LinuxResources) error {
	var want []string
	if r.Memory != nil && r.Memory.Limit != nil {
		want = append(want, "memory")
	}
	if r.CPU != nil && r.CPU.Quota != nil {
		want = append(want, "cpu")
	}
	if r.Pids != nil {
		want = append(want, "pids")
	}
	if len(want) == 0 {
		return nil
	}
	root := cgroupRoot
	if cgroupV2Root != "" {
		root = cgroupV2Root
	}
	rel, err := filepath.Rel(root, c.Paths[0])
	if err != nil || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("enabling cgroup controllers: %s is not below %s", c.Paths[0], root)
	}
	// The root and each ancestor down to the cgroup's parent.
	dirs := []string{root}
	if parent := filepath.Dir(rel); parent != "." {
		for _, part := range strings.Split(parent, "/") {
			dirs = append(dirs, filepath.Join(dirs[len(dirs)-1], part))
		}
	}
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
		if err != nil {
			return fmt.Errorf("enabling cgroup controllers: %w", err)
		}
		have := strings.Fields(string(b))
		for _, ctrl := range want {
			if !slices.Contains(have, ctrl) {
				return fmt.Errorf("setting a %s limit: the %s cgroup controller is not available in %s", ctrl, ctrl, dir)
			}
			if err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+"+ctrl), 0); err != nil {
				return fmt.Errorf("enabling the %s cgroup controller in %s: %w", ctrl, dir, err)
			}
		}
	}
	return nil
}
