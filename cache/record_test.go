package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-project/builder/internal/atomicfile"
)

func testRecord(name string, size int64) Record {
	blob := digest.FromString("blob " + name)
	return Record{
		Key: digest.FromString(name),
		Layer: &LayerRef{
			Desc:    ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: blob, Size: size},
			DiffID:  digest.FromString("diff " + name),
			ChainID: digest.FromString("chain " + name),
		},
		Config:    json.RawMessage(`{"architecture":"amd64","os":"linux"}`),
		CreatedBy: "RUN " + name,
		Size:      size,
	}
}

func mustOpen(t testing.TB, dir string) *Cache {
	t.Helper()
	c, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPutLookupPersist(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := mustOpen(t, dir)
	rec := testRecord("a", 100)
	if err := c.Put(ctx, rec); err != nil {
		t.Fatal(err)
	}
	meta := Record{Key: digest.FromString("meta"), Config: json.RawMessage(`{"os":"linux"}`), CreatedBy: "ENV A=1", EmptyLayer: true}
	if err := c.Put(ctx, meta); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := c.Lookup(ctx, digest.FromString("missing")); ok || err != nil {
		t.Fatalf("Lookup(missing) = %v, %v", ok, err)
	}

	c2 := mustOpen(t, dir) // a fresh Open sees what the first one wrote
	got, ok, err := c2.Lookup(ctx, rec.Key)
	if err != nil || !ok {
		t.Fatalf("Lookup = %v, %v", ok, err)
	}
	if got.Layer == nil || !reflect.DeepEqual(got.Layer, rec.Layer) || got.CreatedBy != rec.CreatedBy || string(got.Config) != string(rec.Config) || got.Size != 100 {
		t.Fatalf("Lookup = %+v, want %+v", got, rec)
	}
	if got.Created.IsZero() || got.LastUsed.IsZero() {
		t.Fatalf("times not set: %+v", got)
	}
	gm, ok, err := c2.Lookup(ctx, meta.Key)
	if err != nil || !ok || gm.Layer != nil || !gm.EmptyLayer {
		t.Fatalf("metadata-only Lookup = %+v, %v, %v", gm, ok, err)
	}

	recs, err := c2.List(ctx)
	if err != nil || len(recs) != 2 {
		t.Fatalf("List = %d records, %v", len(recs), err)
	}
	n, size, err := c2.Usage(ctx)
	if err != nil || n != 2 || size != 100 {
		t.Fatalf("Usage = %d, %d, %v", n, size, err)
	}
	if err := c2.Delete(ctx, rec.Key); err != nil {
		t.Fatal(err)
	}
	if err := c2.Delete(ctx, rec.Key); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
	if _, ok, err := c.Lookup(ctx, rec.Key); err != nil || ok {
		t.Fatalf("Lookup after Delete = %v, %v; want not found", ok, err)
	}
	if err := c.Put(ctx, Record{Key: "sha256:nothex"}); err == nil {
		t.Fatal("Put accepted an invalid key")
	}
}

func TestLookupUpdatesLastUsed(t *testing.T) {
	ctx := context.Background()
	c := mustOpen(t, t.TempDir())
	rec := testRecord("a", 1)
	rec.LastUsed = time.Now().Add(-48 * time.Hour)
	if err := c.Put(ctx, rec); err != nil {
		t.Fatal(err)
	}
	recs, err := c.List(ctx)
	if err != nil || len(recs) != 1 {
		t.Fatalf("List = %d records, %v", len(recs), err)
	}
	if d := time.Since(recs[0].LastUsed); d < 47*time.Hour {
		t.Fatalf("LastUsed after Put = %v ago, want the given 48h", d)
	}
	if _, ok, err := c.Lookup(ctx, rec.Key); err != nil || !ok {
		t.Fatalf("Lookup = %v, %v", ok, err)
	}
	recs, err = c.List(ctx)
	if err != nil || len(recs) != 1 {
		t.Fatalf("List = %d records, %v", len(recs), err)
	}
	if d := time.Since(recs[0].LastUsed); d > time.Minute {
		t.Fatalf("LastUsed after Lookup = %v ago", d)
	}
}

func TestLookupCorrupt(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := mustOpen(t, dir)
	key := digest.FromString("x")
	p := filepath.Join(dir, "records", "sha256", key.Encoded()+".json")
	if err := os.WriteFile(p, []byte(`{"key":`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := c.Lookup(ctx, key); ok || !isCorrupt(err) {
		t.Fatalf("Lookup(corrupt) = %v, %v", ok, err)
	}
	if err := c.Put(ctx, Record{Key: key}); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := c.Lookup(ctx, key); !ok || err != nil {
		t.Fatalf("Lookup after Put over corrupt = %v, %v", ok, err)
	}
}

func isCorrupt(err error) bool { return errors.Is(err, ErrCorrupt) }

func TestOpenRemovesStaleTemps(t *testing.T) {
	dir := t.TempDir()
	mustOpen(t, dir)
	recDir := filepath.Join(dir, "records", "sha256")
	old, fresh := filepath.Join(recDir, atomicfile.TempPrefix+"old"), filepath.Join(recDir, atomicfile.TempPrefix+"fresh")
	for _, p := range []string{old, fresh} {
		if err := os.WriteFile(p, []byte("{"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-2 * staleTmpAge)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	c := mustOpen(t, dir)
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Fatalf("stale temp survived Open: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Fatalf("fresh temp removed: %v", err)
	}
	if recs, err := c.List(context.Background()); err != nil || len(recs) != 0 {
		t.Fatalf("List sees temps: %v, %v", recs, err)
	}
}

// TestOpenAndHasherRemoveStaleTemps lays out a cache directory as the
// builder does (records by Open, context/ by OpenHasher): every old
// temporary file in it goes, a young one and the real files stay.
func TestOpenAndHasherRemoveStaleTemps(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-2 * time.Hour)
	files := map[string]bool{ // path under dir → kept
		"records/sha256/.tmp-ab.json-123": false,
		"context/.tmp-idx-9":              false,
		".tmp-top":                        false,
		"records/.tmp-mid":                false,
		"records/sha256/ab.json":          true,
		"context/idx":                     true,
	}
	for p := range files {
		full := filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(full, old, old)
	}
	young := filepath.Join(dir, "records/sha256/.tmp-cd.json-456")
	os.WriteFile(young, []byte("x"), 0o600)
	files["records/sha256/.tmp-cd.json-456"] = true

	mustOpen(t, dir)
	if _, err := OpenHasher(filepath.Join(dir, "context")); err != nil {
		t.Fatal(err)
	}
	for p, kept := range files {
		_, err := os.Stat(filepath.Join(dir, p))
		if kept && err != nil {
			t.Errorf("%s was removed: %v", p, err)
		}
		if !kept && !os.IsNotExist(err) {
			t.Errorf("%s survived Open", p)
		}
	}
}

// bigRecord is a record whose config repeats its writer's tag many times,
// so that a torn or mixed write would be detected by checkRecord.
func bigRecord(key digest.Digest, tag string) Record {
	cfg := `{"tag":"` + tag + `","pad":"` + strings.Repeat(tag, 64<<10/len(tag)) + `"}`
	return Record{Key: key, Config: json.RawMessage(cfg), CreatedBy: tag, Size: int64(len(cfg))}
}

func checkRecord(rec Record) error {
	var cfg struct{ Tag, Pad string }
	if err := json.Unmarshal(rec.Config, &cfg); err != nil {
		return err
	}
	if cfg.Tag != rec.CreatedBy || cfg.Pad != strings.Repeat(cfg.Tag, 64<<10/len(cfg.Tag)) || rec.Size != int64(len(rec.Config)) {
		return fmt.Errorf("mixed record: createdBy %q, tag %q", rec.CreatedBy, cfg.Tag)
	}
	return nil
}

func TestConcurrentPutGoroutines(t *testing.T) {
	ctx := context.Background()
	c := mustOpen(t, t.TempDir())
	key := digest.FromString("shared")
	if err := c.Put(ctx, bigRecord(key, "init")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				if err := c.Put(ctx, bigRecord(key, fmt.Sprintf("g%d-%d", g, i))); err != nil {
					errs <- err
				}
				rec, ok, err := c.Lookup(ctx, key)
				if err == nil && !ok {
					err = fmt.Errorf("record vanished")
				}
				if err == nil {
					err = checkRecord(rec)
				}
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

const putHelperEnv = "BUILDER_CACHE_PUT_HELPER"

// TestPutHelperProcess is not a test: TestConcurrentPutProcesses runs the
// test binary with it selected, and it then writes one key repeatedly.
func TestPutHelperProcess(t *testing.T) {
	spec := os.Getenv(putHelperEnv)
	if spec == "" {
		t.Skip("helper process for TestConcurrentPutProcesses")
	}
	dir, id, _ := strings.Cut(spec, "|")
	c := mustOpen(t, dir)
	ctx := context.Background()
	key := digest.FromString("shared")
	for i := range 50 {
		if err := c.Put(ctx, bigRecord(key, fmt.Sprintf("p%s-%d", id, i))); err != nil {
			t.Fatal(err)
		}
		rec, ok, err := c.Lookup(ctx, key)
		if err != nil || !ok {
			t.Fatalf("Lookup = %v, %v", ok, err)
		}
		if err := checkRecord(rec); err != nil {
			t.Fatal(err)
		}
	}
}

func TestConcurrentPutProcesses(t *testing.T) {
	if os.Getenv(putHelperEnv) != "" {
		t.Skip("inside a helper")
	}
	ctx := context.Background()
	dir := t.TempDir()
	c := mustOpen(t, dir)
	key := digest.FromString("shared")
	if err := c.Put(ctx, bigRecord(key, "init")); err != nil {
		t.Fatal(err)
	}
	var cmds []*exec.Cmd
	var outs []*strings.Builder
	for i := range 4 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestPutHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), putHelperEnv+"="+dir+"|"+strconv.Itoa(i))
		out := &strings.Builder{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, out)
	}
	done := make(chan struct{})
	var lookups int
	var exited atomic.Int32
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			default:
			}
			rec, ok, err := c.Lookup(ctx, key)
			if err != nil || !ok {
				t.Errorf("Lookup during concurrent Puts = %v, %v", ok, err)
				return
			}
			if err := checkRecord(rec); err != nil {
				t.Error(err)
				return
			}
			lookups++
			if exited.Load() == int32(len(cmds)) {
				return
			}
		}
	}()
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("helper %d: %v\n%s", i, err, outs[i])
		}
		exited.Add(1)
	}
	<-done
	rec, ok, err := c.Lookup(ctx, key)
	if err != nil || !ok || checkRecord(rec) != nil || !strings.HasPrefix(rec.CreatedBy, "p") {
		t.Fatalf("final Lookup = %q, %v, %v", rec.CreatedBy, ok, err)
	}
	entries, err := os.ReadDir(filepath.Join(dir, "records", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{key.Encoded() + ".json"}) {
		t.Fatalf("record dir holds %v, want only the record", names)
	}
	t.Logf("%d lookups during the concurrent puts", lookups)
}

// TestRecordsArePrivate checks that a record, which may hold build-arg
// values, is readable by its owner only, in directories only its owner can
// list, and that so is the context checksum index.
func TestRecordsArePrivate(t *testing.T) {
	dir := t.TempDir()
	c := mustOpen(t, dir)
	rec := testRecord("private", 1)
	rec.CreatedBy = "RUN --mount=type=secret,id=x TOKEN=hunter2 make"
	if err := c.Put(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	p, err := c.path(rec.Key)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{p: 0o600, filepath.Dir(p): 0o700, filepath.Join(dir, recordsDir): 0o700} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v, %v; want mode %o", path, fi, err, want)
		}
	}
	idx := filepath.Join(t.TempDir(), "context")
	if _, err := OpenHasher(idx); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(idx); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("context index directory: %v, %v; want mode 0700", fi, err)
	}
}
