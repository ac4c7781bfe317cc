package executor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// runcStateDir is the runtime's state directory (its --root) in a run's
// directory.
const runcStateDir = "state"

// runcState is the part of runc's state.json (libcontainer's State) that
// cleaning up needs.
type runcState struct {
	CgroupPaths map[string]string `json:"cgroup_paths"`
}

// CleanupRuncState removes what an OCI runtime (runc, crun) left in the
// state directory dir, its --root, after the process that ran it died: for
// each container recorded there it kills whatever still runs in the
// container's cgroups, removes those cgroups, and removes the container's
// state. A missing dir is nothing to do.
//
// Run calls it itself when the runtime ends. After a builder was killed,
// each run directory it left (builder-run-* in os.TempDir(), with the
// state directory "state" inside) still holds the runtime's state: the
// runtime and the container's processes are gone by then (they die with
// the builder), but their cgroups are not. SweepTemp calls CleanupRuncState
// for each such directory it removes; whoever removes a run's upperdir
// without SweepTemp (the store's cleanup of an ephemeral snapshot) must
// call SweepTemp, or CleanupRuncState on the state directories, first.
//
// It does not run the runtime: the runtime recorded the pids of its own
// pid namespace, which mean other processes outside it.
func CleanupRuncState(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("cleaning up runtime state: %w", err)
	}
	var errs []error
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		if err := cleanupRuncContainer(filepath.Join(dir, e.Name())); err != nil {
			errs = append(errs, fmt.Errorf("cleaning up runtime state of %s: %w", e.Name(), err))
		}
	}
	return errors.Join(errs...)
}

func cleanupRuncContainer(dir string) error {
	var st runcState
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Created, or being deleted: no cgroups recorded.
	case err != nil:
		return err
	default:
		if err := json.Unmarshal(b, &st); err != nil {
			return fmt.Errorf("reading state.json: %w", err)
		}
	}
	cg := runcCgroup(st.CgroupPaths)
	if err := cg.killAndWait(10*time.Second, "the container's processes"); err != nil {
		return err
	}
	if err := cg.remove(); err != nil {
		return err
	}
	return os.RemoveAll(dir)
}

// runcCgroup returns the cgroup runc recorded (subsystem → directory; ""
// for the unified hierarchy, also recorded on hybrid hosts) as a cgroup:
// on v1 with every directory, the freezer first; else the unified one.
// Directories outside /sys/fs/cgroup are ignored.
func runcCgroup(paths map[string]string) cgroup {
	freezer, ok := paths["freezer"]
	if !ok || !isBelow(freezer, cgroupRoot) {
		if p, ok := paths[""]; ok && isBelow(p, cgroupRoot) {
			return cgroup{V2: true, Paths: []string{p}}
		}
		return cgroup{}
	}
	cg := cgroup{Paths: []string{freezer}}
	for _, p := range paths {
		if isBelow(p, cgroupRoot) && !slices.Contains(cg.Paths, p) {
			cg.Paths = append(cg.Paths, p)
		}
	}
	return cg
}

// isBelow reports whether p is root or lies below it.
func isBelow(p, root string) bool {
	p = filepath.Clean(p)
	return p == root || strings.HasPrefix(p, root+"/")
}
