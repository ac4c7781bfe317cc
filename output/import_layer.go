package output

import (
	"context"
	"fmt"
	"io"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-project/builder/internal/store"
	"github.com/builder-project/builder/layer"
)

// ImportLayer makes st hold the layer blob desc, whose uncompressed content
// must have the digest diffID, and returns the uncompressed size.
//
// When st lacks the blob it is copied from p into a store ingest, and in the
// same pass its size and digest are checked against desc and its content is
// decompressed (gzip, zstd, bzip2, xz or none) and hashed; the ingest is
// committed only when all three match, so on any error st gains nothing. A
// mismatch of size or digest wraps store.ErrInvalidDigest. When st already
// has the blob, p is not used: the stored blob is read to check its diffID.
// ImportLayer does not touch the store's index; recording the layer is the
// caller's job.
func ImportLayer(ctx context.Context, st *store.Store, p Provider, desc ocispec.Descriptor, diffID digest.Digest) (int64, error) {
	if _, err := blobFile(desc.Digest); err != nil {
		return 0, fmt.Errorf("importing layer: %w", err)
	}
	if _, ok := st.Has(desc.Digest); ok {
		rc, _, err := st.Open(ctx, desc.Digest)
		if err != nil {
			return 0, fmt.Errorf("importing layer %s: %w", desc.Digest, err)
		}
		defer rc.Close()
		got, n, err := diffIDOf(rc)
		if err != nil {
			return 0, fmt.Errorf("checking stored layer %s: %w", desc.Digest, err)
		}
		if got != diffID {
			return 0, fmt.Errorf("checking stored layer %s: %w: its diffID is %s, want %s", desc.Digest, store.ErrInvalidDigest, got, diffID)
		}
		return n, nil
	}

	rc, _, err := p.Open(ctx, desc.Digest)
	if err != nil {
		return 0, fmt.Errorf("importing layer %s: %w", desc.Digest, err)
	}
	defer rc.Close()
	w, err := st.Ingest(ctx)
	if err != nil {
		return 0, fmt.Errorf("importing layer %s: %w", desc.Digest, err)
	}
	defer w.Abort()
	// The blob goes to the ingest and, through a pipe, to a goroutine that
	// decompresses and hashes it, so all three checks come from one read. The
	// goroutine reads the pipe to its end even when decompression fails, so
	// the copy is never cut short by it.
	pr, pw := io.Pipe()
	type result struct {
		diffID digest.Digest
		n      int64
		err    error
	}
	done := make(chan result, 1)
	go func() {
		d, n, err := diffIDOf(pr)
		if err != nil {
			io.Copy(io.Discard, pr)
		}
		done <- result{d, n, err}
	}()
	cerr := copyVerified(ctx, io.MultiWriter(w, pw), rc, desc.Size, desc.Digest, "layer "+desc.Digest.String())
	pw.CloseWithError(cerr)
	res := <-done
	switch {
	case cerr != nil:
		return 0, fmt.Errorf("importing layer: %w", cerr)
	case res.err != nil:
		return 0, fmt.Errorf("importing layer %s: %w", desc.Digest, res.err)
	case res.diffID != diffID:
		return 0, fmt.Errorf("importing layer %s: %w: its diffID is %s, want %s", desc.Digest, store.ErrInvalidDigest, res.diffID, diffID)
	}
	if _, err := w.Commit(ctx, desc.Size, desc.Digest); err != nil {
		return 0, fmt.Errorf("importing layer %s: %w", desc.Digest, err)
	}
	return res.n, nil
}

// diffIDOf returns the digest and size of the uncompressed content of the
// layer blob r, reading r to its end, and checks in the same pass that
// every entry of the layer is one unpacking accepts (layer.Validate).
func diffIDOf(r io.Reader) (digest.Digest, int64, error) {
	plain, _, err := layer.DecompressStream(r)
	if err != nil {
		return "", 0, err
	}
	defer plain.Close()
	dg := digest.SHA256.Digester()
	counted := &errReader{r: plain}
	// Validate reads the layer to its end, through the hash.
	if err := layer.Validate(io.TeeReader(counted, dg.Hash())); err != nil {
		return "", 0, fmt.Errorf("checking layer: %w", err)
	}
	n := counted.n
	// Drain what follows the compressed stream: a verifying reader checks
	// at EOF, and a pipe's writer must not block.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return "", 0, err
	}
	return dg.Digest(), n, nil
}
