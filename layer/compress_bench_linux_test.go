package layer

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/builder-project/builder/internal/testutil"
)

// fileBlob is a BlobWriter into a plain file.
type fileBlob struct{ f *os.File }

func (f fileBlob) Write(p []byte) (int, error) { return f.f.Write(p) }
func (f fileBlob) Commit(_ context.Context, size int64, dg digest.Digest) (ocispec.Descriptor, error) {
	return ocispec.Descriptor{Digest: dg, Size: size}, nil
}
func (f fileBlob) Abort() error { return nil }

// BenchmarkCompressVsTools compares Write with the reference programs on the
// same bytes: one layer tar of BUILDER_BENCH_MB megabytes (default 500) that
// Diff makes of buildBenchTree's tree (30% small text-like files, 35% random
// files, 35% log-like files). gzip runs against pigz at its default level
// (6) on all cores, zstd against zstd -T0 at its default level (3). Each
// iteration runs the program and Write in turn (in alternating order), each
// reading the tar from one file and writing the compressed stream to
// another on the same filesystem (a tmpfs as root), so that both see the
// same load; ns/op is the pair. Reported: each one's MB/s of tar, CPU
// seconds and stored/input, and ×tool, Write's wall time over the
// program's (below 1 is faster). The programs must be on PATH.
func BenchmarkCompressVsTools(b *testing.B) {
	pigz, zstdTool := testutil.RequireTool(b, "pigz"), testutil.RequireTool(b, "zstd")
	mb := benchMB(b)
	dir := benchDir(b, 3*mb+64)
	tree := filepath.Join(dir, "tree")
	buildBenchTree(b, tree, int64(mb)<<20)
	tarPath := filepath.Join(dir, "layer.tar")
	f, err := os.Create(tarPath)
	if err != nil {
		b.Fatal(err)
	}
	if err := Diff(context.Background(), tree, DiffOptions{}, f); err != nil {
		b.Fatal(err)
	}
	size, err := f.Seek(0, io.SeekCurrent)
	if err != nil || f.Close() != nil || os.RemoveAll(tree) != nil {
		b.Fatalf("writing %s: %v", tarPath, err)
	}
	b.Logf("layer tar of %d bytes in %s", size, dir)
	out := filepath.Join(dir, "out")

	for _, tc := range []struct {
		name string
		c    Compression
		tool []string
		opts []WriteOption
	}{
		{"gzip", Gzip, []string{pigz, "-c"}, nil},
		// pigz's default level, which compresses a little better.
		{"gzip-6", Gzip, []string{pigz, "-c"}, []WriteOption{WithLevel(6)}},
		{"zstd", Zstd, []string{zstdTool, "-T0", "-c", "-q"}, nil},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var ours, tool compressRun
			runTool := func() {
				wall, cpu := runCompressor(b, tc.tool, tarPath, out)
				tool.add(b, out, wall, cpu)
			}
			runOurs := func() {
				wall, cpu := compressFile(b, tc.c, tarPath, out, tc.opts...)
				ours.add(b, out, wall, cpu)
			}
			for b.Loop() {
				if ours.n%2 == 0 {
					runTool()
					runOurs()
				} else {
					runOurs()
					runTool()
				}
			}
			ours.report(b, "ours", size)
			tool.report(b, filepath.Base(tc.tool[0]), size)
			b.ReportMetric(ours.wall.Seconds()/tool.wall.Seconds(), "×tool")
		})
	}
}

// compressRun adds up the runs of one compressor.
type compressRun struct {
	n         int
	wall, cpu time.Duration
	stored    int64
}

// add counts one run that took wall and cpu and wrote the file out.
func (r *compressRun) add(b *testing.B, out string, wall, cpu time.Duration) {
	b.Helper()
	fi, err := os.Stat(out)
	if err != nil {
		b.Fatal(err)
	}
	r.n++
	r.wall += wall
	r.cpu += cpu
	r.stored = fi.Size()
}

// report reports the runs' MB/s of input, CPU seconds per run and
// stored/input, named after who.
func (r *compressRun) report(b *testing.B, who string, size int64) {
	b.ReportMetric(float64(size)*float64(r.n)/1e6/r.wall.Seconds(), who+"-MB/s")
	b.ReportMetric(r.cpu.Seconds()/float64(r.n), who+"-cpu-s")
	b.ReportMetric(float64(r.stored)/float64(size), who+"-stored/input")
}

// runCompressor runs the command line tool, reading from the file in and
// writing its standard output to the file out, and returns the wall and CPU
// time it took.
func runCompressor(b *testing.B, tool []string, in, out string) (wall, cpu time.Duration) {
	b.Helper()
	betweenFiles(b, in, out, func(src, dst *os.File) {
		var stderr bytes.Buffer
		cmd := exec.Command(tool[0], tool[1:]...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = src, dst, &stderr
		start := time.Now()
		if err := cmd.Run(); err != nil {
			b.Fatalf("%s: %v: %s", tool[0], err, stderr.Bytes())
		}
		wall, cpu = time.Since(start), cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime()
	})
	return wall, cpu
}

// compressFile compresses the file in into the file out with Write, and
// returns the wall and CPU time it took.
func compressFile(b *testing.B, c Compression, in, out string, opts ...WriteOption) (wall, cpu time.Duration) {
	b.Helper()
	betweenFiles(b, in, out, func(src, dst *os.File) {
		start, startCPU := time.Now(), processCPU(b)
		if _, err := Write(context.Background(), fileBlob{dst}, c, func(w io.Writer) error {
			_, err := io.Copy(w, src)
			return err
		}, opts...); err != nil {
			b.Fatal(err)
		}
		wall, cpu = time.Since(start), processCPU(b)-startCPU
	})
	return wall, cpu
}

// betweenFiles runs compress from the file in to the file out, which it
// creates.
func betweenFiles(b *testing.B, in, out string, compress func(src, dst *os.File)) {
	b.Helper()
	src, err := os.Open(in)
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(out)
	if err != nil {
		b.Fatal(err)
	}
	defer dst.Close()
	compress(src, dst)
}

// processCPU returns the CPU time this process has used so far.
func processCPU(b *testing.B) time.Duration {
	b.Helper()
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
