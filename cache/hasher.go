package cache

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/builder-project/builder/internal/atomicfile"
)

// ContextVersion names the encoding hashed by Hasher.Checksum; it changes
// whenever that encoding does.
const ContextVersion = "builder.cache.context.v1"

// defaultRacyMargin is how recent a file's mtime or ctime may be, relative
// to the moment its content was read, before the index stops trusting the
// stored hash. A write landing in the same timestamp tick as the read leaves
// size and times unchanged; a margin above the coarsest timestamp
// granularity we expect (2 s, FAT/SMB) makes such a file look racy, so it is
// re-read next time, as git does with racy index entries.
const defaultRacyMargin = 2 * time.Second

// ChecksumOptions tune Hasher.Checksum.
type ChecksumOptions struct {
	// Exclude is called with the root-relative, slash-separated path of
	// every entry met (including each path given to Checksum, except ".")
	// and whether it is a directory. Returning true leaves the entry out
	// of the checksum; for a directory the whole subtree is skipped, so a
	// .dockerignore matcher must return false for a directory that may
	// contain re-included (!pattern) entries. Nil excludes nothing.
	Exclude func(rel string, isDir bool) bool
}

// Hasher computes checksums of build-context sources for cache keys. It
// keeps, per context root, a persistent index from a file's path and stat
// data (size, mtime, ctime, inode, device, mode) to the sha256 of its
// content, so that files unchanged since the last build are not read again.
// A Hasher is safe for concurrent use, and processes may share its index
// directory: each index file is replaced atomically and the last writer
// wins. A missing or corrupt index only costs re-reading.
type Hasher struct {
	dir        string
	now        func() time.Time
	racyMargin time.Duration
	workers    int

	mu    sync.Mutex
	roots map[string]*rootIndex

	read, reused atomic.Int64
}

// OpenHasher returns a Hasher keeping its indexes in indexDir, created if
// needed. Each context root gets one file named by the sha256 of the root's
// absolute path.
func OpenHasher(indexDir string) (*Hasher, error) {
	if err := atomicfile.MkdirAllSync(indexDir, 0o700); err != nil {
		return nil, fmt.Errorf("opening context index %s: %w", indexDir, err)
	}
	h := &Hasher{
		dir:        indexDir,
		now:        time.Now,
		racyMargin: defaultRacyMargin,
		workers:    min(max(2*runtime.GOMAXPROCS(0), 4), 16),
		roots:      make(map[string]*rootIndex),
	}
	atomicfile.RemoveStale(indexDir, staleTmpAge, h.now())
	return h, nil
}

// Stats returns how many regular files this Hasher has read and how many it
// took from the index without reading, since it was opened.
func (h *Hasher) Stats() (read, reused int) {
	return int(h.read.Load()), int(h.reused.Load())
}

// Checksum returns the digest of the sources paths under root, as COPY or
// ADD would copy them. paths are root-relative and already resolved
// (wildcards expanded); a directory is walked recursively in name order.
// For every entry not excluded by opts.Exclude, the checksum covers its name
// (the given path, then sub-paths below it), file type, permission and
// special mode bits, uid and gid, the target of a symlink, the device
// number of a device node, and the sha256 of a regular file's content. It
// does not cover times or anything outside paths.
//
// Nothing outside root is ever read: entries are lstat'ed, symlinks are
// hashed as links and never followed, and the given paths are resolved
// inside root. Files whose stat data match the index are not read. The
// updated index is saved before Checksum returns.
func (h *Hasher) Checksum(ctx context.Context, root string, paths []string, opts ChecksumOptions) (digest.Digest, error) {
	abs, err := canonicalRoot(root)
	if err != nil {
		return "", fmt.Errorf("checksumming %s: %w", root, err)
	}
	ri, err := h.rootIndex(abs)
	if err != nil {
		return "", fmt.Errorf("checksumming %s: %w", root, err)
	}
	rt, err := os.OpenRoot(abs)
	if err != nil {
		return "", fmt.Errorf("checksumming %s: %w", root, err)
	}
	defer rt.Close()

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	w := &walker{h: h, ri: ri, root: rt, ctx: ctx, cancel: cancel, exclude: opts.Exclude, listed: make(map[string][]string)}
	for _, p := range paths {
		clean, err := cleanRel(p)
		if err != nil {
			w.finish()
			return "", fmt.Errorf("checksumming %s: %w", root, err)
		}
		if err := w.top(clean); err != nil {
			w.finish()
			return "", fmt.Errorf("checksumming %s in %s: %w", p, root, err)
		}
	}
	if err := w.finish(); err != nil {
		return "", fmt.Errorf("checksumming %s: %w", root, err)
	}
	sum := w.sum()
	if err := ri.save(w.listed); err != nil {
		return "", fmt.Errorf("checksumming %s: %w", root, err)
	}
	return sum, nil
}

