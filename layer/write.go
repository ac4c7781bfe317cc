package layer

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"runtime"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-project/builder/internal/ioctx"
)

// BlobWriter is what a content store hands out for a new blob; the store's
// *store.Writer satisfies it.
type BlobWriter interface {
	io.Writer
	// Commit makes the written bytes visible as a blob. size <= 0 and an
	// empty expected digest mean "unchecked".
	Commit(ctx context.Context, size int64, expected digest.Digest) (ocispec.Descriptor, error)
	// Abort discards the written bytes. It is safe to call after Commit.
	Abort() error
}

// Layer is a committed layer blob.
type Layer struct {
	// Desc describes the stored blob: media type, digest and size of the
	// (possibly compressed) bytes.
	Desc ocispec.Descriptor
	// DiffID is the sha256 digest of the uncompressed tar.
	DiffID digest.Digest
	// Size is the length of the uncompressed tar in bytes.
	Size int64
}

// bufSize is the buffer between the tar producer, the compressor and the
// blob writer; tar headers come in 512-byte writes.
const bufSize = 128 << 10

// gzipBlockSize is pgzip's unit of parallel work. It is fixed so that the
// output does not depend on the number of cores.
const gzipBlockSize = 1 << 20

// Write streams the uncompressed tar that gen writes through compression c
// into w. The diffID, the blob digest and the blob size are computed in the
// same pass; the layer is never held in memory. Write then commits w,
// checking the size and digest it computed, and returns the Layer. On any
// error, including a cancelled ctx, it aborts w.
func Write(ctx context.Context, w BlobWriter, c Compression, gen func(io.Writer) error) (l Layer, err error) {
	// Writes into w fail once ctx is done, so that a cancelled build stops
	// pushing bytes into the store even if gen ignores ctx, and once Write
	// has failed.
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var comp io.WriteCloser
	defer func() {
		if err != nil {
			// Whatever the compressor still flushes on close goes nowhere.
			stop()
			if comp != nil {
				// Release the compressor's goroutines.
				_ = comp.Close()
			}
			_ = w.Abort()
		}
	}()
	if c.MediaType() == "" {
		return Layer{}, fmt.Errorf("writing layer: %w: %s", ErrUnsupportedCompression, c)
	}

	blobDigester := digest.SHA256.Digester()
	blob := &countingWriter{w: io.MultiWriter(w, blobDigester.Hash())}
	blobBuf := bufio.NewWriterSize(ioctx.Writer(ctx, blob), bufSize)

	var (
		diffDigester digest.Digester
		tarSink      io.Writer
	)
	switch c {
	case Uncompressed:
		tarSink = blobBuf
	case Gzip:
		zw, zerr := pgzip.NewWriterLevel(blobBuf, pgzip.DefaultCompression)
		if zerr != nil {
			return Layer{}, fmt.Errorf("creating gzip writer: %w", zerr)
		}
		if zerr := zw.SetConcurrency(gzipBlockSize, runtime.GOMAXPROCS(0)); zerr != nil {
			return Layer{}, fmt.Errorf("configuring gzip writer: %w", zerr)
		}
		comp = zw
	case Zstd:
		zw, zerr := zstd.NewWriter(blobBuf,
			zstd.WithEncoderLevel(zstd.SpeedDefault),
			zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)),
			// Parallel jobs are sized by the window, not by the core
			// count, so the output stays reproducible across machines.
			zstd.WithConcurrentBlocks(true))
		if zerr != nil {
			return Layer{}, fmt.Errorf("creating zstd writer: %w", zerr)
		}
		comp = zw
	}
	if comp != nil {
		diffDigester = digest.SHA256.Digester()
		tarSink = io.MultiWriter(diffDigester.Hash(), comp)
	}

	tarCount := &countingWriter{w: tarSink}
	tarBuf := bufio.NewWriterSize(tarCount, bufSize)
	if err := gen(tarBuf); err != nil {
		return Layer{}, fmt.Errorf("generating layer: %w", err)
	}
	if err := tarBuf.Flush(); err != nil {
		return Layer{}, fmt.Errorf("writing layer: %w", err)
	}
	if comp != nil {
		if err := comp.Close(); err != nil {
			return Layer{}, fmt.Errorf("compressing layer with %s: %w", c, err)
		}
	}
	if err := blobBuf.Flush(); err != nil {
		return Layer{}, fmt.Errorf("writing layer: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return Layer{}, fmt.Errorf("writing layer: %w", err)
	}

	dgst := blobDigester.Digest()
	diffID := dgst
	if diffDigester != nil {
		diffID = diffDigester.Digest()
	}
	desc, err := w.Commit(ctx, blob.n, dgst)
	if err != nil {
		return Layer{}, fmt.Errorf("committing layer %s: %w", dgst, err)
	}
	desc.MediaType = c.MediaType()
	if desc.Digest == "" {
		desc.Digest = dgst
	}
	if desc.Size == 0 {
		desc.Size = blob.n
	}
	return Layer{Desc: desc, DiffID: diffID, Size: tarCount.n}, nil
}

// ChainID returns the chain ID of a stack of layers given their diffIDs,
// bottom first, as defined by the OCI image spec:
// chainID(L0) = diffID(L0), chainID(Ln) = sha256(chainID(Ln-1) + " " + diffID(Ln)).
// It returns "" for an empty stack.
func ChainID(diffIDs []digest.Digest) digest.Digest {
	var chain digest.Digest
	for i, d := range diffIDs {
		if i == 0 {
			chain = d
			continue
		}
		chain = digest.FromString(string(chain) + " " + string(d))
	}
	return chain
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
