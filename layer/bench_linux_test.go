package layer

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

// discardBlob is a BlobWriter that keeps nothing.
type discardBlob struct{ n int64 }

func (d *discardBlob) Write(p []byte) (int, error) { d.n += int64(len(p)); return len(p), nil }
func (d *discardBlob) Commit(_ context.Context, size int64, dg digest.Digest) (ocispec.Descriptor, error) {
	return ocispec.Descriptor{Digest: dg, Size: size}, nil
}
func (d *discardBlob) Abort() error { return nil }

// BenchmarkDiffCompress measures Diff+Write over a mixed tree of
// BUILDER_BENCH_MB megabytes (default 500): 30% small text-like files, 35%
// large random files, 35% large log-like files. The tree is built once, on a
// tmpfs when running as root.
func BenchmarkDiffCompress(b *testing.B) {
	mb := benchMB(b)
	base := benchDir(b, mb+mb/4+64)
	b.Logf("tree of %d MB in %s", mb, base)
	total := buildBenchTree(b, base, int64(mb)<<20)
	ctx := context.Background()
	for _, c := range []Compression{Uncompressed, Gzip, Zstd} {
		b.Run(c.String(), func(b *testing.B) {
			b.SetBytes(total)
			var stored int64
			for b.Loop() {
				blob := &discardBlob{}
				if _, err := Write(ctx, blob, c, func(w io.Writer) error {
					return Diff(ctx, base, DiffOptions{}, w)
				}); err != nil {
					b.Fatal(err)
				}
				stored = blob.n
			}
			b.ReportMetric(float64(stored)/float64(total), "stored/input")
		})
	}
}

// benchMB returns BUILDER_BENCH_MB, the size of the benchmarks' layer in
// megabytes; 500 when unset.
func benchMB(b *testing.B) int {
	b.Helper()
	v := os.Getenv("BUILDER_BENCH_MB")
	if v == "" {
		return 500
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("BUILDER_BENCH_MB=%q: want a positive integer", v)
	}
	return n
}

// benchDir returns a fresh directory for sizeMB megabytes of benchmark
// files: a tmpfs when running as root, so that disk writeback does not
// disturb the timings, else a temporary directory on whatever backs it.
func benchDir(b *testing.B, sizeMB int) string {
	b.Helper()
	dir := b.TempDir()
	if os.Geteuid() != 0 {
		b.Logf("not root: benchmark files in %s on whatever filesystem backs it (not a tmpfs)", dir)
		return dir
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%dm,mode=0755", sizeMB)); err != nil {
		b.Fatalf("mounting tmpfs: %v", err)
	}
	b.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// buildBenchTree fills dir with about size bytes and returns the exact
// content size.
func buildBenchTree(b *testing.B, dir string, size int64) int64 {
	b.Helper()
	rnd := rand.New(rand.NewPCG(42, 7))
	words := []string{"layer", "image", "build", "overlay", "digest", "tar", "root", "user", "config", "the", "of", "and", "0x1f", "error", "warn"}
	text := func(n int) []byte {
		out := make([]byte, 0, n+16)
		for len(out) < n {
			out = append(out, words[rnd.IntN(len(words))]...)
			if rnd.IntN(8) == 0 {
				out = strconv.AppendInt(out, rnd.Int64N(1e6), 10)
			}
			out = append(out, " \n"[rnd.IntN(2)])
		}
		return out[:n]
	}
	var total int64
	write := func(p string, data []byte) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			b.Fatal(err)
		}
		total += int64(len(data))
	}
	small := size * 30 / 100
	for i := 0; total < small; i++ {
		write(filepath.Join(dir, "small", strconv.Itoa(i/200), strconv.Itoa(i%200/20), fmt.Sprintf("f%d.txt", i)), text(512+rnd.IntN(16<<10)))
	}
	chacha := rand.NewChaCha8([32]byte{1})
	const big = 16 << 20
	for i := 0; total < small+size*35/100; i++ {
		buf := make([]byte, big)
		_, _ = chacha.Read(buf)
		write(filepath.Join(dir, "random", fmt.Sprintf("blob%d.bin", i)), buf)
	}
	chunk := text(1 << 20)
	for i := 0; total < size; i++ {
		buf := make([]byte, 0, big)
		for j := 0; len(buf) < big; j++ {
			buf = append(buf, fmt.Sprintf("%d-%d ", i, j)...)
			buf = append(buf, chunk[rnd.IntN(len(chunk)-4096):][:4096]...)
		}
		write(filepath.Join(dir, "logs", fmt.Sprintf("log%d.txt", i)), buf)
	}
	return total
}
