package main

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// randomTar returns a tar of n files of size bytes of random data.
func randomTar(t *testing.T, n, size int) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	data := make([]byte, size)
	for i := 0; i < n; i++ {
		rand.Read(data)
		tw.WriteHeader(&tar.Header{Name: "f" + string(rune('a'+i%26)) + strings.Repeat("x", i/26), Mode: 0o644, Size: int64(size), Typeflag: tar.TypeReg})
		tw.Write(data)
	}
	tw.Close()
	return buf.Bytes()
}

func randDuration(max time.Duration) time.Duration {
	n, _ := rand.Int(rand.Reader, big.NewInt(int64(max)))
	return time.Duration(n.Int64())
}

// TestCrashSafety kills writing processes (import, load, tag, rmi) at random
// instants and checks that the store still opens, lists the same images,
// verifies every blob they use, and holds no leftovers once reopened.
func TestCrashSafety(t *testing.T) {
	root := t.TempDir()
	tarball := filepath.Join(t.TempDir(), "layer.tar")
	os.WriteFile(tarball, randomTar(t, 40, 512<<10), 0o644)
	mustCLI(t, root, nil, "import", tarball, "keep:1")
	mustCLI(t, root, nil, "tag", "keep:1", "keep:2")
	archive := filepath.Join(t.TempDir(), "keep.tar")
	mustCLI(t, root, nil, "save", "-o", archive, "keep:1")
	want := mustCLI(t, root, nil, "images", "--no-trunc", "--format", "json")

	ops := [][]string{
		{"import", tarball, "victim:1"},
		{"load", "-i", archive},
		{"tag", "keep:1", "victim:tag"},
		{"rmi", "victim:1"},
		{"prune", "-f"},
	}
	killed := 0
	for i := 0; i < 25; i++ {
		op := ops[i%len(ops)]
		cmd := cli(root, op...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(randDuration(150 * time.Millisecond))
		if cmd.Process.Signal(syscall.SIGKILL) == nil {
			killed++
		}
		cmd.Wait()
	}
	t.Logf("%d of 25 writers killed mid-flight", killed)

	// Reopening cleans up; the images that were there are still there.
	got := mustCLI(t, root, nil, "images", "--no-trunc", "--format", "json")
	for _, line := range strings.Split(strings.TrimSpace(want), "\n") {
		id := line[strings.Index(line, `"Id":"`)+6:]
		id = id[:strings.Index(id, `"`)]
		if !strings.Contains(got, id) {
			t.Fatalf("image %s lost after crashes:\n%s", id, got)
		}
	}
	if !strings.Contains(got, "keep:1") || !strings.Contains(got, "keep:2") {
		t.Fatalf("tags lost after crashes:\n%s", got)
	}
	for _, sub := range []string{"ingest", "tmp", "active"} {
		entries, _ := os.ReadDir(filepath.Join(root, sub))
		if len(entries) != 0 {
			t.Errorf("%s/ has leftovers after reopening: %d entries", sub, len(entries))
		}
	}
	// Every blob of the kept image reads back verified.
	out := filepath.Join(t.TempDir(), "out.tar")
	mustCLI(t, root, nil, "save", "-o", out, "keep:1")
	mustCLI(t, root, nil, "export", "-o", filepath.Join(t.TempDir(), "fs.tar"), "keep:2")
}
