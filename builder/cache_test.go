package builder

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/builder-project/builder/internal/testutil"
)

// stepStatus returns, per step name, whether the last build took it from
// the cache, in the order the events came.
func (f *buildFixture) statuses() map[string]bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]bool{}
	for _, ev := range f.evs {
		switch ev.Kind {
		case StepCached:
			out[ev.Name] = true
		case StepStarted, StepDone:
			if _, seen := out[ev.Name]; !seen || ev.Kind == StepStarted {
				out[ev.Name] = false
			}
		}
	}
	f.evs = nil
	return out
}

const cacheDockerfile = `FROM busybox:latest
ENV A=1
COPY a.txt /a.txt
ARG V=default
COPY b.txt /b.txt
RUN echo "$V" > /v.txt && cat /a.txt /b.txt > /ab.txt
RUN echo last > /last.txt
`

func TestCacheRebuilds(t *testing.T) {
	f := newBuildFixture(t, map[string]string{"Dockerfile": cacheDockerfile, "a.txt": "a", "b.txt": "b", "unrelated.txt": "u"})
	first := f.mustBuild(t, BuildOptions{Tags: []string{"c"}})
	if first.Cached != 0 {
		t.Fatalf("cold build had %d cache hits", first.Cached)
	}
	f.statuses()

	type want map[string]bool // step name → cached
	check := func(t *testing.T, got map[string]bool, w want) {
		t.Helper()
		for name, cached := range w {
			if c, ok := got[name]; !ok || c != cached {
				t.Errorf("step %q: cached=%v (seen %v), want cached=%v", name, c, ok, cached)
			}
		}
	}
	all := want{"ENV A=1": true, "COPY a.txt /a.txt": true, "ARG V=default": true, "COPY b.txt /b.txt": true,
		`RUN echo "$V" > /v.txt && cat /a.txt /b.txt > /ab.txt`: true, "RUN echo last > /last.txt": true}

	t.Run("same build twice", func(t *testing.T) {
		res := f.mustBuild(t, BuildOptions{Tags: []string{"c"}})
		check(t, f.statuses(), all)
		if res.ID != first.ID {
			t.Fatalf("image ID changed on a fully cached rebuild: %s → %s", first.ID, res.ID)
		}
	})
	t.Run("unrelated file touched", func(t *testing.T) {
		f.write(t, map[string]string{"unrelated.txt": "changed"})
		res := f.mustBuild(t, BuildOptions{})
		check(t, f.statuses(), all)
		if res.ID != first.ID {
			t.Fatal("unrelated change altered the image")
		}
	})
	t.Run("copied file mtime only", func(t *testing.T) {
		old := time.Now().Add(-time.Hour)
		os.Chtimes(filepath.Join(f.ctx, "a.txt"), old, old)
		f.mustBuild(t, BuildOptions{})
		check(t, f.statuses(), all)
	})
	t.Run("copied file changed", func(t *testing.T) {
		f.write(t, map[string]string{"b.txt": "B2"})
		f.mustBuild(t, BuildOptions{Tags: []string{"c2"}})
		check(t, f.statuses(), want{"COPY a.txt /a.txt": true, "ARG V=default": true, "COPY b.txt /b.txt": false,
			`RUN echo "$V" > /v.txt && cat /a.txt /b.txt > /ab.txt`: false, "RUN echo last > /last.txt": false})
		if got := readFile(t, filepath.Join(f.rootfs(t, "c2"), "ab.txt")); got != "aB2" {
			t.Fatalf("ab.txt = %q", got)
		}
	})
	t.Run("build arg changed", func(t *testing.T) {
		f.mustBuild(t, BuildOptions{Tags: []string{"c3"}, BuildArgs: map[string]string{"V": "other"}})
		// The arg is first used by the RUN: steps before it stay cached.
		check(t, f.statuses(), want{"ARG V=default": true, "COPY b.txt /b.txt": true,
			`RUN echo "$V" > /v.txt && cat /a.txt /b.txt > /ab.txt`: false, "RUN echo last > /last.txt": false})
		if got := readFile(t, filepath.Join(f.rootfs(t, "c3"), "v.txt")); got != "other\n" {
			t.Fatalf("v.txt = %q", got)
		}
	})
	t.Run("no-cache", func(t *testing.T) {
		res := f.mustBuild(t, BuildOptions{NoCache: true})
		if res.Cached != 0 {
			t.Fatalf("--no-cache build had %d hits", res.Cached)
		}
		f.statuses()
	})
	t.Run("survives reopening", func(t *testing.T) {
		b2, err := Open(f.b.Root())
		if err != nil {
			t.Fatal(err)
		}
		f.b = b2
		res := f.mustBuild(t, BuildOptions{})
		if res.Steps != 0 {
			t.Fatalf("%d steps ran after reopening the store", res.Steps)
		}
		f.statuses()
	})
}

