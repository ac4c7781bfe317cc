package atomicfile

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// TempPrefix starts the name of every temporary file Write creates. Callers
// listing a directory skip such names; RemoveStale removes old ones.
const TempPrefix = ".tmp-"

// WriteFile replaces path with data and permissions perm, atomically and
// durably (see Write).
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return Write(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// Write replaces path with what fill writes. fill writes to a temporary file
// named TempPrefix+base+"-*" in the same directory; Write then sets its
// permissions to perm, fsyncs it, renames it over path and fsyncs the
// directory. Readers see either the old or the new content. On any error,
// including one returned by fill (which is returned as is), the temporary
// file is removed and path is left untouched.
func Write(path string, perm os.FileMode, fill func(io.Writer) error) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("creating temporary file for %s: %w", path, err)
	}
	defer root.Close()
	return WriteIn(root, base, perm, fill)
}

// WriteIn is Write for the file name, slash-separated and relative to root:
// every path, the temporary file's included, is resolved inside root, so a
// symlink in the tree cannot redirect the write elsewhere.
func WriteIn(root *os.Root, name string, perm os.FileMode, fill func(io.Writer) error) (err error) {
	dir, base := path.Split(name)
	dir = path.Clean("./" + dir)
	tmp := path.Join(dir, TempPrefix+base+"-"+rand.Text())
	display := filepath.Join(root.Name(), filepath.FromSlash(name))
	f, err := root.OpenFile(filepath.FromSlash(tmp), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("creating temporary file for %s: %w", display, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			root.Remove(filepath.FromSlash(tmp))
		}
	}()
	if err = fill(f); err != nil {
		return err
	}
	if err = f.Chmod(perm); err != nil {
		return fmt.Errorf("setting mode of %s: %w", f.Name(), err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", f.Name(), err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", f.Name(), err)
	}
	if err = root.Rename(filepath.FromSlash(tmp), filepath.FromSlash(name)); err != nil {
		return fmt.Errorf("renaming into %s: %w", display, err)
	}
	return SyncDirIn(root, dir)
}

// SyncDirIn is SyncDir for the directory dir (slash-separated) inside root.
func SyncDirIn(root *os.Root, dir string) error {
	d, err := root.Open(filepath.FromSlash(dir))
	if err != nil {
		return fmt.Errorf("opening directory %s: %w", filepath.Join(root.Name(), dir), err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", filepath.Join(root.Name(), dir), err)
	}
	return nil
}

// SyncDir fsyncs the directory dir ("" means the current directory) so that
// creations, renames and removals in it survive a crash.
func SyncDir(dir string) error {
	if dir == "" {
		dir = "."
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("opening directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}

// MkdirAllSync creates dir with permissions perm (before umask), and any
// missing parents, like os.MkdirAll; in addition it fsyncs the parent of
// every directory it creates, so that the new entries survive a crash. An
// existing directory is left as it is; an existing non-directory is an
// error.
func MkdirAllSync(dir string, perm os.FileMode) error {
	dir = filepath.Clean(dir)
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("creating directory %s: %w", dir, syscall.ENOTDIR)
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := MkdirAllSync(parent, perm); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, perm); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("creating directory %s: %w", dir, err)
	}
	return SyncDir(parent)
}

// RemoveStale deletes the temporary files (names starting with TempPrefix)
// directly in dir whose modification time is at least olderThan before now.
// Errors are ignored: a leftover temporary file wastes space but is never
// mistaken for real data.
func RemoveStale(dir string, olderThan time.Duration, now time.Time) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), TempPrefix) {
			continue
		}
		fi, err := e.Info()
		if err != nil || now.Sub(fi.ModTime()) < olderThan {
			continue
		}
		os.Remove(filepath.Join(dir, e.Name()))
	}
}
