package builder

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// epochDockerfile copies a file older and one newer than the epoch, runs
// a step that records the build arg, and changes the config.
const epochDockerfile = `FROM base:1
ARG SOURCE_DATE_EPOCH
COPY old.txt new.txt /files/
RUN echo "$SOURCE_DATE_EPOCH" > /stamp
ENV X=1
`

// newEpochBuild is a fake build on a store with a base image imported now
// and a context holding old.txt (mtime 2000) and new.txt (mtime now).
func newEpochBuild(t *testing.T) *fakeBuild {
	t.Helper()
	f := newFakeBuild(t, nil)
	if _, err := f.b.Import(context.Background(), strings.NewReader(string(tarOf(t, "etc/", "", "etc/base", "b"))), ImportOptions{Ref: "base:1"}); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	for name, mtime := range map[string]time.Time{"old.txt": old, "new.txt": time.Now()} {
		p := filepath.Join(f.ctx, name)
		if err := os.WriteFile(p, []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// layerMtimes returns the mtime of every entry of the stored layer blob,
// read through the store (built layers come from their recipes).
func layerMtimes(t *testing.T, f *fakeBuild, ref string, i int) map[string]time.Time {
	t.Helper()
	img, err := f.b.resolve(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	tr := layerTar(t, f.b, img.manifest.Layers[i].Digest)
	out := map[string]time.Time{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimSuffix(h.Name, "/")] = h.ModTime.UTC()
	}
}

// TestSourceDateEpoch checks what SOURCE_DATE_EPOCH changes: the config's
// created time and that of every history entry the build adds (not the
// base's), the mtimes newer than the epoch in every layer the build makes
// (older ones stay), as the store regenerates the layers from their
// snapshots, and the build arg RUN sees.
func TestSourceDateEpoch(t *testing.T) {
	f := newEpochBuild(t)
	epoch := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	f.mustBuild(t, epochDockerfile, BuildOptions{Tags: []string{"app:1"}, SourceDateEpoch: &epoch})
	img, err := f.b.resolve(context.Background(), "app:1")
	if err != nil {
		t.Fatal(err)
	}
	cfg := img.config
	if cfg.Created == nil || !cfg.Created.Equal(epoch) {
		t.Errorf("config created %v, want %v", cfg.Created, epoch)
	}
	if n := len(cfg.History); n != 5 {
		t.Fatalf("%d history entries, want the base's and 4", n)
	}
	if h := cfg.History[0]; h.Created == nil || h.Created.Equal(epoch) {
		t.Errorf("the base's history entry is dated %v: the build changed it", h.Created)
	}
	for _, h := range cfg.History[1:] {
		if h.Created == nil || !h.Created.Equal(epoch) {
			t.Errorf("history %q created %v, want %v", h.CreatedBy, h.Created, epoch)
		}
	}
	copied := layerMtimes(t, f, "app:1", 1)
	want := map[string]time.Time{"files": epoch, "files/new.txt": epoch, "files/old.txt": time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)}
	for p, w := range want {
		if got, ok := copied[p]; !ok || !got.Equal(w) {
			t.Errorf("COPY layer: %s mtime %v, want %v", p, got, w)
		}
	}
	for p, got := range layerMtimes(t, f, "app:1", 2) {
		if !got.Equal(epoch) {
			t.Errorf("RUN layer: %s mtime %v, want %v", p, got, epoch)
		}
	}
	// --squash writes one layer of its own: clamped the same way.
	f.mustBuild(t, epochDockerfile, BuildOptions{Tags: []string{"app:squashed"}, SourceDateEpoch: &epoch, Squash: true})
	squashed := layerMtimes(t, f, "app:squashed", 1)
	if got := squashed["files/old.txt"]; !got.Equal(want["files/old.txt"]) {
		t.Errorf("squashed layer: files/old.txt mtime %v, want %v", got, want["files/old.txt"])
	}
	for _, p := range []string{"files", "files/new.txt", "stamp"} {
		if got := squashed[p]; !got.Equal(epoch) {
			t.Errorf("squashed layer: %s mtime %v, want %v", p, got, epoch)
		}
	}
	runs := f.exec.Runs()
	if len(runs) != 1 || !containsString(runs[0].Env, "SOURCE_DATE_EPOCH=1577836800") {
		t.Errorf("RUN env: %+v, want SOURCE_DATE_EPOCH=1577836800", runs)
	}

	// Undeclared, the build arg is predefined: no warning, and RUN does
	// not see it (BuildKit exposes it only after ARG SOURCE_DATE_EPOCH).
	f.mustBuild(t, "FROM base:1\nRUN echo x > /x\n", BuildOptions{SourceDateEpoch: &epoch})
	if runs := f.exec.Runs(); len(runs) != 2 || containsPrefix(runs[1].Env, "SOURCE_DATE_EPOCH=") {
		t.Errorf("RUN without ARG SOURCE_DATE_EPOCH: env %q", runs[len(runs)-1].Env)
	}
	f.mu.Lock()
	for _, ev := range f.evs {
		if ev.Kind == Warning && strings.Contains(ev.Message, "SOURCE_DATE_EPOCH") {
			t.Errorf("warning: %s", ev.Message)
		}
	}
	f.mu.Unlock()
}

// TestSourceDateEpochCache checks that a step built under one epoch is not
// reused under another (or none), that the same epoch reuses every step
// and gives the same image, and that --build-arg SOURCE_DATE_EPOCH sets
// the epoch as BuildKit's does.
func TestSourceDateEpochCache(t *testing.T) {
	f := newEpochBuild(t)
	a := time.Unix(1_577_836_800, 0)
	b := time.Unix(1_600_000_000, 0)
	first := f.mustBuild(t, epochDockerfile, BuildOptions{Tags: []string{"app:a"}, SourceDateEpoch: &a})
	if again := f.mustBuild(t, epochDockerfile, BuildOptions{SourceDateEpoch: &a}); again.ID != first.ID || again.Steps != 0 {
		t.Errorf("same epoch: %s with %d steps run, want %s all cached", again.ID, again.Steps, first.ID)
	}
	byArg := f.mustBuild(t, epochDockerfile, BuildOptions{BuildArgs: map[string]string{"SOURCE_DATE_EPOCH": "1577836800"}})
	if byArg.ID != first.ID || byArg.Steps != 0 {
		t.Errorf("--build-arg SOURCE_DATE_EPOCH: %s with %d steps run, want %s all cached", byArg.ID, byArg.Steps, first.ID)
	}
	other := f.mustBuild(t, epochDockerfile, BuildOptions{Tags: []string{"app:b"}, SourceDateEpoch: &b})
	if other.Cached != 0 {
		t.Errorf("another epoch: %d steps cached (%q), want none", other.Cached, f.cachedSteps())
	}
	if got := layerMtimes(t, f, "app:b", 1)["files/new.txt"]; !got.Equal(b) {
		t.Errorf("another epoch: new.txt mtime %v, want %v", got, b.UTC())
	}
	if none := f.mustBuild(t, epochDockerfile, BuildOptions{}); none.Cached != 0 {
		t.Errorf("no epoch: %d steps cached (%q), want none", none.Cached, f.cachedSteps())
	}
	for _, v := range []string{"yesterday", "-1", "1.5"} {
		_, err := f.build(t, epochDockerfile, BuildOptions{BuildArgs: map[string]string{"SOURCE_DATE_EPOCH": v}})
		if err == nil || !strings.Contains(err.Error(), "SOURCE_DATE_EPOCH") || !strings.Contains(err.Error(), v) {
			t.Errorf("SOURCE_DATE_EPOCH=%s: %v, want an error naming it", v, err)
		}
	}
}

// TestConcurrentBuildsSameID runs the same Dockerfile twice at once in one
// store, without the cache, with real RUN steps: under SOURCE_DATE_EPOCH
// both give the same image, layer for layer.
func TestConcurrentBuildsSameID(t *testing.T) {
	f := newBuildFixture(t, map[string]string{
		"Dockerfile": "FROM busybox:latest\nWORKDIR /app\nCOPY . .\nRUN echo built > out.txt && mkdir -p /var/lib/x && cp /etc/passwd /var/lib/x/\nENV A=1\n",
		"src/a.txt":  "a",
	})
	epoch := time.Unix(1_577_836_800, 0)
	var wg sync.WaitGroup
	res := make([]*BuildResult, 2)
	errs := make([]error, 2)
	for i := range res {
		wg.Go(func() {
			res[i], errs[i] = f.build(t, BuildOptions{NoCache: true, SourceDateEpoch: &epoch})
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if res[0].ID != res[1].ID {
		a, b := f.inspectLayers(t, res[0].ID.String()), f.inspectLayers(t, res[1].ID.String())
		t.Fatalf("concurrent builds gave %s and %s\nlayers %s\n       %s", res[0].ID, res[1].ID, a, b)
	}
}

func (f *buildFixture) inspectLayers(t *testing.T, ref string) string {
	t.Helper()
	ins, err := f.b.Inspect(context.Background(), []string{ref})
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(ins[0].Created, ins[0].RootFS.Layers)
}
