package layer

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/builder-project/builder/internal/userns"
	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// Apply unpacks the uncompressed layer tar r onto dir and returns the number
// of bytes it read from r (the uncompressed layer size; r is drained to EOF
// so that a hashing reader upstream sees every byte).
//
// Every path is resolved inside dir with filepath-securejoin: symlinks met
// on the way, absolute ones included, resolve as if dir were "/", so an
// entry can never reach outside dir. Absolute entry names are taken
// relative to dir, as Docker does; names and hardlink targets that climb out
// with "..", and whiteout prefixes in directory components, are refused with
// an error wrapping ErrInvalidEntry that names the entry. The final component
// of an entry is never followed: whatever exists there is replaced (a
// directory only by a non-directory; a directory entry over a directory
// keeps its content), so an existing symlink or hardlink is never written
// through.
//
// Whiteouts follow opts.Format. ".wh.NAME" and ".wh..wh..opq" apply to what
// lies below this layer only: entries of the same layer are kept whatever
// their order in the tar. Ownership (numeric), mode (setuid, setgid and
// sticky included), xattrs (overlayfs' own excepted) and mtimes are restored;
// directory modes and mtimes are set once the whole tar is unpacked.
func Apply(ctx context.Context, dir string, r io.Reader, opts ApplyOptions) (int64, error) {
	cr := &countingReader{r: r}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("applying layer to %s: %w", dir, &os.PathError{Op: "open", Path: dir, Err: err})
	}
	a := &applier{
		root: os.NewFile(uintptr(fd), dir),
		opts: opts,
		seen: make(map[string]bool),
		buf:  make([]byte, bufSize),
	}
	a.creator = currentCreator()
	if a.rootNew, err = a.newFilesIn(a.root); err != nil {
		a.root.Close()
		return 0, fmt.Errorf("applying layer to %s: %w", dir, err)
	}
	a.files = newFileWriters(a)
	defer a.close()

	tr := tar.NewReader(cr)
	for {
		if err := ctx.Err(); err != nil {
			return cr.n, fmt.Errorf("applying layer to %s: %w", dir, err)
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return cr.n, fmt.Errorf("applying layer to %s: reading tar: %w", dir, err)
		}
		if err := a.entry(hdr, tr); err != nil {
			return cr.n, fmt.Errorf("applying layer to %s: entry %q: %w", dir, hdr.Name, err)
		}
		if err := a.files.failed(); err != nil {
			return cr.n, fmt.Errorf("applying layer to %s: %w", dir, err)
		}
	}
	if _, err := io.CopyBuffer(io.Discard, cr, a.buf); err != nil {
		return cr.n, fmt.Errorf("applying layer to %s: reading tar: %w", dir, err)
	}
	if err := a.files.wait(); err != nil {
		return cr.n, fmt.Errorf("applying layer to %s: %w", dir, err)
	}
	if err := a.finishDirs(); err != nil {
		return cr.n, fmt.Errorf("applying layer to %s: %w", dir, err)
	}
	return cr.n, nil
}

type applier struct {
	root *os.File
	opts ApplyOptions
	// seen holds the entries of this layer and their parents, which
	// whiteouts and opaque markers must spare.
	seen map[string]bool
	dirs []dirMeta
	buf  []byte
	// files writes small regular files on other goroutines.
	files *fileWriters
	// parentName/parent cache the handle of the last parent directory,
	// parentNew what a file created in it gets from it.
	parentName string
	parent     *os.File
	parentNew  newFiles
	// rootNew is what a file created in the root gets from it.
	rootNew newFiles
	// creator says what a created file is before Apply sets its owner
	// and mode.
	creator creator
}

// dirMeta is applied to a directory once the tar is unpacked, since
// creating entries inside it changes its mtime and a read-only mode would
// stop an unprivileged caller from filling it.
type dirMeta struct {
	name         string
	mode         uint32
	atime, mtime time.Time
}

func (a *applier) close() {
	_ = a.files.wait()
	if a.parent != nil {
		_ = a.parent.Close()
	}
	_ = a.root.Close()
}

