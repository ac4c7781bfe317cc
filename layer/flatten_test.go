package layer

import (
	"archive/tar"
	"context"
	"io"
	"runtime"
	"testing"
)

// zeros reads as n zero bytes.
type zeros struct{ n int64 }

func (z *zeros) Read(p []byte) (int, error) {
	if z.n == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > z.n {
		p = p[:z.n]
	}
	clear(p)
	z.n -= int64(len(p))
	return len(p), nil
}

// TestFlattenStreams flattens two layers holding a 256 MiB file each, made
// as they are read: what Flatten allocates stays far below one file's
// size, because contents go from layer to output without being held.
func TestFlattenStreams(t *testing.T) {
	const size = 256 << 20
	big := func(name string) Opener {
		return func() (io.ReadCloser, error) {
			pr, pw := io.Pipe()
			go func() {
				tw := tar.NewWriter(pw)
				err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: size})
				if err == nil {
					_, err = io.Copy(tw, &zeros{n: size})
				}
				if err == nil {
					err = tw.Close()
				}
				pw.CloseWithError(err)
			}()
			return pr, nil
		}
	}
	n := &countingDiscard{}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if err := Flatten(context.Background(), n, []Opener{big("a"), big("b")}); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if n.n < 2*size {
		t.Fatalf("wrote %d bytes, want more than %d", n.n, 2*size)
	}
	t.Logf("wrote %d MiB, allocated %d KiB", n.n>>20, (after.TotalAlloc-before.TotalAlloc)>>10)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
		t.Errorf("flattening allocated %d MiB for two %d MiB files", alloc>>20, size>>20)
	}
}

type countingDiscard struct{ n int64 }

func (c *countingDiscard) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}
