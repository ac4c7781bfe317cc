package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
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
	var paths []string
	for _, p := range st.CgroupPaths {
		if p != "" && !slices.Contains(paths, p) && isBelow(p, cgroupRoot) {
			paths = append(paths, p)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, p := range paths {
		if err := killCgroupDir(ctx, p); err != nil {
			return err
		}
	}
	for _, p := range paths {
		if err := retryBusy(func() error { return unix.Rmdir(p) }); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("removing cgroup %s: %w", p, err)
		}
	}
	return os.RemoveAll(dir)
}

// killCgroupDir kills the processes listed in the cgroup directory p until
// none is left.
func killCgroupDir(ctx context.Context, p string) error {
	return poll(ctx, func() (bool, error) {
		b, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		if errors.Is(err, fs.ErrNotExist) {
			return true, nil
		} else if err != nil {
			return false, err
		}
		pids := strings.Fields(string(b))
		for _, f := range pids {
			if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
				_ = unix.Kill(pid, unix.SIGKILL)
			}
		}
		return len(pids) == 0, nil
	})
}

// isBelow reports whether p is root or lies below it.
func isBelow(p, root string) bool {
	p = filepath.Clean(p)
	return p == root || strings.HasPrefix(p, root+"/")
}
