package layer

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkApply unpacks a layer like the first-build base of make bench,
// scaled to BUILDER_BENCH_MB megabytes (default 500): 10% of it in small
// files of 64 bytes to 2 KiB, 100 a directory (the part bound by system calls per file),
// the rest in 4 MiB files, onto a tmpfs as root. The tar is read from
// memory.
func BenchmarkApply(b *testing.B) {
	mb := benchMB(b)
	dir := benchDir(b, 2*mb+64)
	var entries []tarEntry
	small := int64(mb) << 20 / 10
	for i, n := 0, int64(0); n < small; i++ {
		size := 64 + (i*7919)%(2<<10-64)
		entries = append(entries, tarEntry{name: fmt.Sprintf("s/%03d/%d", i/100, i), body: string(bytes.Repeat([]byte{byte(i)}, size))})
		n += int64(size)
	}
	chunk := bytes.Repeat([]byte("large file content "), (4<<20)/19)
	for i := range (int64(mb)<<20 - small) / int64(len(chunk)) {
		entries = append(entries, tarEntry{name: fmt.Sprintf("l/%d", i), body: string(chunk)})
	}
	data := buildTar(b, entries...)
	b.Logf("%d entries, %d bytes of tar", len(entries), len(data))
	b.SetBytes(int64(len(data)))
	i := 0
	for b.Loop() {
		b.StopTimer()
		root := filepath.Join(dir, fmt.Sprint(i))
		i++
		if err := os.Mkdir(root, 0o755); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := Apply(context.Background(), root, bytes.NewReader(data), applyOpts(DirFormat)); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := os.RemoveAll(root); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(len(entries))*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}
