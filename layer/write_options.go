package layer

import (
	"fmt"

	"github.com/opencontainers/go-digest"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
)

// WriteOption configures Write.
type WriteOption func(*writeOptions)

type writeOptions struct {
	level  *int
	diffID digest.Digest
}

// WithDiffID tells Write the diffID of the tar gen writes, so that it does
// not hash it again. Only a caller that already verifies the tar against
// diffID as it reads it (a verified reader of the uncompressed blob) may
// give it.
func WithDiffID(d digest.Digest) WriteOption {
	return func(o *writeOptions) { o.diffID = d }
}

// WithLevel sets the compression level of Write. For Gzip it is 0 (stored)
// to 9 (best), as gzip numbers them; without WithLevel it is 5, the
// compressor's default, which compresses about as well as gzip's 6. For
// Zstd it is 1 to 22, as zstd numbers them, mapped onto the encoder's four
// speeds (1–2 fastest, 3–5 default, 6–9 better, 10–22 best); without
// WithLevel it is 3. Uncompressed ignores it. Write refuses a level out of
// range (see CheckLevel).
func WithLevel(n int) WriteOption {
	return func(o *writeOptions) { o.level = &n }
}

// CheckLevel reports whether level is a valid level of c for WithLevel. Any
// level is valid for Uncompressed, which has none.
func CheckLevel(c Compression, level int) error {
	lo, hi := 0, 0
	switch c {
	case Uncompressed:
		return nil
	case Gzip:
		lo, hi = pgzip.NoCompression, pgzip.BestCompression
	case Zstd:
		lo, hi = 1, 22
	default:
		return fmt.Errorf("%w: %s", ErrUnsupportedCompression, c)
	}
	if level < lo || level > hi {
		return fmt.Errorf("%s compression level %d is out of range %d to %d", c, level, lo, hi)
	}
	return nil
}

// gzipLevel returns the pgzip level of o.
func (o writeOptions) gzipLevel() int {
	if o.level == nil {
		return pgzip.DefaultCompression
	}
	return *o.level
}

// zstdLevel returns the zstd encoder speed of o.
func (o writeOptions) zstdLevel() zstd.EncoderLevel {
	if o.level == nil {
		return zstd.SpeedDefault
	}
	return zstd.EncoderLevelFromZstd(*o.level)
}