func TestCacheNoCacheFilter(t *testing.T) {
	f := newBuildFixture(t, map[string]string{"Dockerfile": `FROM busybox:latest AS dep
RUN echo dep > /dep
RUN cat /proc/sys/kernel/random/uuid > /random
FROM busybox:latest
COPY --from=dep /dep /dep
COPY --from=dep /random /random
RUN echo final > /final
`})
	f.mustBuild(t, BuildOptions{Tags: []string{"one"}})
	f.statuses()
	f.mustBuild(t, BuildOptions{NoCacheFilter: []string{"dep"}, Tags: []string{"two"}})
	st := f.statuses()
	if st["RUN echo dep > /dep"] || st["RUN cat /proc/sys/kernel/random/uuid > /random"] {
		t.Errorf("the filtered stage was taken from the cache: %v", st)
	}
	// The stage's output changed (a new uuid), so what copies it reruns,
	// and the result has the new content.
	if st["COPY --from=dep /dep /dep"] || st["RUN echo final > /final"] {
		t.Errorf("steps depending on changed output hit the cache: %v", st)
	}
	if a, b := readFile(t, filepath.Join(f.rootfs(t, "one"), "random")), readFile(t, filepath.Join(f.rootfs(t, "two"), "random")); a == b {
		t.Errorf("the rebuilt image kept the stale output %q", a)
	}
}

func TestCacheBaseImageChanged(t *testing.T) {
	f := newBuildFixture(t, map[string]string{"Dockerfile": "FROM busybox:latest\nRUN echo hi > /hi\n"})
	f.mustBuild(t, BuildOptions{})
	f.statuses()
	// Re-import the base under the same tag with other content.
	if _, err := f.b.Import(context.Background(), bytes.NewReader(tarDir(t, testutil.BusyboxRootfs(t))), ImportOptions{Ref: "busybox:latest", Changes: []string{"ENV CHANGED=1"}}); err != nil {
		t.Fatal(err)
	}
	f.mustBuild(t, BuildOptions{})
	if f.statuses()["RUN echo hi > /hi"] {
		t.Fatal("RUN hit the cache although the base image changed under its tag")
	}
}

func TestCacheMountPersists(t *testing.T) {
	f := newBuildFixture(t, map[string]string{"Dockerfile": `FROM busybox:latest
ARG N
RUN --mount=type=cache,target=/cache echo "$N" >> /cache/runs && cat /cache/runs > /seen
`})
	f.mustBuild(t, BuildOptions{Tags: []string{"m1"}, BuildArgs: map[string]string{"N": "1"}})
	f.mustBuild(t, BuildOptions{Tags: []string{"m2"}, BuildArgs: map[string]string{"N": "2"}})
	root := f.rootfs(t, "m2")
	if got := readFile(t, filepath.Join(root, "seen")); got != "1\n2\n" {
		t.Fatalf("cache mount contents = %q, want both runs", got)
	}
	if _, err := os.Stat(filepath.Join(root, "cache", "runs")); !os.IsNotExist(err) {
		t.Fatalf("cache mount contents leaked into the layer: %v", err)
	}
}

func TestConcurrentBuildsShareCache(t *testing.T) {
	f := newBuildFixture(t, map[string]string{"Dockerfile": "FROM busybox:latest\nCOPY a.txt /\nRUN echo x > /x\n", "a.txt": "a"})
	var wg sync.WaitGroup
	ids := make([]string, 2)
	errs := make([]error, 2)
	for i := range ids {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			b, err := Open(f.b.Root()) // as another process would
			if err != nil {
				errs[i] = err
				return
			}
			res, err := b.Build(context.Background(), BuildOptions{ContextDir: f.ctx})
			if err == nil {
				ids[i] = res.ID.String()
			}
			errs[i] = err
		}(i)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	res := f.mustBuild(t, BuildOptions{})
	if res.Steps != 0 {
		t.Fatalf("a third build ran %d steps after two concurrent ones", res.Steps)
	}
	assertNoLeftovers(t, f.b)
}

