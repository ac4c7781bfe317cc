package layer

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"time"

	"golang.org/x/sys/unix"
)

// fileID identifies an inode, for turning hardlinks into tar links.
type fileID struct{ dev, ino uint64 }

// tarGen writes layer entries with builder's conventions: numeric ids only,
// mtimes truncated to seconds and clamped, no atime/ctime, xattrs as PAX
// records, hardlinks by inode within the layer.
type tarGen struct {
	ctx   context.Context
	tw    *tar.Writer
	epoch *time.Time
	links map[fileID]string
	buf   []byte
}

func newTarGen(ctx context.Context, w io.Writer, epoch *time.Time) *tarGen {
	return &tarGen{
		ctx:   ctx,
		tw:    tar.NewWriter(w),
		epoch: epoch,
		links: make(map[fileID]string),
		buf:   make([]byte, bufSize),
	}
}

// close writes the end-of-archive marker; it does not close the underlying
// writer.
func (g *tarGen) close() error {
	if err := g.tw.Close(); err != nil {
		return fmt.Errorf("finishing tar: %w", err)
	}
	return nil
}

// mtime truncates ts to seconds, as Docker does, so that the tar needs no
// PAX time records, and clamps it to the epoch.
func (g *tarGen) mtime(ts unix.Timespec) time.Time {
	t := time.Unix(ts.Sec, 0)
	if g.epoch != nil && t.After(*g.epoch) {
		t = g.epoch.Truncate(time.Second)
	}
	return t
}

// checkCtx is called once per entry.
func (g *tarGen) checkCtx() error {
	return g.ctx.Err()
}

// addEntry writes the entry of the file at abs under the layer path name
// (relative, no leading or trailing slash). Sockets are skipped: a tar cannot
// carry them.
func (g *tarGen) addEntry(abs, name string, st *unix.Stat_t, xattrs map[string][]byte) error {
	hdr := &tar.Header{
		Name:    name,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: g.mtime(st.Mtim),
	}
	for k, v := range xattrs {
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = make(map[string]string, len(xattrs))
		}
		hdr.PAXRecords[paxXattr+k] = string(v)
	}
	fmtType := st.Mode & unix.S_IFMT
	if fmtType != unix.S_IFDIR && st.Nlink > 1 {
		id := fileID{dev: uint64(st.Dev), ino: st.Ino}
		if first, ok := g.links[id]; ok {
			hdr.Typeflag = tar.TypeLink
			hdr.Linkname = first
			hdr.PAXRecords = nil
			return g.writeHeader(hdr)
		}
		g.links[id] = name
	}
	switch fmtType {
	case unix.S_IFDIR:
		hdr.Typeflag = tar.TypeDir
		hdr.Name = name + "/"
	case unix.S_IFLNK:
		target, err := os.Readlink(abs)
		if err != nil {
			return fmt.Errorf("reading symlink %s: %w", name, err)
		}
		hdr.Typeflag = tar.TypeSymlink
		hdr.Linkname = target
	case unix.S_IFREG:
		hdr.Typeflag = tar.TypeReg
		hdr.Size = st.Size
	case unix.S_IFCHR, unix.S_IFBLK:
		hdr.Typeflag = tar.TypeChar
		if fmtType == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor = int64(unix.Major(uint64(st.Rdev)))
		hdr.Devminor = int64(unix.Minor(uint64(st.Rdev)))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	default:
		return nil
	}
	if err := g.writeHeader(hdr); err != nil {
		return err
	}
	if hdr.Typeflag == tar.TypeReg && hdr.Size > 0 {
		return g.copyContent(abs, name, hdr.Size)
	}
	return nil
}

func (g *tarGen) copyContent(abs, name string, size int64) error {
	fd, err := unix.Open(abs, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", name, &os.PathError{Op: "open", Path: abs, Err: err})
	}
	f := os.NewFile(uintptr(fd), abs)
	defer f.Close()
	n, err := io.CopyBuffer(g.tw, io.LimitReader(f, size), g.buf)
	if err != nil {
		return fmt.Errorf("copying %s: %w", name, err)
	}
	if n != size {
		return fmt.Errorf("copying %s: file shrank from %d to %d bytes while reading", name, size, n)
	}
	return nil
}

// addWhiteout writes ".wh.<base>" in directory dir ("" for the root).
func (g *tarGen) addWhiteout(dir, base string, mtime unix.Timespec) error {
	return g.writeHeader(&tar.Header{
		Typeflag: tar.TypeReg,
		Name:     path.Join(dir, whiteoutPrefix+base),
		ModTime:  g.mtime(mtime),
	})
}

// addOpaque writes "<dir>/.wh..wh..opq"; the directory entry must precede it.
func (g *tarGen) addOpaque(dir string, mtime unix.Timespec) error {
	return g.writeHeader(&tar.Header{
		Typeflag: tar.TypeReg,
		Name:     path.Join(dir, opaqueMarker),
		ModTime:  g.mtime(mtime),
	})
}

func (g *tarGen) writeHeader(hdr *tar.Header) error {
	if err := g.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("writing tar header for %s: %w", hdr.Name, err)
	}
	return nil
}

// dirEntry is one name in a directory with its lstat result.
type dirEntry struct {
	name string
	st   unix.Stat_t
}

// readDirNames returns the names in dir, unsorted.
func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

func lstat(p string) (unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return st, &os.PathError{Op: "lstat", Path: p, Err: err}
	}
	return st, nil
}

func isDir(st *unix.Stat_t) bool { return st.Mode&unix.S_IFMT == unix.S_IFDIR }

// isWhiteoutDev reports whether st is an overlay whiteout device (char 0:0).
func isWhiteoutDev(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}
