package copier

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// The tree of BenchmarkCopyTree20k: benchDirs top-level directories with
// benchSubdirs directories each, holding benchFiles small files apiece.
const (
	benchDirs    = 20
	benchSubdirs = 10
	benchFiles   = 100
	benchTotal   = benchDirs * benchSubdirs * benchFiles
)

// BenchmarkCopyTree20k copies a build context of 20,000 small files in
// 220 nested directories to /app/ of an empty root, both on tmpfs: one
// mounted below the benchmark's temporary directory when the process may
// mount, else /dev/shm. It reports the time per copied file too.
//
// To count the system calls per file, run the compiled test binary under
// strace -f -c -e trace=%file with -test.run='^$' -test.bench=CopyTree20k
// -test.benchtime=1x and divide by 20,000.
func BenchmarkCopyTree20k(b *testing.B) {
	base := benchTmpfs(b)
	src := filepath.Join(base, "src")
	for d := range benchDirs {
		for s := range benchSubdirs {
			dir := filepath.Join(src, fmt.Sprintf("pkg%02d", d), fmt.Sprintf("sub%02d", s))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				b.Fatal(err)
			}
			for f := range benchFiles {
				body := fmt.Sprintf("package sub%02d // file %d\n", s, f)
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d.go", f)), []byte(body), 0o644); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	o := Options{Sources: []string{"."}, Dest: "/app/"}
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		dst := filepath.Join(base, fmt.Sprintf("dst%d", i))
		if err := os.Mkdir(dst, 0o755); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		res, err := Copy(ctx, src, dst, o)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		if res.Files != benchTotal {
			b.Fatalf("copied %d files, want %d", res.Files, benchTotal)
		}
		if err := os.RemoveAll(dst); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchTotal), "ns/file")
}

// benchTmpfs returns a fresh directory on tmpfs, removed after the
// benchmark.
func benchTmpfs(b *testing.B) string {
	b.Helper()
	dir := b.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "mode=0755"); err == nil {
		b.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
		return dir
	}
	shm, err := os.MkdirTemp("/dev/shm", "copier-bench-")
	if err != nil {
		b.Skipf("no tmpfs: %v", err)
	}
	b.Cleanup(func() { _ = os.RemoveAll(shm) })
	return shm
}