// parentDir returns a handle of directory name ("" is the root), creating
// missing directories when create is set. The caller must not close it.
func (a *applier) parentDir(name string, create bool) (*os.File, error) {
	if name == "" {
		return a.root, nil
	}
	if a.parent != nil && a.parentName == name {
		return a.parent, nil
	}
	a.dropParent()
	var (
		f   *os.File
		err error
	)
	if create {
		f, err = pathrs.MkdirAllHandle(a.root, name, 0o755)
	} else {
		f, err = pathrs.OpenatInRoot(a.root, name)
	}
	if err != nil {
		return nil, err
	}
	nf, err := a.newFilesIn(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	a.parent, a.parentName, a.parentNew = f, name, nf
	return f, nil
}

// dropParent forgets the cached parent handle. An entry can replace its
// own parent only through an entry in a higher directory, which also
// drops the cache, so the cache never outlives its directory.
func (a *applier) dropParent() {
	if a.parent != nil {
		_ = a.parent.Close()
	}
	a.parent, a.parentName = nil, ""
}

func (a *applier) markSeen(name string) {
	for name != "" && !a.seen[name] {
		a.seen[name] = true
		name = parentOf(name)
	}
}

func (a *applier) entry(hdr *tar.Header, tr io.Reader) error {
	e, err := checkEntry(hdr)
	if err != nil {
		return err
	}
	switch e.act {
	case actSkip:
		return nil
	case actOpaque:
		return a.opaque(e.parent)
	case actWhiteout:
		return a.whiteout(e.parent, e.base)
	case actRoot:
		return a.rootDir(hdr)
	}
	name, parent, base := e.name, e.parent, e.base
	pdir, err := a.parentDir(parent, true)
	if err != nil {
		return fmt.Errorf("creating parent directory: %w", err)
	}
	pfd := int(pdir.Fd())
	a.markSeen(name)

	switch hdr.Typeflag {
	case tar.TypeDir:
		return a.mkdir(pfd, name, base, hdr)
	case tar.TypeLink:
		return a.hardlink(pfd, name, base, hdr)
	}
	if hdr.Typeflag == tar.TypeReg || hdr.Typeflag == tar.TypeRegA {
		nf := a.rootNew
		if parent != "" {
			nf = a.parentNew
		}
		return a.regular(pfd, name, base, nf, hdr, tr)
	}
	if err := removeExisting(pfd, base, false); err != nil {
		return err
	}
	switch hdr.Typeflag {
	case tar.TypeSymlink:
		if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
			return fmt.Errorf("creating symlink: %w", err)
		}
	default:
		if err := a.mknod(pfd, base, hdr); err != nil {
			if a.opts.NoChown && errors.Is(err, unix.EPERM) {
				return nil // unprivileged: no device nodes
			}
			return err
		}
	}
	return a.finishAt(pfd, base, hdr)
}

// regular creates a regular file. The create is exclusive and tried
// first: only when something is already there (an earlier layer's entry)
// is it removed, never written through, and the create tried again. That
// spares a lookup per file of a fresh unpack. A small file is then handed
// to the file writers (see fileWriters); a larger one is written here.
func (a *applier) regular(pfd int, name, base string, nf newFiles, hdr *tar.Header, tr io.Reader) error {
	const flags = unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW | unix.O_CLOEXEC
	perm, meta := a.creator.plan(hdr, nf, a.opts.NoChown)
	fd, err := unix.Openat(pfd, base, flags, perm)
	if errors.Is(err, unix.EEXIST) {
		if err := removeExisting(pfd, base, false); err != nil {
			return err
		}
		fd, err = unix.Openat(pfd, base, flags, perm)
	}
	if err != nil {
		return fmt.Errorf("creating file: %w", err)
	}
	if hdr.Size <= smallFileMax {
		return a.files.submit(fd, name, hdr, meta, tr)
	}
	_, err = io.CopyBuffer(fdWriter(fd), tr, a.buf)
	if err != nil {
		err = fmt.Errorf("writing file: %w", err)
	} else {
		err = a.finishFile(fd, hdr, meta)
	}
	if cerr := unix.Close(fd); cerr != nil && err == nil {
		err = fmt.Errorf("closing file: %w", cerr)
	}
	return err
}

// fdWriter writes to a file descriptor with write(2) directly: no
// *os.File, whose creation costs an fcntl per file of an unpack.
type fdWriter int

func (w fdWriter) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := unix.Write(int(w), p[n:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return n, err
		}
		n += m
	}
	return n, nil
}

func (a *applier) mkdir(pfd int, name, base string, hdr *tar.Header) error {
	if err := removeExisting(pfd, base, true); err != nil {
		return err
	}
	if err := unix.Mkdirat(pfd, base, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("creating directory: %w", err)
	}
	fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening directory: %w", err)
	}
	defer unix.Close(fd)
	return a.dirAttrs(fd, name, hdr)
}

// rootDir applies the metadata of a "./" entry to the root itself.
func (a *applier) rootDir(hdr *tar.Header) error {
	fd, err := unix.Openat(int(a.root.Fd()), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening root: %w", err)
	}
	defer unix.Close(fd)
	if err := a.dirAttrs(fd, "", hdr); err != nil {
		return err
	}
	// The root's owner changed: so may what its files get from it.
	a.rootNew, err = a.newFilesIn(a.root)
	return err
}

