package layer

import (
	"bytes"
	"runtime"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// TestWriteZstdMemory checks that Write's zstd blob is the sequence of
// frames a default encoder makes of each zstdFrameSize of the tar (its
// lower-memory setting changes no byte), and that what Write allocates is
// bounded by its frame buffers and encoder windows, not the layer size.
func TestWriteZstdMemory(t *testing.T) {
	tarData := mixedTar(t, 20<<20, 700000) // 20 MiB random, ~30 MiB text: 6 frames
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	for off := 0; off < len(tarData); off += zstdFrameSize {
		want = enc.EncodeAll(tarData[off:min(off+zstdFrameSize, len(tarData))], want)
	}

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	blob, _ := writeBytes(t, tarData, Zstd)
	runtime.ReadMemStats(&after)
	if !bytes.Equal(blob.buf.Bytes(), want) {
		t.Fatalf("blob of %d bytes differs from the %d of a default encoder's frames", blob.buf.Len(), len(want))
	}
	// Per encoder: an input and an output buffer and a window of history;
	// one more input buffer being filled; 8 MiB of tables and the like.
	workers := min(runtime.GOMAXPROCS(0), maxZstdFrames)
	limit := uint64(workers*3*(zstdFrameSize+64<<10) + zstdFrameSize + 8<<20)
	// The memBlob's buffer grows to the blob's size, twice over.
	allocated := after.TotalAlloc - before.TotalAlloc - uint64(2*blob.buf.Cap())
	t.Logf("Write allocated %d MiB for %d workers (at most %d MiB)", allocated>>20, workers, limit>>20)
	if allocated > limit && !raceEnabled {
		t.Errorf("Write allocated %d MiB for %d workers, want at most %d MiB", allocated>>20, workers, limit>>20)
	}
}
