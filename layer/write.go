package layer

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"runtime"
	"time"

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

// digestingWriter is a BlobWriter that hashes what it is written, as the
// store's does: Digest is the sha256 of everything written so far.
type digestingWriter interface {
	BlobWriter
	Digest() digest.Digest
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
// same pass; the layer is never held in memory. opts set the compression
// level (WithLevel); the same tar, compression and level always give the
// same blob, whatever the number of cores. Write then commits w,
// checking the size and digest it computed, and returns the Layer. On any
// error, including a cancelled ctx, it aborts w.
func Write(ctx context.Context, w BlobWriter, c Compression, gen func(io.Writer) error, opts ...WriteOption) (l Layer, err error) {
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

	var o writeOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.level != nil {
		if err := CheckLevel(c, *o.level); err != nil {
			return Layer{}, fmt.Errorf("writing layer: %w", err)
		}
	}

	// A writer that hashes what it is given (the store's does) spares
	// hashing the blob twice.
	blobDigest := func() digest.Digest { return "" }
	var blob *countingWriter
	if dw, ok := w.(digestingWriter); ok {
		blob = &countingWriter{w: w}
		blobDigest = dw.Digest
	} else {
		blobDigester := digest.SHA256.Digester()
		blob = &countingWriter{w: io.MultiWriter(w, blobDigester.Hash())}
		blobDigest = blobDigester.Digest
	}
	blobBuf := bufio.NewWriterSize(ioctx.Writer(ctx, blob), bufSize)

	var (
		diffDigester digest.Digester
		tarSink      io.Writer = blobBuf
	)
	if c != Uncompressed {
		if comp, err = newCompressor(blobBuf, c, o); err != nil {
			return Layer{}, err
		}
		tarSink = comp
		if o.diffID == "" {
			diffDigester = digest.SHA256.Digester()
			tarSink = io.MultiWriter(diffDigester.Hash(), comp)
		}
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

	dgst := blobDigest()
	diffID := dgst
	switch {
	case diffDigester != nil:
		diffID = diffDigester.Digest()
	case c != Uncompressed:
		diffID = o.diffID
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

// newCompressor returns the writer compressing into w with c (Gzip or Zstd)
// at the level of o, on all cores (at most maxZstdFrames for zstd). Both cut
// the stream into blocks of a fixed size and compress them in parallel, so
// their output depends on the block size only, never on the number of
// cores.
func newCompressor(w io.Writer, c Compression, o writeOptions) (io.WriteCloser, error) {
	procs := runtime.GOMAXPROCS(0)
	switch c {
	case Gzip:
		// Each block is compressed with the tail of the one before as
		// its dictionary, into one gzip member.
		zw, err := pgzip.NewWriterLevel(w, o.gzipLevel())
		if err != nil {
			return nil, fmt.Errorf("creating gzip writer: %w", err)
		}
		// pgzip writes the zero time.Time as a date in 2042; the Unix
		// epoch is written as 0, gzip's "no time recorded", as Go's
		// gzip and docker write it. There is no name or comment.
		zw.ModTime = time.Unix(0, 0)
		if err := zw.SetConcurrency(gzipBlockSize, procs); err != nil {
			return nil, fmt.Errorf("configuring gzip writer: %w", err)
		}
		return zw, nil
	case Zstd:
		workers := min(procs, maxZstdFrames)
		// Lower memory sizes each encoder's history to its window instead
		// of twice that (16 MiB less per encoder); the output is the same.
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(o.zstdLevel()), zstd.WithEncoderConcurrency(workers), zstd.WithLowerEncoderMem(true))
		if err != nil {
			return nil, fmt.Errorf("creating zstd writer: %w", err)
		}
		return &zstdFrames{enc: enc, w: w, inflight: make([]*zstdFrame, 0, workers)}, nil
	}
	return nil, fmt.Errorf("writing layer: %w: %s", ErrUnsupportedCompression, c)
}

// zstdFrameSize is how much of the tar one zstd frame holds. Frames are
// independent, so they are compressed in parallel; 8 MiB, the encoder's
// window, loses about 1% of the ratio of a single frame. (The encoder's own
// parallel jobs, WithConcurrentBlocks, make one frame but took 2.5 times the
// CPU, and its stream encoder uses little more than one core; see
// BenchmarkCompressVsTools.)
const zstdFrameSize = 8 << 20

// maxZstdFrames bounds the frames compressed at once, and so the memory:
// each frame in flight holds two buffers of zstdFrameSize (input and
// output), and the one being filled an input buffer.
const maxZstdFrames = 8

// zstdFrames compresses a stream into w as a sequence of zstd frames of
// zstdFrameSize input bytes each (the last one shorter), which every zstd
// decoder reads as one stream. Up to cap(inflight) frames are compressed at
// once; they are written in order.
type zstdFrames struct {
	enc      *zstd.Encoder
	w        io.Writer
	cur      *zstdFrame // being filled, never empty; nil between frames
	inflight []*zstdFrame
	free     []*zstdFrame // written frames whose input buffers are reused
	outs     [][]byte     // output buffers of written frames, reused
	frames   int
	err      error
}

// zstdFrame is one frame: done is closed once out holds in compressed.
type zstdFrame struct {
	in, out []byte
	done    chan struct{}
}

// Write implements io.Writer.
func (z *zstdFrames) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 && z.err == nil {
		if z.cur == nil {
			z.cur = z.buffer()
		}
		k := min(len(p), zstdFrameSize-len(z.cur.in))
		z.cur.in = append(z.cur.in, p[:k]...)
		p, n = p[k:], n+k
		if len(z.cur.in) == zstdFrameSize {
			z.dispatch()
		}
	}
	return n, z.err
}

// buffer returns an empty frame, reusing one already written.
func (z *zstdFrames) buffer() *zstdFrame {
	if k := len(z.free); k > 0 {
		f := z.free[k-1]
		z.free = z.free[:k-1]
		f.in = f.in[:0]
		return f
	}
	return &zstdFrame{in: make([]byte, 0, zstdFrameSize)}
}

// dispatch starts compressing the current frame, first writing the oldest
// one if as many as allowed are in flight.
func (z *zstdFrames) dispatch() {
	if len(z.inflight) == cap(z.inflight) {
		z.writeOldest()
	}
	f := z.cur
	z.cur = nil
	if k := len(z.outs); k > 0 {
		f.out, z.outs = z.outs[k-1], z.outs[:k-1]
	} else {
		// Incompressible input grows by a few bytes per 128 KiB block.
		f.out = make([]byte, 0, zstdFrameSize+64<<10)
	}
	f.done = make(chan struct{})
	z.inflight = append(z.inflight, f)
	z.frames++
	go func() {
		defer close(f.done)
		f.out = z.enc.EncodeAll(f.in, f.out[:0])
	}()
}

// writeOldest waits for the oldest frame in flight and writes it to w,
// unless writing has failed.
func (z *zstdFrames) writeOldest() {
	f := z.inflight[0]
	z.inflight = append(z.inflight[:0], z.inflight[1:]...)
	<-f.done
	if z.err == nil {
		_, z.err = z.w.Write(f.out)
	}
	z.outs = append(z.outs, f.out)
	f.out = nil
	z.free = append(z.free, f)
}

// Close compresses what is left and writes every frame. An empty stream is
// one empty frame.
func (z *zstdFrames) Close() error {
	if z.err == nil && (z.cur != nil || z.frames == 0) {
		if z.cur == nil {
			z.cur = z.buffer()
		}
		z.dispatch()
	}
	for len(z.inflight) > 0 {
		z.writeOldest()
	}
	return z.err
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
