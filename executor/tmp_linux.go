package executor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Prefixes of the temporary directories the executor makes in
// os.TempDir(): a run's directory (generated /etc files, the rootfs
// mountpoint, an OCI runtime's bundle and state) and WithRootfs's scratch
// directory.
const (
	runDirPrefix    = "builder-run-"
	rootfsDirPrefix = "builder-rootfs-"
)

// sweepMinAge is how old an unlocked temporary directory must be before
// SweepTemp removes it: its creator locks it right after creating it.
var sweepMinAge = time.Minute

// makeTempDir creates a temporary directory whose name starts with prefix
// and returns it with a descriptor that holds an exclusive lock on it (a
// flock of the directory itself) until closed, or until the process dies.
// SweepTemp leaves locked directories alone.
func makeTempDir(prefix string) (string, *os.File, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", nil, err
	}
	lock, err := lockDir(dir)
	if err != nil {
		os.Remove(dir)
		return "", nil, err
	}
	return dir, lock, nil
}

// lockDir takes the exclusive lock of dir without waiting; it returns
// unix.EWOULDBLOCK when another open file holds it.
func lockDir(dir string) (*os.File, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// removeRunDir removes a run's directory: first what an OCI runtime left
// in its state directory (CleanupRuncState), then the rootfs mountpoint
// with os.Remove (should anything still be mounted there, that fails and
// nothing below it is touched), then the rest.
func removeRunDir(dir string) error {
	if err := CleanupRuncState(filepath.Join(dir, runcStateDir)); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(dir, "rootfs")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing %s: %w", dir, err)
	}
	return os.RemoveAll(dir)
}

// SweepTemp removes the temporary directories the executor made in
// os.TempDir() (builder-run-*, builder-rootfs-*) whose owner is gone: a
// process killed while it ran a step, or while WithRootfs ran, leaves them
// behind. A directory in use is locked by its owner and stays, as does one
// created less than a minute ago. For a run directory of an OCI runtime it
// first calls CleanupRuncState on the runtime's state. The builder calls
// it when it opens the store; it is safe while other builders run.
func SweepTemp() error {
	tmp := os.TempDir()
	ents, err := os.ReadDir(tmp)
	if err != nil {
		return fmt.Errorf("sweeping temporary directories: %w", err)
	}
	var errs []error
	for _, e := range ents {
		name := e.Name()
		if !e.IsDir() || (!strings.HasPrefix(name, runDirPrefix) && !strings.HasPrefix(name, rootfsDirPrefix)) {
			continue
		}
		dir := filepath.Join(tmp, name)
		if fi, err := e.Info(); err != nil || time.Since(fi.ModTime()) < sweepMinAge {
			continue
		}
		lock, err := lockDir(dir)
		if err != nil {
			continue // in use, or gone
		}
		err = removeRunDir(dir)
		lock.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("sweeping %s: %w", dir, err))
		}
	}
	return errors.Join(errs...)
}