func TestSecretMount(t *testing.T) {
	f := newBuildFixture(t, map[string]string{"Dockerfile": `FROM busybox:latest
RUN --mount=type=secret,id=token cat /run/secrets/token > /proof-len && wc -c < /run/secrets/token > /len && stat -c %a /run/secrets/token > /mode
RUN --mount=type=secret,id=token,env=TOKEN echo ${#TOKEN} > /envlen
RUN --mount=type=secret,id=missing true
`})
	secret := filepath.Join(t.TempDir(), "token")
	os.WriteFile(secret, []byte("s3cr3t-value"), 0o644)
	res := f.mustBuild(t, BuildOptions{Tags: []string{"s"}, Secrets: map[string]SecretSource{"token": {File: secret}}})
	root := f.rootfs(t, "s")
	if got := strings.TrimSpace(readFile(t, filepath.Join(root, "len"))); got != "12" {
		t.Fatalf("secret length inside the step = %q", got)
	}
	if got := strings.TrimSpace(readFile(t, filepath.Join(root, "envlen"))); got != "12" {
		t.Fatalf("secret env length = %q", got)
	}
	if got := strings.TrimSpace(readFile(t, filepath.Join(root, "mode"))); got != "400" {
		t.Fatalf("secret mode = %q", got)
	}
	if _, err := os.Stat(filepath.Join(root, "run", "secrets", "token")); !os.IsNotExist(err) {
		t.Fatalf("secret file left in the image: %v", err)
	}
	// The value is nowhere in the store's metadata: config, history, cache.
	img, _ := f.b.resolve(context.Background(), res.ID.String())
	cfg, _ := json.Marshal(img.config)
	if strings.Contains(string(cfg), "s3cr3t") {
		t.Fatal("secret value in the image config")
	}
	recs, _ := f.b.CacheEntries(context.Background())
	for _, r := range recs {
		if strings.Contains(r.CreatedBy, "s3cr3t") {
			t.Fatal("secret value in the cache")
		}
	}
	// A required secret that is missing fails the step.
	f.write(t, map[string]string{"Dockerfile": "FROM busybox:latest\nRUN --mount=type=secret,id=gone,required=true true\n"})
	if _, err := f.build(t, BuildOptions{}); err == nil || !strings.Contains(err.Error(), "gone") {
		t.Fatalf("missing required secret: %v", err)
	}
}

func TestBindMounts(t *testing.T) {
	f := newBuildFixture(t, map[string]string{"Dockerfile": `FROM busybox:latest AS tools
RUN mkdir /tools && echo tool-v1 > /tools/version
FROM busybox:latest
RUN --mount=type=bind,from=tools,source=/tools,target=/mnt/tools cat /mnt/tools/version > /from-stage
RUN --mount=type=bind,source=data,target=/mnt/data cat /mnt/data/x > /from-context
RUN --mount=type=bind,source=data,target=/mnt/data,rw echo scribble > /mnt/data/x && cat /mnt/data/x > /rw
`, "data/x": "ctx-data"})
	f.mustBuild(t, BuildOptions{Tags: []string{"bm"}})
	root := f.rootfs(t, "bm")
	for p, want := range map[string]string{"from-stage": "tool-v1\n", "from-context": "ctx-data", "rw": "scribble\n"} {
		if got := readFile(t, filepath.Join(root, p)); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
	if got := readFile(t, filepath.Join(f.ctx, "data", "x")); got != "ctx-data" {
		t.Errorf("a rw bind mount changed the context: %q", got)
	}
	if _, err := os.Stat(filepath.Join(root, "mnt", "tools", "version")); !os.IsNotExist(err) {
		t.Errorf("bind mount content leaked into the image: %v", err)
	}
	// Changing the mounted stage's output invalidates the RUN that mounts it.
	f.write(t, map[string]string{"Dockerfile": strings.Replace(readFile(t, filepath.Join(f.ctx, "Dockerfile")), "tool-v1", "tool-v2", 1)})
	f.statuses()
	f.mustBuild(t, BuildOptions{Tags: []string{"bm2"}})
	if got := readFile(t, filepath.Join(f.rootfs(t, "bm2"), "from-stage")); got != "tool-v2\n" {
		t.Errorf("stale bind mount from stage: %q", got)
	}
}
