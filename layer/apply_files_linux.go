package layer

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Unpacking a layer of many small files is bound by the system calls made
// per file: create, write, chown, chmod, utimensat, close. Apply makes the
// ones that change the directory tree (create, remove, link) itself, in tar
// order, and hands each small regular file, created and open, to a pool of
// fileWriters with its content read into a buffer: they write it and set
// its owner, mode, xattrs and times on other cores while Apply reads on.
// Nothing later in the tar depends on a file's content or metadata (a
// hardlink shares the inode, a replacement unlinks the name), so the
// result is the same as writing in order.

// Bounds of the pool: a file up to smallFileMax bytes is buffered, and at
// most fileBuffers of them wait or are being written, so the pool holds at
// most fileBuffers × smallFileMax bytes (16 MiB). A larger file is written
// by Apply itself, streamed from the tar.
const (
	smallFileMax = 1 << 20
	fileBuffers  = 16
	maxWriters   = 4
)

// fileJob is one regular file for a writer: fd is open for writing and
// closed by the writer.
type fileJob struct {
	fd   int
	name string
	hdr  *tar.Header
	meta metaSteps
	buf  []byte // the content, from the pool
}

// fileWriters is the pool of goroutines writing small regular files.
type fileWriters struct {
	a    *applier
	jobs chan fileJob
	free chan []byte // buffers for contents; nil ones are allocated on use
	wg   sync.WaitGroup

	mu  sync.Mutex
	err error // the first writer's error, naming its entry
}

func newFileWriters(a *applier) *fileWriters {
	n := min(max(runtime.GOMAXPROCS(0), 1), maxWriters)
	w := &fileWriters{a: a, jobs: make(chan fileJob, fileBuffers), free: make(chan []byte, fileBuffers)}
	for range fileBuffers {
		w.free <- nil
	}
	w.wg.Add(n)
	for range n {
		go w.run(w.jobs)
	}
	return w
}

// submit reads the content of hdr from tr into a buffer and queues the
// file open at fd for a writer, which closes fd. On error fd is closed.
func (w *fileWriters) submit(fd int, name string, hdr *tar.Header, meta metaSteps, tr io.Reader) error {
	buf := <-w.free
	if int64(cap(buf)) < hdr.Size {
		buf = make([]byte, hdr.Size, max(hdr.Size, 64<<10))
	}
	buf = buf[:hdr.Size]
	if _, err := io.ReadFull(tr, buf); err != nil {
		w.free <- buf
		unix.Close(fd)
		return fmt.Errorf("writing file: %w", err)
	}
	w.jobs <- fileJob{fd: fd, name: name, hdr: hdr, meta: meta, buf: buf}
	return nil
}

func (w *fileWriters) run(jobs <-chan fileJob) {
	defer w.wg.Done()
	for j := range jobs {
		err := w.write(j)
		w.free <- j.buf
		if err != nil {
			w.mu.Lock()
			if w.err == nil {
				w.err = fmt.Errorf("entry %q: %w", j.name, err)
			}
			w.mu.Unlock()
		}
	}
}

// failed returns the first error of a writer, if any.
func (w *fileWriters) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// wait lets the writers finish the queued files and stop, and returns the
// first error of a writer. The pool cannot be used afterwards.
func (w *fileWriters) wait() error {
	if w.jobs == nil {
		return w.failed()
	}
	close(w.jobs)
	w.jobs = nil
	w.wg.Wait()
	return w.failed()
}

// write writes one file's content and metadata, in the order Apply
// writes a file itself (regular), and closes it.
func (w *fileWriters) write(j fileJob) error {
	defer unix.Close(j.fd)
	if w.failed() != nil {
		return nil // Apply is failing: no need to finish
	}
	if _, err := fdWriter(j.fd).Write(j.buf); err != nil {
		return fmt.Errorf("writing file: %w", err)
	}
	return w.a.finishFile(j.fd, j.hdr, j.meta)
}

// finishFile sets what a regular file open at fd gets once its content is
// written: owner, mode and xattrs (fileMeta), then its times.
func (a *applier) finishFile(fd int, hdr *tar.Header, meta metaSteps) error {
	if err := a.fileMeta(fd, hdr, meta); err != nil {
		return err
	}
	return futimens(fd, hdr)
}

// fileMeta sets the owner, mode and xattrs of the regular file open at fd,
// in that order (writing and chown clear security.capability), skipping
// the owner and mode when meta says the file was created with them.
func (a *applier) fileMeta(fd int, hdr *tar.Header, meta metaSteps) error {
	if meta.chown {
		if err := a.setOwner(func(uid, gid int) error { return unix.Fchown(fd, uid, gid) }, hdr); err != nil {
			return err
		}
	}
	if meta.chmod {
		if err := unix.Fchmod(fd, uint32(hdr.Mode&0o7777)); err != nil {
			return fmt.Errorf("setting mode: %w", err)
		}
	}
	return a.setXattrs(hdr, func(k string, v []byte) error { return unix.Fsetxattr(fd, k, v, 0) })
}

// futimens sets the access and modification times of the file open at fd,
// as futimens(3) does: utimensat(2) with no path.
func futimens(fd int, hdr *tar.Header) error {
	ts := [2]unix.Timespec{timespec(atimeOf(hdr)), timespec(hdr.ModTime)}
	for {
		_, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
		if errno == 0 {
			return nil
		}
		if !errors.Is(errno, unix.EINTR) {
			return fmt.Errorf("setting times: %w", errno)
		}
	}
}
