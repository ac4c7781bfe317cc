package executor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
)

// cleanupEntry is a path the executor created (or caused overlay to copy
// up) in the upperdir only to serve as a mountpoint. After the run the
// parent removes it from the upperdir if it still looks as it was left.
type cleanupEntry struct {
	Path    string `json:"path"`    // relative to the rootfs and the upperdir
	Dir     bool   `json:"dir"`     // a directory, else an empty regular file
	Created bool   `json:"created"` // absent from the rootfs before; else copied up
	Mode    uint32 `json:"mode"`    // permission bits of a copied-up directory
	UID     uint32 `json:"uid"`
	GID     uint32 `json:"gid"`
}

// stubTracker creates mountpoints inside the merged root and records those
// that land in the upperdir.
type stubTracker struct {
	root, upper string
	entries     []cleanupEntry
	recorded    map[string]bool
	mounted     []string // rootfs-relative destinations mounted so far
}

// resolve returns the host path and rootfs-relative path of the container
// path p, resolving symlinks inside the root.
func (t *stubTracker) resolve(p string) (string, string, error) {
	full, err := securejoin.SecureJoin(t.root, p)
	if err != nil {
		return "", "", fmt.Errorf("resolving %s in the root filesystem: %w", p, err)
	}
	rel, err := filepath.Rel(t.root, full)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", "", fmt.Errorf("resolving %s in the root filesystem: escapes the root", p)
	}
	return full, rel, nil
}

// underMount reports whether rel lies inside an earlier mount, where a
// stub does not touch the upperdir.
func (t *stubTracker) underMount(rel string) bool {
	for _, m := range t.mounted {
		if m == "." || rel == m || strings.HasPrefix(rel, m+"/") {
			return true
		}
	}
	return false
}

// mountpoint makes sure the container path p exists (a directory, or an
// empty file when file is true) and returns its host path. Stubs created
// outside earlier mounts are recorded for removal. p then counts as
// mounted.
func (t *stubTracker) mountpoint(p string, file bool) (string, error) {
	full, rel, err := t.resolve(p)
	if err != nil {
		return "", err
	}
	record := !t.underMount(rel)
	t.mounted = append(t.mounted, rel)
	if _, err := os.Lstat(full); err == nil {
		return full, nil
	}
	if err := t.create(rel, file, record); err != nil {
		return "", fmt.Errorf("creating mountpoint %s: %w", p, err)
	}
	return full, nil
}

// mkdirPersistent creates the container directory p and its parents,
// owned by root, without recording them: they belong in the layer.
func (t *stubTracker) mkdirPersistent(p string) error {
	full, rel, err := t.resolve(p)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(full); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", p)
		}
		return nil
	}
	if err := t.create(rel, false, false); err != nil {
		return fmt.Errorf("creating directory %s: %w", p, err)
	}
	return nil
}

// create makes rel (resolved, so no component is a symlink) and its
// missing parents. With record, it notes every created entry and every
// parent that overlay will copy up into the upperdir.
func (t *stubTracker) create(rel string, file, record bool) error {
	if t.recorded == nil {
		t.recorded = map[string]bool{}
	}
	parts := strings.Split(rel, "/")
	for i := range parts {
		cur := strings.Join(parts[:i+1], "/")
		full := filepath.Join(t.root, cur)
		last := i == len(parts)-1
		fi, err := os.Lstat(full)
		switch {
		case err == nil && last:
			return nil
		case err == nil:
			if !fi.IsDir() {
				return fmt.Errorf("%s is not a directory", cur)
			}
			if record && !t.recorded[cur] && !existsIn(t.upper, cur) {
				st := fi.Sys().(*syscall.Stat_t)
				t.note(cleanupEntry{Path: cur, Dir: true, Mode: uint32(fi.Mode().Perm()), UID: st.Uid, GID: st.Gid})
			}
			continue
		case !errors.Is(err, fs.ErrNotExist):
			return err
		}
		if last && file {
			f, err := os.OpenFile(full, os.O_CREATE|os.O_EXCL|os.O_WRONLY|unix.O_NOFOLLOW, 0o644)
			if err != nil {
				return err
			}
			f.Close()
		} else if err := os.Mkdir(full, 0o755); err != nil {
			return err
		}
		if err := os.Lchown(full, 0, 0); err != nil {
			return err
		}
		if record {
			t.note(cleanupEntry{Path: cur, Dir: !(last && file), Created: true})
		}
	}
	return nil
}

