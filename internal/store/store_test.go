package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestMain(m *testing.M) {
	if root := os.Getenv("STORE_TEST_CHILD"); root != "" {
		switch os.Getenv("STORE_TEST_MODE") {
		case "snapshots":
			os.Exit(childSnapshots(root, os.Getenv("STORE_TEST_LAYER")))
		case "unpack":
			os.Exit(childUnpack(root, os.Getenv("STORE_TEST_LAYER")))
		}
		os.Exit(childTagger(root, os.Getenv("STORE_TEST_N")))
	}
	os.Exit(m.Run())
}

// mustOpen opens a store at root, failing t on error.
func mustOpen(t *testing.T, root string) *Store {
	t.Helper()
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// must fails t on err.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// dirNames lists dir, failing t if it cannot be read.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestBlobRoundTrip(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("hello blob")
	desc, err := s.WriteBlob(ctx, ocispec.MediaTypeImageConfig, data)
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest != digest.FromBytes(data) || desc.Size != int64(len(data)) || desc.MediaType != ocispec.MediaTypeImageConfig {
		t.Fatalf("bad descriptor %+v", desc)
	}
	got, err := s.ReadBlob(ctx, desc.Digest)
	if err != nil || string(got) != string(data) {
		t.Fatalf("ReadBlob = %q, %v", got, err)
	}
	// Writing the same content again is success.
	if _, err := s.WriteBlob(ctx, "x", data); err != nil {
		t.Fatalf("second write: %v", err)
	}
	if n, ok := s.Has(desc.Digest); !ok || n != int64(len(data)) {
		t.Fatalf("Has = %d, %v", n, ok)
	}
	if _, err := s.ReadBlob(ctx, digest.FromString("nope")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing blob: %v", err)
	}
}

func TestCommitChecksDigestAndSize(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t, t.TempDir())
	for _, tc := range []struct {
		name string
		size int64
		want digest.Digest
	}{
		{"wrong digest", 0, digest.FromString("other")},
		{"wrong size", 3, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := s.Ingest(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Abort()
			_, err = io.WriteString(w, "content")
			must(t, err)
			if _, err := w.Commit(ctx, tc.size, tc.want); !errors.Is(err, ErrInvalidDigest) {
				t.Fatalf("Commit = %v, want ErrInvalidDigest", err)
			}
			blobs, err := s.Blobs()
			if err != nil || len(blobs) != 0 {
				t.Fatalf("a bad blob became visible: %v (%v)", blobs, err)
			}
			if left := dirNames(t, s.path("ingest")); len(left) != 0 {
				t.Fatalf("ingest left behind: %v", left)
			}
		})
	}
}

func TestCorruptBlobDetectedOnRead(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t, t.TempDir())
	desc, err := s.WriteBlob(ctx, "x", []byte("original"))
	must(t, err)
	p, err := s.blobPath(desc.Digest)
	must(t, err)
	must(t, os.Chmod(p, 0o644))
	must(t, os.WriteFile(p, []byte("tampered"), 0o644))
	if _, err := s.ReadBlob(ctx, desc.Digest); !errors.Is(err, ErrInvalidDigest) {
		t.Fatalf("ReadBlob of tampered blob = %v, want ErrInvalidDigest", err)
	}
}

