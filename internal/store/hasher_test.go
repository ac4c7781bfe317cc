package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"testing"

	digest "github.com/opencontainers/go-digest"
)

// TestHasherLargeWrites checks the digest of writes larger than a chunk and
// than all chunks together, in odd sizes, and writes after Digest.
func TestHasherLargeWrites(t *testing.T) {
	data := make([]byte, hashChunk*hashChunks*3+12345)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	for _, step := range []int{1, 511, hashChunk - 1, hashChunk, 3*hashChunk + 7, len(data)} {
		h := newHasher()
		for b := data; len(b) > 0; {
			n := min(step, len(b))
			h.Write(b[:n])
			b = b[n:]
			if step == 1 && len(data)-len(b) > 3*hashChunk {
				// One byte at a time is slow: the rest at once.
				h.Write(b)
				b = nil
			}
		}
		if got, want := h.Digest(), digest.FromBytes(data); got != want {
			t.Fatalf("writes of %d: digest %s, want %s", step, got, want)
		}
		h.Write([]byte("more"))
		if got, want := h.Digest(), digest.FromBytes(append(data, "more"...)); got != want {
			t.Fatalf("writes of %d then after Digest: digest %s, want %s", step, got, want)
		}
	}
}

// TestCorruptLargeBlobDetectedOnRead flips one byte in the middle of a blob
// larger than the hasher's chunks.
func TestCorruptLargeBlobDetectedOnRead(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	data := make([]byte, 5<<20)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	desc, err := s.WriteBlob(ctx, "x", data)
	must(t, err)
	rc, _, err := s.Open(ctx, desc.Digest)
	must(t, err)
	got, err := io.ReadAll(rc)
	must(t, err)
	must(t, rc.Close())
	if !bytes.Equal(got, data) {
		t.Fatal("blob read back differs")
	}
	p, err := s.blobPath(desc.Digest)
	must(t, err)
	must(t, os.Chmod(p, 0o644))
	data[len(data)/2] ^= 1
	must(t, os.WriteFile(p, data, 0o644))
	rc, _, err = s.Open(ctx, desc.Digest)
	must(t, err)
	defer rc.Close()
	if _, err := io.Copy(io.Discard, rc); !errors.Is(err, ErrInvalidDigest) {
		t.Fatalf("reading a tampered blob = %v, want ErrInvalidDigest", err)
	}
}

// BenchmarkOpenVerify reads a 64 MiB blob through the verifying reader in
// 128 KiB reads, as unpacking does; allocs/op shows the hasher's buffers are
// reused.
func BenchmarkOpenVerify(b *testing.B) {
	ctx := context.Background()
	s, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 64<<20)
	if _, err := rand.Read(data); err != nil {
		b.Fatal(err)
	}
	desc, err := s.WriteBlob(ctx, "x", data)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 128<<10)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		rc, _, err := s.Open(ctx, desc.Digest)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{rc}, buf); err != nil {
			b.Fatal(err)
		}
		rc.Close()
	}
}
