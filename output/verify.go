package output

import (
	"context"
	"errors"
	"fmt"
	"io"

	digest "github.com/opencontainers/go-digest"

	"github.com/builder-project/builder/internal/ioctx"
	"github.com/builder-project/builder/internal/store"
)

// verifier reads a blob through a hash and, at EOF, fails instead of
// returning io.EOF when the bytes read do not hash to want. It stops reading
// once ctx is done.
type verifier struct {
	ctx  context.Context
	r    io.Reader
	c    io.Closer
	want digest.Digest
	h    digest.Digester
	// name names the blob in errors (a path).
	name string
	done bool
}

func newVerifier(ctx context.Context, rc io.ReadCloser, limit int64, want digest.Digest, name string) *verifier {
	return &verifier{ctx: ctx, r: io.LimitReader(rc, limit), c: rc, want: want, h: want.Algorithm().Digester(), name: name}
}

// Read implements io.Reader.
func (v *verifier) Read(p []byte) (int, error) {
	if err := v.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := v.r.Read(p)
	v.h.Hash().Write(p[:n])
	if errors.Is(err, io.EOF) && !v.done {
		v.done = true
		if got := v.h.Digest(); got != v.want {
			return n, fmt.Errorf("reading %s: %w: its content hashes to %s", v.name, store.ErrInvalidDigest, got)
		}
	}
	return n, err
}

// Close implements io.Closer.
func (v *verifier) Close() error { return v.c.Close() }

// copyVerified copies src to dst, reading at most one byte past size, and
// checks that exactly size bytes hashing to want came through; a mismatch
// wraps store.ErrInvalidDigest. name names the source in errors.
func copyVerified(ctx context.Context, dst io.Writer, src io.Reader, size int64, want digest.Digest, name string) error {
	dg := want.Algorithm().Digester()
	n, err := io.Copy(io.MultiWriter(dst, dg.Hash()), ioctx.Reader(ctx, io.LimitReader(src, size+1)))
	if err != nil {
		return fmt.Errorf("copying %s: %w", name, err)
	}
	if n != size || dg.Digest() != want {
		return fmt.Errorf("copying %s: %w: got %d bytes hashing to %s, want %d bytes hashing to %s", name, store.ErrInvalidDigest, n, dg.Digest(), size, want)
	}
	return nil
}
