package store

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// childUnpack runs in a child process: it unpacks the layer given as JSON
// into its snapshot (View) and exits 0 once it is committed.
func childUnpack(root, layerJSON string) int {
	var l Layer
	s, err := Open(root)
	if err == nil {
		err = json.Unmarshal([]byte(layerJSON), &l)
	}
	if err == nil {
		_, err = s.Snapshots().View(context.Background(), []Layer{l})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// TestUnpackKilled kills processes unpacking a layer of many small files
// at random instants: the layer's snapshot is either absent or whole after
// the store is opened again, never half-written, and the next unpack
// completes it.
func TestUnpackKilled(t *testing.T) {
	const files, attempts = 3000, 6
	root := t.TempDir()
	s := mustOpen(t, root)
	var entries []tarEntry
	for i := range files {
		entries = append(entries, file(fmt.Sprintf("d%02d/f%04d", i%50, i), fmt.Sprintf("content of %d\n", i)))
	}
	l := writeLayer(t, s, entries...)
	lj, err := json.Marshal(l)
	must(t, err)
	child := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "STORE_TEST_CHILD="+root, "STORE_TEST_MODE=unpack", "STORE_TEST_LAYER="+string(lj))
		cmd.Stderr = os.Stderr
		return cmd
	}
	// checkWhole fails t unless the snapshot is absent or holds every file.
	checkWhole := func(when string) bool {
		t.Helper()
		dir, ok := mustOpen(t, root).Snapshots().Dir(chainOf(l.DiffID))
		if !ok {
			return false
		}
		for i := range files {
			name := fmt.Sprintf("d%02d/f%04d", i%50, i)
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil || string(b) != fmt.Sprintf("content of %d\n", i) {
				t.Fatalf("%s: committed snapshot has %s = %q, %v", when, name, b, err)
			}
		}
		return true
	}

	start := time.Now()
	if err := child().Run(); err != nil {
		t.Fatalf("unpacking child: %v", err)
	}
	full := time.Since(start)
	if !checkWhole("after an uninterrupted unpack") {
		t.Fatal("an uninterrupted unpack committed no snapshot")
	}
	killed := 0
	for attempt := range attempts {
		if _, err := s.Snapshots().delete(chainOf(l.DiffID)); err != nil {
			t.Fatal(err)
		}
		cmd := child()
		must(t, cmd.Start())
		time.Sleep(time.Duration(rand.Int64N(int64(full))))
		_ = cmd.Process.Signal(syscall.SIGKILL)
		err := cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			killed++
		} else if err != nil {
			t.Fatalf("attempt %d: unpacking child: %v", attempt, err)
		}
		checkWhole(fmt.Sprintf("attempt %d, killed after %d", attempt, killed))
		if got := activeEntries(t, mustOpen(t, root)); len(got) != 0 {
			t.Fatalf("attempt %d: active/ = %v after Open", attempt, got)
		}
	}
	t.Logf("%d of %d children killed while unpacking (an unpack takes %v)", killed, attempts, full)
	if killed == 0 {
		t.Fatalf("no child of %d was killed while unpacking (an unpack takes %v)", attempts, full)
	}
	if _, err := s.Snapshots().View(context.Background(), []Layer{l}); err != nil {
		t.Fatal(err)
	}
	if !checkWhole("after a final unpack") {
		t.Fatal("the final unpack committed no snapshot")
	}
}