// canonicalRoot returns the absolute path of root with symlinks resolved,
// which names its index.
func canonicalRoot(root string) (string, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return "", err
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	return abs, nil
}

// cleanRel cleans a root-relative path and rejects one leaving the root.
func cleanRel(p string) (string, error) {
	c := path.Clean(filepath.ToSlash(p))
	if c == "." {
		return c, nil
	}
	if path.IsAbs(c) || !filepath.IsLocal(c) {
		return "", fmt.Errorf("validating source path %q: not inside the context", p)
	}
	return c, nil
}

// rootIndex returns the in-memory index of an absolute root, loading it
// from disk the first time.
func (h *Hasher) rootIndex(abs string) (*rootIndex, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ri, ok := h.roots[abs]; ok {
		return ri, nil
	}
	sum := sha256.Sum256([]byte(abs))
	ri := &rootIndex{
		root:    abs,
		file:    filepath.Join(h.dir, fmt.Sprintf("%x.idx", sum)),
		entries: make(map[string]indexEntry),
	}
	ri.load()
	h.roots[abs] = ri
	return ri, nil
}

// meta is the part of a stat result the Hasher uses.
type meta struct {
	mode         uint32 // st_mode: type and permission bits
	uid, gid     uint32
	size         int64
	rdev         uint64
	ino, dev     uint64
	mtime, ctime int64 // nanoseconds since the epoch
}

func (m meta) kind() uint32 { return m.mode & modeTypeMask }

// entry is one walked file system entry.
type entry struct {
	name string // root-relative, slash-separated
	meta meta
	link string   // symlink target
	sum  [32]byte // content sha256 of a regular file
}

// readJob asks a worker to hash an opened regular file.
type readJob struct {
	e *entry
	f *os.File
}

// walker performs one Checksum.
type walker struct {
	h       *Hasher
	ri      *rootIndex
	root    *os.Root
	ctx     context.Context
	cancel  context.CancelCauseFunc
	exclude func(string, bool) bool

	entries []*entry
	listed  map[string][]string // walked dir → sorted names in it

	jobs chan readJob
	wg   sync.WaitGroup
}

// top adds the given (clean, root-relative) path and its subtree.
func (w *walker) top(p string) error {
	if p == "." {
		d, err := w.root.Open(".")
		if err != nil {
			return err
		}
		defer d.Close()
		m, err := statFile(d)
		if err != nil {
			return err
		}
		w.add(&entry{name: ".", meta: m})
		return w.dir(d, ".")
	}
	parent, base := path.Split(p)
	if parent == "" {
		parent = "."
	}
	d, err := w.root.Open(parent)
	if err != nil {
		return err
	}
	defer d.Close()
	return w.child(d, p, base)
}

// child adds the entry name, at rel, of the open directory d.
func (w *walker) child(d *os.File, rel, name string) error {
	fd := int(d.Fd())
	m, err := statAt(fd, name)
	if err != nil {
		return err
	}
	isDir := m.kind() == modeDir
	if w.exclude != nil && w.exclude(rel, isDir) {
		return nil
	}
	e := &entry{name: rel, meta: m}
	switch m.kind() {
	case modeSymlink:
		if e.link, err = readlinkAt(fd, name, rel); err != nil {
			return err
		}
	case modeReg:
		if w.fromIndex(e) {
			break
		}
		f, err := openFileAt(fd, name, rel)
		if err != nil {
			return err
		}
		w.add(e)
		return w.submit(readJob{e, f})
	case modeDir:
		w.add(e)
		sub, err := openDirAt(fd, name, rel)
		if err != nil {
			return err
		}
		defer sub.Close()
		return w.dir(sub, rel)
	}
	w.add(e)
	return nil
}