func TestOpenRemovesLeftovers(t *testing.T) {
	root := t.TempDir()
	s := mustOpen(t, root)
	// A live ingest and ephemeral snapshot (locks held) survive a second Open.
	w, err := s.Ingest(context.Background())
	must(t, err)
	_, err = io.WriteString(w, "partial")
	must(t, err)
	a, err := s.Snapshots().Prepare(context.Background(), "", nil)
	must(t, err)
	named, err := s.Snapshots().Prepare(context.Background(), "container-1", nil)
	must(t, err)
	// Simulate what a killed process leaves: dirs whose lock nobody holds.
	must(t, os.MkdirAll(filepath.Join(root, "ingest", "dead"), 0o700))
	must(t, os.WriteFile(filepath.Join(root, "ingest", "dead", "data"), []byte("half"), 0o600))
	must(t, os.MkdirAll(filepath.Join(root, "active", "e-dead", "upper"), 0o700))
	must(t, os.MkdirAll(filepath.Join(root, "snapshots", "new-123"), 0o700))
	must(t, os.MkdirAll(filepath.Join(root, "tmp", "build-dead"), 0o700))

	if _, err := Open(root); err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{"ingest/dead", "active/e-dead", "snapshots/new-123", "tmp/build-dead"} {
		if _, err := os.Stat(filepath.Join(root, gone)); !os.IsNotExist(err) {
			t.Errorf("%s survived Open", gone)
		}
	}
	for _, kept := range []string{w.dir, a.Dir, named.Dir} {
		if _, err := os.Stat(kept); err != nil {
			t.Errorf("%s (in use or persistent) was removed: %v", kept, err)
		}
	}
	must(t, w.Abort())
	must(t, a.Remove())
	if got, err := s.Snapshots().Get("container-1"); err != nil || got.Upper != named.Upper {
		t.Fatalf("Get = %v, %v", got, err)
	}
}

func TestSnapshotCommit(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t, t.TempDir())
	sn := s.Snapshots()
	chain := digest.FromString("chain")
	for i := 0; i < 2; i++ { // the second commit of the same chain ID keeps the first
		a, err := sn.Prepare(ctx, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		must(t, os.WriteFile(filepath.Join(a.Upper, "f"), []byte(strconv.Itoa(i)), 0o644))
		dir, err := a.Commit(ctx, chain) // a base layer's chain ID is its diffID
		if err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "f")); err != nil || string(b) != "0" {
			t.Fatalf("snapshot content %q after commit %d (%v)", b, i, err)
		}
		if _, err := os.Stat(a.Dir); !os.IsNotExist(err) {
			t.Fatalf("active dir left after commit")
		}
	}
	if list, err := sn.List(); err != nil || len(list) != 1 || list[0] != chain {
		t.Fatalf("List = %v, %v", list, err)
	}
	if n, err := sn.delete(chain); err != nil || n != 1 {
		t.Fatalf("delete = %d, %v; want 1 byte freed", n, err)
	}
	if _, ok := sn.Dir(chain); ok {
		t.Fatal("snapshot survived Delete")
	}
}

func TestResolve(t *testing.T) {
	idx := newIndex()
	a := &Image{ID: digest.Digest("sha256:" + strings.Repeat("a", 63) + "1"), Manifest: ocispec.Descriptor{Digest: digest.FromString("m1")}}
	b := &Image{ID: digest.Digest("sha256:" + strings.Repeat("a", 63) + "2")}
	c := &Image{ID: digest.Digest("sha256:" + strings.Repeat("c", 64)), RepoDigests: []string{"quay.io/x/c@" + digest.FromString("m3").String()}}
	for _, i := range []*Image{a, b, c} {
		idx.images[i.ID] = i
	}
	idx.tags["docker.io/library/busybox:latest"] = a.ID
	idx.tags["localhost:5000/app:1"] = c.ID
	for _, tc := range []struct {
		ref  string
		want *Image
		err  error
	}{
		{"busybox", a, nil},
		{"busybox:latest", a, nil},
		{"docker.io/library/busybox", a, nil},
		{"localhost:5000/app:1", c, nil},
		{"ccc", c, nil},
		{"sha256:ccc", c, nil},
		{a.ID.String(), a, nil},
		{"aaa", nil, ErrAmbiguous},
		{"busybox@" + digest.FromString("m1").String(), a, nil},
		{"quay.io/x/c@" + digest.FromString("m3").String(), c, nil},
		{"quay.io/x/other@" + digest.FromString("m3").String(), nil, ErrNotFound},
		{"nothere", nil, ErrNotFound},
		{"app:1", nil, ErrNotFound},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			got, err := idx.Resolve(tc.ref)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil || got.ID != tc.want.ID {
				t.Fatalf("Resolve = %v, %v", got, err)
			}
		})
	}
}