func (t *stubTracker) note(e cleanupEntry) {
	t.recorded[e.Path] = true
	t.entries = append(t.entries, e)
}

func existsIn(dir, rel string) bool {
	_, err := os.Lstat(filepath.Join(dir, rel))
	return err == nil
}

// removeStubs removes the recorded mountpoint stubs from upper once no
// process uses it. Every path is resolved inside upper through os.Root,
// and each parent must be a real directory, so a symlink left by the
// process can never redirect the removal to a host file (the lesson of
// CVE-2024-23652). An entry that no longer looks as the executor left it
// (a non-empty directory, a file with content, changed permissions) stays.
func removeStubs(upper string, entries []cleanupEntry) error {
	if len(entries) == 0 {
		return nil
	}
	root, err := os.OpenRoot(upper)
	if err != nil {
		return fmt.Errorf("removing mountpoint stubs: %w", err)
	}
	defer root.Close()
	return removeStubsIn(root, entries)
}

// removeStubsIn is removeStubs for the upperdir opened as root.
func removeStubsIn(root *os.Root, entries []cleanupEntry) error {
	// Deepest first, so that parents are empty when their turn comes.
	sorted := append([]cleanupEntry(nil), entries...)
	for i := 1; i < len(sorted); i++ {
		for j := i; j > 0 && depth(sorted[j].Path) > depth(sorted[j-1].Path); j-- {
			sorted[j], sorted[j-1] = sorted[j-1], sorted[j]
		}
	}
	var errs []error
	for _, e := range sorted {
		ok, err := stubUnchanged(root, e)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			if err := root.Remove(e.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("removing mountpoint stub %s: %w", e.Path, err))
			}
		}
	}
	return errors.Join(errs...)
}

func depth(p string) int { return strings.Count(p, "/") }

// stubUnchanged reports whether e is still in upper as the executor left
// it, with only real directories above it.
func stubUnchanged(root *os.Root, e cleanupEntry) (bool, error) {
	if filepath.IsAbs(e.Path) || e.Path == "." || strings.HasPrefix(e.Path, "..") {
		return false, fmt.Errorf("removing mountpoint stub: bad path %q", e.Path)
	}
	parts := strings.Split(e.Path, "/")
	for i := range parts[:len(parts)-1] {
		fi, err := root.Lstat(strings.Join(parts[:i+1], "/"))
		if err != nil || !fi.IsDir() {
			return false, nil
		}
	}
	fi, err := root.Lstat(e.Path)
	if err != nil {
		return false, nil
	}
	if !e.Dir {
		return e.Created && fi.Mode().IsRegular() && fi.Size() == 0, nil
	}
	if !fi.IsDir() {
		return false, nil
	}
	if !e.Created {
		st := fi.Sys().(*syscall.Stat_t)
		if uint32(fi.Mode().Perm()) != e.Mode || st.Uid != e.UID || st.Gid != e.GID {
			return false, nil
		}
	}
	f, err := root.Open(e.Path)
	if err != nil {
		return false, nil
	}
	defer f.Close()
	if names, _ := f.Readdirnames(1); len(names) > 0 {
		return false, nil
	}
	if !e.Created && isOpaque(f) {
		return false, nil
	}
	return true, nil
}

// isOpaque reports whether a copied-up directory was made opaque, which
// hides lower content and so is a change to keep.
func isOpaque(f *os.File) bool {
	buf := make([]byte, 8)
	for _, name := range []string{"trusted.overlay.opaque", "user.overlay.opaque"} {
		if n, err := unix.Fgetxattr(int(f.Fd()), name, buf); err == nil && n > 0 && buf[0] == 'y' {
			return true
		}
	}
	return false
}
