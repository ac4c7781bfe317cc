package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/builder-project/builder/internal/testutil"
	"golang.org/x/sys/unix"
)

// activeEntries lists active/, lock files included.
func activeEntries(t *testing.T, s *Store) []string {
	t.Helper()
	entries, err := os.ReadDir(s.path("active"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// TestSnapshotsPrepare is the Snapshots conformance check: Prepare unpacks
// each missing layer once, returns lowers topmost first, and Commit names
// the new snapshot by the chain ID of parent plus the new layer.
func TestSnapshotsPrepare(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	sn := s.Snapshots()
	l0 := writeLayer(t, s, tarEntry{name: "etc", typ: '5'}, file("etc/base", "0"))
	l1 := writeLayer(t, s, file("etc/next", "1"))
	parent := []Layer{l0, l1}

	a, err := sn.Prepare(ctx, "", parent)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{sn.path(chainOf(l0.DiffID, l1.DiffID)), sn.path(chainOf(l0.DiffID))}
	if !slices.Equal(a.Lowers, want) {
		t.Fatalf("Lowers = %v, want %v (topmost first)", a.Lowers, want)
	}
	for dir, name := range map[string]string{want[0]: "etc/next", want[1]: "etc/base"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("unpacked snapshot lacks %s: %v", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(want[0], "etc/base")); err == nil {
		t.Error("a snapshot holds a lower layer's file")
	}
	if got := activeEntries(t, s); !slices.Equal(got, []string{a.Name, a.Name + ".lock"}) {
		t.Errorf("active/ = %v, want only the prepared snapshot", got)
	}

	// Once unpacked, the blobs are not read again.
	for _, l := range parent {
		if err := s.deleteBlob(l.Blob.Digest); err != nil {
			t.Fatal(err)
		}
	}
	b, err := sn.Prepare(ctx, "", parent)
	if err != nil {
		t.Fatalf("Prepare on unpacked layers read their blobs: %v", err)
	}
	defer b.Remove()
	if lowers, err := sn.View(ctx, parent); err != nil || !slices.Equal(lowers, want) {
		t.Fatalf("View = %v, %v; want %v", lowers, err, want)
	}

	// Commit stacks the step's layer on the parent.
	os.WriteFile(filepath.Join(a.Upper, "step"), []byte("x"), 0o644)
	step := chainOf(l0.DiffID) // any digest serves as the step's diffID
	dir, err := a.Commit(ctx, step)
	if err != nil {
		t.Fatal(err)
	}
	if wantDir := sn.path(chainOf(l0.DiffID, l1.DiffID, step)); dir != wantDir {
		t.Fatalf("Commit = %s, want %s", dir, wantDir)
	}
	if err := a.Remove(); err != nil {
		t.Fatalf("Remove after Commit: %v", err)
	}
	if list, _ := sn.List(); len(list) != 3 {
		t.Fatalf("snapshots = %v, want 3", list)
	}
	if lowers, err := sn.View(ctx, nil); err != nil || lowers != nil {
		t.Fatalf("View(nil) = %v, %v", lowers, err)
	}
}

// TestSnapshotsConcurrentPrepare: Prepares racing on the same missing stack
// all succeed and leave one committed snapshot per layer.
func TestSnapshotsConcurrentPrepare(t *testing.T) {
	s := newStore(t)
	sn := s.Snapshots()
	parent := []Layer{writeLayer(t, s, file("a", "0")), writeLayer(t, s, file("b", "1"))}
	const n = 8
	var wg sync.WaitGroup
	actives := make([]*Active, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { actives[i], errs[i] = sn.Prepare(t.Context(), "", parent) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Prepare %d: %v", i, errs[i])
		}
		if !slices.Equal(actives[i].Lowers, actives[0].Lowers) {
			t.Fatalf("Prepare %d got lowers %v, Prepare 0 %v", i, actives[i].Lowers, actives[0].Lowers)
		}
		actives[i].Remove()
	}
	entries, _ := os.ReadDir(s.path("snapshots"))
	if len(entries) != 2 {
		t.Fatalf("snapshots/ = %v, want the 2 committed snapshots only", entries)
	}
	if got := activeEntries(t, s); len(got) != 0 {
		t.Fatalf("active/ = %v after every snapshot was removed", got)
	}
}

func TestSnapshotsRejectBadLayers(t *testing.T) {
	s := newStore(t)
	good := writeLayer(t, s, file("a", "0"))
	wrongDiffID := Layer{DiffID: writeLayer(t, s, file("b", "1")).DiffID, Blob: good.Blob}
	// A blob replaced on disk by another compression of the same tar: only
	// the blob digest tells.
	corrupt := writeLayer(t, s, file("c", "2"))
	p, _ := s.blobPath(corrupt.Blob.Digest)
	os.Chmod(p, 0o644)
	os.WriteFile(p, gzipped(layerTar(t, file("c", "2")), "other"), 0o644)
	for name, parent := range map[string][]Layer{"wrong diffID": {wrongDiffID}, "corrupt blob": {good, corrupt}} {
		t.Run(name, func(t *testing.T) {
			if _, err := s.Snapshots().Prepare(t.Context(), "", parent); !errors.Is(err, ErrInvalidDigest) {
				t.Fatalf("Prepare = %v, want ErrInvalidDigest", err)
			}
			top := chainIDs(parent)[len(parent)-1]
			if _, ok := s.Snapshots().Dir(top); ok {
				t.Fatal("a bad layer was committed")
			}
			if got := activeEntries(t, s); len(got) != 0 {
				t.Fatalf("active/ = %v after a failed Prepare", got)
			}
		})
	}
	if _, err := s.Snapshots().Prepare(t.Context(), "x/y", nil); err == nil {
		t.Fatal("Prepare accepted a name with a slash")
	}
}

// childSnapshots runs in a child process: it prepares an ephemeral and a
// persistent snapshot on the layer given as JSON, prints the ephemeral
// one's directory and kills itself.
func childSnapshots(root, layerJSON string) int {
	var l Layer
	s, err := Open(root)
	if err == nil {
		err = json.Unmarshal([]byte(layerJSON), &l)
	}
	var eph, per *Active
	if err == nil {
		eph, err = s.Snapshots().Prepare(context.Background(), "", []Layer{l})
	}
	if err == nil {
		per, err = s.Snapshots().Prepare(context.Background(), "ctr", []Layer{l})
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(per.Upper, "work"), []byte("kept"), 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(eph.Dir)
	os.Stdout.Sync()
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}

// TestSnapshotsSurviveKill: a killed process's ephemeral snapshot is
// removed by the next Open, its persistent one survives with its lowers.
func TestSnapshotsSurviveKill(t *testing.T) {
	root := t.TempDir()
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	l := writeLayer(t, s, file("a", "0"))
	lj, _ := json.Marshal(l)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "STORE_TEST_CHILD="+root, "STORE_TEST_MODE=snapshots", "STORE_TEST_LAYER="+string(lj))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child: %v (want killed)", err)
	}
	eph := strings.TrimSpace(string(out))
	if _, err := os.Stat(eph); err != nil {
		t.Fatalf("the child's ephemeral snapshot %q is not there to clean up: %v", eph, err)
	}
	if _, err := Open(root); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(eph); !os.IsNotExist(err) {
		t.Errorf("ephemeral snapshot of a killed process survived Open: %v", err)
	}
	a, err := s.Snapshots().Get("ctr")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(a.Upper, "work")); err != nil || string(b) != "kept" {
		t.Errorf("persistent upperdir content = %q, %v", b, err)
	}
	if want := []string{s.Snapshots().path(l.DiffID)}; !slices.Equal(a.Lowers, want) {
		t.Errorf("Get lowers = %v, want %v", a.Lowers, want)
	}
	if _, err := s.Snapshots().Prepare(t.Context(), "ctr", nil); !errors.Is(err, ErrAlreadyExists) {
		t.Errorf("Prepare of an existing name = %v, want ErrAlreadyExists", err)
	}
	if _, err := a.Commit(t.Context(), chainOf(l.DiffID)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Snapshots().Get("ctr"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Commit = %v, want ErrNotFound", err)
	}
	if _, ok := s.Snapshots().Dir(chainOf(l.DiffID, l.DiffID)); !ok {
		t.Error("the persistent snapshot was not committed on its parent")
	}
}

// TestSnapshotsUnpackWhiteouts: unpacked layers keep whiteouts in overlay
// format, which takes mknod.
func TestSnapshotsUnpackWhiteouts(t *testing.T) {
	testutil.RequirePrivileges(t, "root")
	s := newStore(t)
	l0 := writeLayer(t, s, file("gone", "0"), tarEntry{name: "dir", typ: '5'}, file("dir/old", "0"))
	l1 := writeLayer(t, s, file(".wh.gone", ""), tarEntry{name: "dir", typ: '5'}, file("dir/.wh..wh..opq", ""), file("dir/new", "1"))
	lowers, err := s.Snapshots().View(t.Context(), []Layer{l0, l1})
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(lowers[0], "gone"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Fatalf("whiteout of gone: mode %o rdev %d, %v; want a 0:0 character device", st.Mode, st.Rdev, err)
	}
	buf := make([]byte, 8)
	if n, err := unix.Lgetxattr(filepath.Join(lowers[0], "dir"), "trusted.overlay.opaque", buf); err != nil || string(buf[:n]) != "y" {
		t.Fatalf("opaque xattr of dir = %q, %v", buf[:n], err)
	}
}