func TestNormalizeRef(t *testing.T) {
	for in, want := range map[string]string{
		"busybox":              "docker.io/library/busybox:latest",
		"app:1":                "docker.io/library/app:1",
		"me/app":               "docker.io/me/app:latest",
		"localhost:5000/x/y:2": "localhost:5000/x/y:2",
		"quay.io/a/b@sha256:" + strings.Repeat("0", 64): "quay.io/a/b@sha256:" + strings.Repeat("0", 64),
	} {
		got, err := NormalizeRef(in)
		if err != nil || got != want {
			t.Errorf("NormalizeRef(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := NormalizeRef("Busybox"); err == nil {
		t.Error("upper-case repository accepted")
	}
	if got := FamiliarRef("docker.io/library/busybox:latest"); got != "busybox:latest" {
		t.Errorf("FamiliarRef = %q", got)
	}
}

// childTagger is run in child processes: it adds n tags, one index update each.
func childTagger(root, n string) int {
	s, err := Open(root)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for i := 0; i < 25; i++ {
		id := digest.FromString(n + "-" + strconv.Itoa(i))
		err := s.PutImage(context.Background(), NewImage{ID: id}, []string{fmt.Sprintf("docker.io/library/p%s:%d", n, i)})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return 0
}

// TestConcurrentProcesses runs several processes updating one index at once:
// no update may be lost.
func TestConcurrentProcesses(t *testing.T) {
	root := t.TempDir()
	if _, err := Open(root); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for p := 0; p < 4; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "STORE_TEST_CHILD="+root, "STORE_TEST_N="+strconv.Itoa(p))
			if out, err := cmd.CombinedOutput(); err != nil {
				errs <- fmt.Errorf("child %d: %v: %s", p, err, out)
			}
		}(p)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	idx, err := mustOpen(t, root).View()
	if err != nil {
		t.Fatal(err)
	}
	if len(idx.Tags()) != 100 || len(idx.Images()) != 100 {
		t.Fatalf("lost updates: %d tags, %d images, want 100", len(idx.Tags()), len(idx.Images()))
	}
}

// TestOpenRemovesStaleTemps: temporary files under cache/ older than an
// hour, wherever they are, and index.json's temporary files go; young
// temporary files and real files stay.
func TestOpenRemovesStaleTemps(t *testing.T) {
	root := t.TempDir()
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	if s.CacheDir() != filepath.Join(root, "cache") {
		t.Fatalf("CacheDir = %s", s.CacheDir())
	}
	if fi, err := os.Stat(s.CacheDir()); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("cache dir: %v, %v; want mode 0700", fi, err)
	}
	old := time.Now().Add(-2 * time.Hour)
	// The temporary files under cache/ are the cache package's: its
	// TestOpenAndHasherRemoveStaleTemps checks them.
	files := map[string]bool{ // path under root → kept
		"recipes/sha256/.tmp-ab-123": false,
		"recipes/.tmp-top":           false,
		"recipes/sha256/ab":          true,
		".tmp-index.json-42":         false,
	}
	for p := range files {
		full := filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(full, old, old)
	}
	young := filepath.Join(root, "recipes/sha256/.tmp-cd-456")
	os.WriteFile(young, []byte("x"), 0o600)
	files["recipes/sha256/.tmp-cd-456"] = true

	if _, err := Open(root); err != nil {
		t.Fatal(err)
	}
	for p, kept := range files {
		_, err := os.Stat(filepath.Join(root, p))
		if kept && err != nil {
			t.Errorf("%s was removed: %v", p, err)
		}
		if !kept && !os.IsNotExist(err) {
			t.Errorf("%s survived Open", p)
		}
	}
}

// TestOpenMakesRootPrivate opens stores whose root another tool created
// readable by everyone, or which does not exist yet: afterwards the root is
// 0700, so no other local user can reach cache records, cache mounts or
// layers.
func TestOpenMakesRootPrivate(t *testing.T) {
	base := t.TempDir()
	existing := filepath.Join(base, "existing")
	if err := os.Mkdir(existing, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(existing, 0o755); err != nil { // whatever the umask
		t.Fatal(err)
	}
	for _, root := range []string{existing, filepath.Join(base, "new", "root")} {
		if _, err := Open(root); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(root); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s after Open: %v, %v; want mode 0700", root, fi, err)
		}
	}
}
