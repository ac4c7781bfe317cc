//go:build linux

package cache

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// benchFiles is the size of the benchmark context.
const benchFiles = 20000

// benchRoot returns a directory for the benchmark context on the named file
// system. "disk" is b.TempDir(): on the development VM / (and /tmp) is ext4
// mounted without a journal, so metadata writes are cheap but reads still go
// through the page cache like any disk file system. "tmpfs" mounts a fresh
// tmpfs inside b.TempDir() (root only) and unmounts it afterwards.
func benchRoot(b *testing.B, fs string) string {
	dir := b.TempDir()
	if fs == "tmpfs" {
		if os.Geteuid() != 0 {
			b.Skip("mounting a tmpfs needs root")
		}
		if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=512m"); err != nil {
			b.Skipf("mounting tmpfs: %v", err)
		}
		b.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	}
	return dir
}

// makeBenchTree writes benchFiles small files: 20 top directories of 10
// subdirectories of 100 files each, 64 B to 8 KiB.
func makeBenchTree(b *testing.B, root string) {
	n := 0
	for i := 0; n < benchFiles; i++ {
		for j := 0; j < 10 && n < benchFiles; j++ {
			d := filepath.Join(root, fmt.Sprintf("pkg%02d", i), fmt.Sprintf("sub%d", j))
			if err := os.MkdirAll(d, 0o755); err != nil {
				b.Fatal(err)
			}
			for k := 0; k < 100 && n < benchFiles; k++ {
				data := make([]byte, 64<<(n%8))
				for x := range data {
					data[x] = byte(n + x)
				}
				if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%03d.go", k)), data, 0o644); err != nil {
					b.Fatal(err)
				}
				n++
			}
		}
	}
}

// BenchmarkChecksumNoop re-checksums an unchanged 20,000-file context whose
// index is warm: every file is stat'ed and none is read.
func BenchmarkChecksumNoop(b *testing.B) {
	for _, fs := range []string{"disk", "tmpfs"} {
		b.Run("fs="+fs, func(b *testing.B) {
			ctx := context.Background()
			root := benchRoot(b, fs)
			makeBenchTree(b, root)
			h := newTestHasher(b, b.TempDir())
			want, err := h.Checksum(ctx, root, []string{"."}, ChecksumOptions{})
			if err != nil {
				b.Fatal(err)
			}
			read0, _ := h.Stats()
			b.ResetTimer()
			for b.Loop() {
				got, err := h.Checksum(ctx, root, []string{"."}, ChecksumOptions{})
				if err != nil || got != want {
					b.Fatalf("Checksum = %s, %v", got, err)
				}
			}
			if read, _ := h.Stats(); read != read0 {
				b.Fatalf("no-op runs read %d files", read-read0)
			}
		})
	}
}

// BenchmarkChecksumNoopNewProcess is BenchmarkChecksumNoop for a new build
// process: each run opens a new Hasher and so also loads the index file.
func BenchmarkChecksumNoopNewProcess(b *testing.B) {
	ctx := context.Background()
	root := benchRoot(b, "disk")
	makeBenchTree(b, root)
	idx := b.TempDir()
	if _, err := newTestHasher(b, idx).Checksum(ctx, root, []string{"."}, ChecksumOptions{}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		h := newTestHasher(b, idx)
		if _, err := h.Checksum(ctx, root, []string{"."}, ChecksumOptions{}); err != nil {
			b.Fatal(err)
		}
		if read, _ := h.Stats(); read != 0 {
			b.Fatalf("read %d files", read)
		}
	}
}

// BenchmarkChecksumCold checksums the 20,000-file context with an empty
// index: every file is read and hashed and the index is written. The page
// cache is warm (the files were just written), so this measures CPU and
// syscalls, not disk reads.
func BenchmarkChecksumCold(b *testing.B) {
	for _, fs := range []string{"disk", "tmpfs"} {
		b.Run("fs="+fs, func(b *testing.B) {
			ctx := context.Background()
			root := benchRoot(b, fs)
			makeBenchTree(b, root)
			b.ResetTimer()
			for b.Loop() {
				b.StopTimer()
				h := newTestHasher(b, b.TempDir())
				b.StartTimer()
				if _, err := h.Checksum(ctx, root, []string{"."}, ChecksumOptions{}); err != nil {
					b.Fatal(err)
				}
				if read, _ := h.Stats(); read != benchFiles {
					b.Fatalf("read %d files, want %d", read, benchFiles)
				}
			}
		})
	}
}
