package output

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"

	"github.com/builder-project/builder/internal/compression"
	"github.com/builder-project/builder/internal/store"
	"github.com/builder-project/builder/layer"
)

// metadataFiles are the archive files that are never blobs.
var metadataFiles = map[string]bool{"manifest.json": true, "index.json": true, "oci-layout": true, "repositories": true}

// blobPathRE matches an OCI layout blob path, whose name is its digest.
var blobPathRE = regexp.MustCompile(`^blobs/sha256/([a-f0-9]{64})$`)

// readFile streams one regular file: into memory when small, else into an
// uncommitted ingest (keeping a copy when it looks like JSON). In the same
// pass it computes the digest and, for gzip or zstd content, the diffID.
func (l *loader) readFile(name string, size int64, r io.Reader) error {
	l.forget(name)
	f := &archiveFile{name: name, size: size}
	if metadataFiles[name] && size > maxJSON {
		return fmt.Errorf("reading %s: %d bytes is too large", name, size)
	}
	var sink io.Writer
	var kept *jsonCopy
	if size <= smallFile || metadataFiles[name] {
		kept = &jsonCopy{all: true, buf: make([]byte, 0, size)}
		sink = kept
	} else {
		w, err := l.st.Ingest(l.ctx)
		if err != nil {
			return fmt.Errorf("ingesting %s: %w", name, err)
		}
		f.w = w
		sink = w
		if size <= maxJSON {
			kept = &jsonCopy{}
			sink = io.MultiWriter(w, kept)
		}
	}
	l.files[name] = f // registered before reading, so close aborts its ingest

	raw := digest.SHA256.Digester()
	src := &errReader{r: r}
	dst := &errWriter{w: io.MultiWriter(sink, raw.Hash())}
	if l.br == nil {
		l.br = bufio.NewReaderSize(nil, 256<<10)
	}
	l.br.Reset(io.TeeReader(src, dst))
	magic, _ := l.br.Peek(compression.MagicLen)
	f.comp = compression.Detect(magic)
	diff := digest.SHA256.Digester()
	err := l.checkContent(f, diff.Hash())
	if err == nil {
		_, err = io.Copy(io.Discard, l.br) // what follows a compressed stream
	}
	switch {
	case src.err != nil:
		return fmt.Errorf("reading %s from archive: %w", name, src.err)
	case dst.err != nil:
		return fmt.Errorf("ingesting %s: %w", name, dst.err)
	case err != nil:
		f.diffErr = err
		if _, err := io.Copy(io.Discard, l.br); err != nil {
			return fmt.Errorf("reading %s from archive: %w", name, err)
		}
	}
	f.digest = raw.Digest()
	if f.comp == compression.None {
		f.diffID, f.usize = f.digest, size
	} else if f.diffErr == nil {
		f.diffID = diff.Digest()
	}
	if m := blobPathRE.FindStringSubmatch(name); m != nil && m[1] != f.digest.Encoded() {
		return fmt.Errorf("archive file %s: %w: its content hashes to %s", name, store.ErrInvalidDigest, f.digest)
	}
	if kept != nil && kept.buf != nil {
		f.data = kept.buf
		l.mem += int64(len(f.data))
		if l.mem > maxMemory {
			return fmt.Errorf("reading %s: the archive's small files exceed %d MiB", name, maxMemory>>20)
		}
	}
	return nil
}

// checkContent reads the content of f from l.br, decompressed when f.comp
// says so and hashed into diff, and validates it as a layer tar: every file
// may be a layer until the archive is resolved, so f.layerErr records why
// it cannot be one. It returns decompression errors; f.usize is the
// uncompressed size.
func (l *loader) checkContent(f *archiveFile, diff io.Writer) error {
	var plain io.Reader = l.br
	var err error
	switch f.comp {
	case compression.Gzip:
		plain, err = l.gunzip()
	case compression.Zstd:
		plain, err = l.unzstd()
	}
	if err != nil {
		return err
	}
	pr := &errReader{r: plain}
	var tr io.Reader = pr
	if f.comp != compression.None {
		tr = io.TeeReader(pr, diff)
	}
	f.layerErr = layer.Validate(tr)
	if _, err := io.Copy(io.Discard, tr); err != nil && pr.err == nil {
		return err
	}
	f.usize = pr.n
	return pr.err
}

// gunzip returns l.br decompressed.
func (l *loader) gunzip() (io.Reader, error) {
	if l.gz == nil {
		zr, err := gzip.NewReader(l.br)
		if err != nil {
			return nil, err
		}
		l.gz = zr
	} else if err := l.gz.Reset(l.br); err != nil {
		return nil, err
	}
	return l.gz, nil
}

// unzstd returns l.br decompressed.
func (l *loader) unzstd() (io.Reader, error) {
	if l.zd == nil {
		zd, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, err
		}
		l.zd = zd
	}
	if err := l.zd.Reset(l.br); err != nil {
		return nil, err
	}
	return l.zd, nil
}

// jsonCopy keeps what is written to it: everything when all is set, else
// only content that starts like a JSON object.
type jsonCopy struct {
	all bool
	off bool
	buf []byte
}

// Write implements io.Writer; it never fails.
func (j *jsonCopy) Write(p []byte) (int, error) {
	if j.off || len(p) == 0 {
		return len(p), nil
	}
	if !j.all && len(j.buf) == 0 {
		if rest := bytes.TrimLeft(p, " \t\r\n"); len(rest) > 0 && rest[0] != '{' {
			j.off = true
			return len(p), nil
		}
	}
	j.buf = append(j.buf, p...)
	return len(p), nil
}

// errReader remembers the first error other than io.EOF from r, so that
// archive read errors are told apart from decompression errors, and counts
// the bytes read.
type errReader struct {
	r   io.Reader
	err error
	n   int64
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	e.n += int64(n)
	if err != nil && !errors.Is(err, io.EOF) && e.err == nil {
		e.err = err
	}
	return n, err
}

// errWriter remembers the first write error, so that a failing ingest (a
// full disk) is told apart from bad content.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil && e.err == nil {
		e.err = err
	}
	return n, err
}

// contents returns a file's bytes, which must have been kept in memory.
func (f *archiveFile) contents() ([]byte, error) {
	if f.data == nil && f.size > 0 {
		return nil, fmt.Errorf("archive file %s (%d bytes) is not a JSON document or is too large", f.name, f.size)
	}
	return f.data, nil
}
