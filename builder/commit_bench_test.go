package builder

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/builder-project/builder/internal/testutil"
)

// BenchmarkCommit times the commit of a container with one changed file
// on a 2 MB base and on a 300 MB base. A commit reads only the upperdir,
// so both should take the same time: the figures are logged side by side.
func BenchmarkCommit(b *testing.B) {
	testutil.RequirePrivileges(b, "root", "overlay")
	results := map[string]time.Duration{}
	for _, size := range []int{2, 300} {
		name := fmt.Sprintf("base=%dMB", size)
		b.Run(name, func(b *testing.B) {
			bd, ref := commitBenchStore(b, size)
			ctx := context.Background()
			c, err := bd.Create(ctx, CreateOptions{Image: ref, Name: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			a, err := bd.st.Snapshots().Get(c.ID)
			if err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(a.Upper, "changed"), []byte("one changed file\n"), 0o644); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				id, err := bd.Commit(ctx, CommitOptions{Container: "bench"})
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if _, err := bd.st.Remove(id.String(), true); err != nil { // keep the index the same size
					b.Fatal(err)
				}
				b.StartTimer()
			}
			per := b.Elapsed() / time.Duration(b.N)
			results[name] = per
			b.ReportMetric(float64(per.Microseconds())/1000, "ms/commit")
		})
	}
	if len(results) == 2 {
		b.Logf("commit of 1 changed file: %v on a 2 MB base, %v on a 300 MB base", results["base=2MB"], results["base=300MB"])
	}
}

// commitBenchStore returns a builder whose store holds an image of about
// sizeMB: busybox and, for more than 2 MB, a layer of 1 MB files.
func commitBenchStore(b *testing.B, sizeMB int) (*Builder, string) {
	b.Helper()
	bd, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := bd.Import(ctx, bytes.NewReader(tarDir(b, testutil.BusyboxRootfs(b))), ImportOptions{Ref: "busybox:latest"}); err != nil {
		b.Fatal(err)
	}
	if sizeMB <= 2 {
		return bd, "busybox:latest"
	}
	// Stack 1 MB files on busybox: commit them as a rootfs of busybox.
	dir := b.TempDir()
	if err := bd.ExportDir(ctx, dir, "busybox:latest"); err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 1<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range sizeMB {
		for j := 0; j < len(data); j += 8 {
			binary.LittleEndian.PutUint64(data[j:], rng.Uint64())
		}
		p := filepath.Join(dir, "data", fmt.Sprintf("%03d", i/100), fmt.Sprintf("blob%03d", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := bd.CommitRootfs(ctx, CommitRootfsOptions{Dir: dir, Base: "busybox:latest", Ref: "big:1"}); err != nil {
		b.Fatal(err)
	}
	return bd, "big:1"
}