// dir adds the contents of the open directory d, at rel, in name order.
func (w *walker) dir(d *os.File, rel string) error {
	if err := w.ctx.Err(); err != nil {
		return context.Cause(w.ctx)
	}
	names, err := d.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("reading directory %s: %w", rel, err)
	}
	slices.Sort(names)
	w.listed[rel] = names
	for _, n := range names {
		if err := w.child(d, path.Join(rel, n), n); err != nil {
			return err
		}
	}
	return nil
}

func (w *walker) add(e *entry) { w.entries = append(w.entries, e) }

// fromIndex fills e.sum from the index if the entry there matches e's stat
// data and is not racy.
func (w *walker) fromIndex(e *entry) bool {
	ie, ok := w.ri.get(e.name)
	if !ok || !ie.matches(e.meta) || ie.racy(w.h.racyMargin) {
		return false
	}
	e.sum = ie.sum
	w.h.reused.Add(1)
	return true
}

// submit hands an opened file to the reading workers, starting them on
// first use.
func (w *walker) submit(j readJob) error {
	if w.jobs == nil {
		w.jobs = make(chan readJob, 4*w.h.workers)
		for range w.h.workers {
			w.wg.Go(w.work)
		}
	}
	select {
	case w.jobs <- j:
		return nil
	case <-w.ctx.Done():
		j.f.Close()
		return context.Cause(w.ctx)
	}
}

// work hashes files until the job channel closes. After a failure it only
// closes the files it receives.
func (w *walker) work() {
	buf := make([]byte, 64<<10)
	hh := sha256.New()
	for j := range w.jobs {
		if w.ctx.Err() == nil {
			if err := w.hashFile(j, hh, buf); err != nil {
				w.cancel(err)
			}
		}
		j.f.Close()
	}
}

// hashFile reads one file and records its hash in the entry and, unless
// the file changed while being read, in the index.
func (w *walker) hashFile(j readJob, hh hash.Hash, buf []byte) error {
	ref := w.h.now().UnixNano()
	before, err := statFile(j.f)
	if err != nil {
		return err
	}
	if before.kind() != modeReg || before.ino != j.e.meta.ino || before.dev != j.e.meta.dev {
		return fmt.Errorf("reading %s: replaced during checksum", j.e.name)
	}
	hh.Reset()
	if _, err := io.CopyBuffer(hh, onlyReader{j.f}, buf); err != nil {
		return fmt.Errorf("reading %s: %w", j.e.name, err)
	}
	hh.Sum(j.e.sum[:0])
	w.h.read.Add(1)
	after, err := statFile(j.f)
	if err != nil {
		return err
	}
	if after == j.e.meta && before == j.e.meta {
		w.ri.put(j.e.name, indexEntry{meta: j.e.meta, ref: ref, sum: j.e.sum})
	}
	return nil
}

// onlyReader hides io.WriterTo and friends so CopyBuffer uses our buffer.
type onlyReader struct{ io.Reader }

// finish waits for the workers and returns the first error.
func (w *walker) finish() error {
	if w.jobs != nil {
		close(w.jobs)
		w.wg.Wait()
		w.jobs = nil
	}
	if err := w.ctx.Err(); err != nil {
		return context.Cause(w.ctx)
	}
	return nil
}

// sum encodes the walked entries and returns their digest.
func (w *walker) sum() digest.Digest {
	hh := sha256.New()
	var buf []byte
	buf = append(buf, ContextVersion...)
	buf = append(buf, 0)
	for _, e := range w.entries {
		buf = binary.AppendUvarint(buf, uint64(len(e.name)))
		buf = append(buf, e.name...)
		buf = binary.AppendUvarint(buf, uint64(e.meta.mode))
		buf = binary.AppendUvarint(buf, uint64(e.meta.uid))
		buf = binary.AppendUvarint(buf, uint64(e.meta.gid))
		switch e.meta.kind() {
		case modeReg:
			buf = append(buf, e.sum[:]...)
		case modeSymlink:
			buf = binary.AppendUvarint(buf, uint64(len(e.link)))
			buf = append(buf, e.link...)
		case modeChar, modeBlock:
			buf = binary.AppendUvarint(buf, e.meta.rdev)
		}
		if len(buf) > 32<<10 {
			hh.Write(buf)
			buf = buf[:0]
		}
	}
	hh.Write(buf)
	return digest.NewDigestFromBytes(digest.SHA256, hh.Sum(nil))
}

// errIndexCorrupt marks an index file that cannot be decoded; it is
// ignored (everything is re-read) and replaced on the next save.
var errIndexCorrupt = errors.New("corrupt context index")