func (a *applier) dirAttrs(fd int, name string, hdr *tar.Header) error {
	if err := a.setOwner(func(uid, gid int) error { return unix.Fchown(fd, uid, gid) }, hdr); err != nil {
		return err
	}
	if err := a.setXattrs(hdr, func(k string, v []byte) error { return unix.Fsetxattr(fd, k, v, 0) }); err != nil {
		return err
	}
	a.dirs = append(a.dirs, dirMeta{name: name, mode: uint32(hdr.Mode & 0o7777), atime: atimeOf(hdr), mtime: hdr.ModTime})
	return nil
}

func (a *applier) hardlink(pfd int, name, base string, hdr *tar.Header) error {
	target, err := linkTarget(name, hdr.Linkname)
	if err != nil {
		return err
	}
	tparent, tbase := parentOf(target), target[strings.LastIndexByte(target, '/')+1:]
	tdir := a.root
	if tparent != "" {
		// Not the cached handle: this lookup must not evict pdir.
		if tdir, err = pathrs.OpenatInRoot(a.root, tparent); err != nil {
			return fmt.Errorf("resolving hardlink target %q: %w", hdr.Linkname, err)
		}
		defer tdir.Close()
	}
	if err := removeExisting(pfd, base, false); err != nil {
		return err
	}
	// Without AT_SYMLINK_FOLLOW a symlink target is linked itself, never
	// followed.
	if err := unix.Linkat(int(tdir.Fd()), tbase, pfd, base, 0); err != nil {
		return fmt.Errorf("linking to %q: %w", hdr.Linkname, err)
	}
	return nil
}

func (a *applier) mknod(pfd int, base string, hdr *tar.Header) error {
	mode := uint32(hdr.Mode & 0o7777)
	switch hdr.Typeflag {
	case tar.TypeChar:
		mode |= unix.S_IFCHR
	case tar.TypeBlock:
		mode |= unix.S_IFBLK
	case tar.TypeFifo:
		mode |= unix.S_IFIFO
	}
	dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
	if err := unix.Mknodat(pfd, base, mode, int(dev)); err != nil {
		return fmt.Errorf("creating device node: %w", err)
	}
	// The umask applied to mknod; the node was just created and is no
	// symlink, so following it here is safe.
	if err := unix.Fchmodat(pfd, base, mode&0o7777, 0); err != nil {
		return fmt.Errorf("setting mode: %w", err)
	}
	return nil
}

// finishAt sets owner, xattrs and times of a symlink or node at pfd/base
// without following it.
func (a *applier) finishAt(pfd int, base string, hdr *tar.Header) error {
	if err := a.setOwner(func(uid, gid int) error {
		return unix.Fchownat(pfd, base, uid, gid, unix.AT_SYMLINK_NOFOLLOW)
	}, hdr); err != nil {
		return err
	}
	p := fmt.Sprintf("/proc/self/fd/%d/%s", pfd, base)
	if err := a.setXattrs(hdr, func(k string, v []byte) error { return unix.Lsetxattr(p, k, v, 0) }); err != nil {
		return err
	}
	return setTimes(pfd, base, hdr)
}

func (a *applier) setOwner(chown func(uid, gid int) error, hdr *tar.Header) error {
	if a.opts.NoChown {
		return nil
	}
	if err := chown(hdr.Uid, hdr.Gid); err != nil {
		return fmt.Errorf("changing owner to %d:%d: %w", hdr.Uid, hdr.Gid, userns.CheckChown("", hdr.Uid, hdr.Gid, err))
	}
	return nil
}

func (a *applier) setXattrs(hdr *tar.Header, set func(k string, v []byte) error) error {
	for k, v := range hdr.PAXRecords {
		if !strings.HasPrefix(k, paxXattr) {
			continue
		}
		name := strings.TrimPrefix(k, paxXattr)
		if isOverlayXattr(name) {
			continue // a layer must not forge overlayfs state
		}
		err := set(name, []byte(v))
		if err == nil {
			continue
		}
		if a.opts.NoChown && (errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOTSUP)) {
			continue
		}
		return fmt.Errorf("setting xattr %s: %w", name, err)
	}
	return nil
}

func atimeOf(hdr *tar.Header) time.Time {
	if hdr.AccessTime.IsZero() {
		return hdr.ModTime
	}
	return hdr.AccessTime
}

func timespec(t time.Time) unix.Timespec {
	return unix.Timespec{Sec: t.Unix(), Nsec: int64(t.Nanosecond())}
}

func setTimes(pfd int, base string, hdr *tar.Header) error {
	ts := []unix.Timespec{timespec(atimeOf(hdr)), timespec(hdr.ModTime)}
	if err := unix.UtimesNanoAt(pfd, base, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("setting times: %w", err)
	}
	return nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
