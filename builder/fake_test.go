package builder

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/builder-project/builder/dockerfile"
	"github.com/builder-project/builder/executor"
	"github.com/builder-project/builder/executor/executortest"
)

// These tests run whole builds with the in-process fake executor: they need
// no root, no namespaces and no overlayfs, so they run for every user. They
// cover what does not depend on a real container: scheduling of stages,
// cache hits and misses, the image config and history, and where errors
// point.

// fakeBuild is a builder on a fresh store with a fake executor, and a
// context directory.
type fakeBuild struct {
	b    *Builder
	exec *executortest.Fake
	ctx  string
	mu   sync.Mutex
	evs  []Event
}

func newFakeBuild(t *testing.T, h executortest.Handler) *fakeBuild {
	t.Helper()
	f := &fakeBuild{exec: &executortest.Fake{Handler: h}, ctx: t.TempDir()}
	var err error
	if f.b, err = Open(t.TempDir(), WithExecutor(f.exec)); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fakeBuild) build(t *testing.T, dockerfileText string, opts BuildOptions) (*BuildResult, error) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(f.ctx, "Dockerfile"), []byte(dockerfileText), 0o644); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.evs = nil
	f.mu.Unlock()
	opts.ContextDir = f.ctx
	opts.Progress = func(ev Event) {
		f.mu.Lock()
		f.evs = append(f.evs, ev)
		f.mu.Unlock()
	}
	return f.b.Build(context.Background(), opts)
}

func (f *fakeBuild) mustBuild(t *testing.T, dockerfileText string, opts BuildOptions) *BuildResult {
	t.Helper()
	res, err := f.build(t, dockerfileText, opts)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	return res
}

// kinds returns "Name:kind" for every step event of the last build.
func (f *fakeBuild) cachedSteps() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, ev := range f.evs {
		if ev.Kind == StepCached {
			out = append(out, ev.Name)
		}
	}
	return out
}

const fakeDockerfile = `FROM scratch
ARG GREETING=hello
ENV APP=/app
WORKDIR $APP
RUN echo "$GREETING" > greeting.txt
LABEL version=1
USER 1000:1000
ENTRYPOINT ["/app/run"]
CMD ["world"]
`

func TestFakeConfigAndHistory(t *testing.T) {
	f := newFakeBuild(t, nil)
	res := f.mustBuild(t, fakeDockerfile, BuildOptions{Tags: []string{"app:1"}, Labels: map[string]string{"extra": "yes"}})
	if res.Steps != 8 || res.Cached != 0 {
		t.Errorf("steps %d, cached %d; want 8, 0", res.Steps, res.Cached)
	}
	ins, err := f.b.Inspect(context.Background(), []string{"app:1"})
	if err != nil {
		t.Fatal(err)
	}
	c := ins[0].Config
	if c.WorkingDir != "/app" || c.User != "1000:1000" || c.Labels["version"] != "1" || c.Labels["extra"] != "yes" {
		t.Errorf("config: %+v", c)
	}
	if !reflect.DeepEqual(c.Entrypoint, []string{"/app/run"}) || !reflect.DeepEqual(c.Cmd, []string{"world"}) {
		t.Errorf("entrypoint %q cmd %q", c.Entrypoint, c.Cmd)
	}
	if !containsString(c.Env, "APP=/app") || containsPrefix(c.Env, "GREETING=") {
		t.Errorf("env %q: want APP and no build arg", c.Env)
	}
	// WORKDIR and RUN change files; the other steps are metadata only.
	if n := len(ins[0].RootFS.Layers); n != 2 {
		t.Errorf("%d layers, want 2", n)
	}
	hist, err := f.b.History(context.Background(), "app:1")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := len(hist) - 1; i >= 0; i-- {
		got = append(got, hist[i].CreatedBy)
	}
	want := []string{
		"ARG GREETING=hello", "ENV APP=/app", "WORKDIR /app",
		`RUN |1 GREETING=hello /bin/sh -c echo "$GREETING" > greeting.txt # buildkit`,
		"LABEL version=1", "USER 1000:1000", `ENTRYPOINT ["/app/run"]`, `CMD ["world"]`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("history:\n got %q\nwant %q", got, want)
	}
	img, err := f.b.resolve(context.Background(), "app:1")
	if err != nil {
		t.Fatal(err)
	}
	entries := layerEntries(t, f.b, img.manifest.Layers[1].Digest)
	if !reflect.DeepEqual(entries, []string{"app/", "app/greeting.txt"}) {
		t.Errorf("RUN layer entries %q", entries)
	}
	// The RUN saw the build arg and the image env, in its working dir.
	runs := f.exec.Runs()
	if len(runs) != 1 || runs[0].Cwd != "/app" || runs[0].User != "" || !containsString(runs[0].Env, "GREETING=hello") {
		t.Errorf("runs: %+v", runs)
	}
}

func TestFakeCacheHits(t *testing.T) {
	f := newFakeBuild(t, nil)
	first := f.mustBuild(t, fakeDockerfile, BuildOptions{})
	again := f.mustBuild(t, fakeDockerfile, BuildOptions{})
	if again.Cached != 8 || again.ID != first.ID {
		t.Errorf("rebuild: %d cached, ID %s vs %s", again.Cached, again.ID, first.ID)
	}
	// A changed build arg invalidates from its first use (the RUN), not
	// from the ARG line.
	res := f.mustBuild(t, fakeDockerfile, BuildOptions{BuildArgs: map[string]string{"GREETING": "bye"}})
	if got := f.cachedSteps(); !reflect.DeepEqual(got, []string{"ARG GREETING=hello", "ENV APP=/app", "WORKDIR $APP"}) {
		t.Errorf("cached with a new arg value: %q", got)
	}
	if res.ID == first.ID {
		t.Error("a changed build arg gave the same image")
	}
	// A changed RUN line invalidates it and what follows.
	f.mustBuild(t, strings.Replace(fakeDockerfile, "greeting.txt", "g.txt", 1), BuildOptions{})
	if got := len(f.cachedSteps()); got != 3 {
		t.Errorf("%d steps cached after changing RUN, want 3", got)
	}
	// --no-cache runs everything again; --no-cache-filter only its stage.
	if res := f.mustBuild(t, fakeDockerfile, BuildOptions{NoCache: true}); res.Cached != 0 {
		t.Errorf("--no-cache: %d cached", res.Cached)
	}
	if res := f.mustBuild(t, fakeDockerfile, BuildOptions{NoCacheFilter: []string{"other"}}); res.Cached != 8 {
		t.Errorf("--no-cache-filter of another stage: %d cached", res.Cached)
	}
	// A re-executed step that gives the same output keeps what follows
	// cached: steps chain on content.
	before := len(f.exec.Runs())
	res = f.mustBuild(t, "FROM scratch AS s\nRUN echo x > /x\nLABEL a=b\n", BuildOptions{})
	res2 := f.mustBuild(t, "FROM scratch AS s\nRUN echo x > /x\nLABEL a=b\n", BuildOptions{NoCacheFilter: []string{"s"}})
	if len(f.exec.Runs()) != before+2 || res2.ID == "" {
		t.Errorf("runs %d → %d", before, len(f.exec.Runs()))
	}
	_ = res
}

// barrier releases its waiters once n of them have arrived, and fails the
// wait after a timeout: it proves that n steps ran at the same time.
type barrier struct {
	mu      sync.Mutex
	n, seen int
	all     chan struct{}
	maxLive int
	live    int
}

func newBarrier(n int) *barrier { return &barrier{n: n, all: make(chan struct{})} }

func (b *barrier) handler(ctx context.Context, s executor.Spec, root string, io executor.IO) error {
	b.mu.Lock()
	b.seen++
	b.live++
	b.maxLive = max(b.maxLive, b.live)
	if b.seen == b.n {
		close(b.all)
	}
	b.mu.Unlock()
	defer func() { b.mu.Lock(); b.live--; b.mu.Unlock() }()
	select {
	case <-b.all:
	case <-time.After(300 * time.Millisecond):
	}
	return executortest.Script(ctx, s, root, io)
}

const parallelDockerfile = `FROM scratch AS one
RUN echo 1 > /one
FROM scratch AS two
RUN echo 2 > /two
FROM scratch AS three
RUN echo 3 > /three
FROM scratch AS unused
RUN exit 1
FROM scratch
RUN --mount=type=bind,from=one,target=/1 --mount=type=bind,from=two,target=/2 --mount=type=bind,from=three,target=/3 cat /1/one /2/two /3/three > /all
`

func TestFakeStagesRunInParallel(t *testing.T) {
	for _, tc := range []struct {
		jobs, want int
	}{{0, 3}, {3, 3}, {1, 1}} {
		b := newBarrier(3)
		f := newFakeBuild(t, b.handler)
		f.mustBuild(t, parallelDockerfile, BuildOptions{Jobs: tc.jobs})
		if b.maxLive != tc.want {
			t.Errorf("--jobs %d: %d stages ran at once, want %d", tc.jobs, b.maxLive, tc.want)
		}
		// The unused stage never ran; the final step ran last, with all
		// three stages mounted.
		runs := f.exec.Runs()
		if len(runs) != 4 {
			t.Fatalf("%d runs, want 4", len(runs))
		}
		if last := runs[3]; len(last.Mounts) != 3 {
			t.Errorf("final step mounts: %+v", last.Mounts)
		}
	}
}

func TestFakeErrorLocations(t *testing.T) {
	f := newFakeBuild(t, nil)
	for _, tc := range []struct {
		name, dockerfile string
		line             int
		is               error
		contains         string
	}{
		{"failing RUN", "FROM scratch\nENV A=1\nRUN echo before && exit 3\n", 3, nil, "exit code: 3"},
		{"unknown command", "FROM scratch\nRUN nosuchprogram\n", 2, nil, "exit code: 127"},
		{"missing source", "FROM scratch\n\nCOPY missing.txt /\n", 3, ErrSourceNotFound, "missing.txt"},
		{"missing base", "FROM scratch\nFROM nosuch/image:1\nRUN true\n", 2, ErrNotFound, "nosuch/image:1"},
		{"bad instruction", "FROM scratch\nRUNN true\n", 2, nil, "unknown instruction"},
		{"bad stopsignal", "FROM scratch\nSTOPSIGNAL NOPE\n", 2, nil, "STOPSIGNAL"},
		{"secret required", "FROM scratch\nRUN --mount=type=secret,id=tok,required true\n", 2, nil, `secret "tok" is required`},
		{"foreign RUN", "FROM --platform=linux/s390x scratch\nLABEL a=b\nRUN true\n", 3, nil, "needs emulation"},
		{"missing platform", "FROM --platform=linux/s390x nosuch/image:1\n", 1, ErrNotFound, "nosuch/image:1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.build(t, tc.dockerfile, BuildOptions{Pull: PullNever})
			if err == nil {
				t.Fatal("build succeeded")
			}
			var de *dockerfile.Error
			if !errors.As(err, &de) || de.StartLine != tc.line {
				t.Errorf("error %q is not located at line %d (%+v)", err, tc.line, de)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %q is not %v", err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.contains) {
				t.Errorf("error %q does not mention %q", err, tc.contains)
			}
		})
	}
	var se *StepError
	_, err := f.build(t, "FROM scratch\nRUN echo some output && exit 7\n", BuildOptions{})
	if !errors.As(err, &se) || se.Code != 7 || !strings.Contains(se.Msg, "some output") || !strings.Contains(se.Msg, "[stage-0 2/2]") {
		t.Errorf("StepError: %+v (%v)", se, err)
	}
	// A failed build leaves no image, no active snapshot and no temp dir.
	imgs, err := f.b.Images(context.Background(), ImagesOptions{})
	if err != nil || len(imgs) != 0 {
		t.Errorf("images after failed builds: %d, %v", len(imgs), err)
	}
	for _, sub := range []string{"active", "tmp", "ingest"} {
		if entries, err := os.ReadDir(filepath.Join(f.b.Root(), sub)); err != nil || len(entries) != 0 {
			t.Errorf("%s/ after failed builds: %d entries, %v", sub, len(entries), err)
		}
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func containsPrefix(list []string, p string) bool {
	for _, x := range list {
		if strings.HasPrefix(x, p) {
			return true
		}
	}
	return false
}

// TestFakeOutputsAndCacheSync covers what Build does after the last step:
// its outputs, and the build cache it imports and exports.
func TestFakeOutputsAndCacheSync(t *testing.T) {
	ctx := context.Background()
	f := newFakeBuild(t, nil)
	df := "FROM scratch\nRUN echo hi > /hi\nCMD [\"/hi\"]\n"

	// An archive-only build keeps no image; the archive names it by tag.
	var archive bytes.Buffer
	res := f.mustBuild(t, df, BuildOptions{Tags: []string{"app:1"}, Outputs: []Output{{Type: OutputOCI, Writer: &archive}}})
	if imgs, err := f.b.Images(ctx, ImagesOptions{}); err != nil || len(imgs) != 0 {
		t.Errorf("archive-only build stored %d images (%v)", len(imgs), err)
	}
	other := newFakeBuild(t, nil)
	loaded, err := other.b.Load(ctx, &archive)
	if err != nil || len(loaded) != 1 || loaded[0].ID != res.ID.String() || len(loaded[0].Names) != 1 || loaded[0].Names[0] != "app:1" {
		t.Fatalf("loading the output: %+v, %v", loaded, err)
	}

	// With an image output too, the image is kept and a file output is
	// written whole.
	dest := filepath.Join(t.TempDir(), "app.docker.tar")
	cacheDir := filepath.Join(t.TempDir(), "cache")
	f.mustBuild(t, df, BuildOptions{Tags: []string{"app:1"}, CacheTo: []CacheDest{{Type: CacheLocal, Dir: cacheDir}},
		Outputs: []Output{{Type: OutputImage}, {Type: OutputDocker, Dest: dest}}})
	if id, err := f.b.ResolveID("app:1"); err != nil || id != res.ID {
		t.Errorf("app:1 = %s, %v; want %s", id, err, res.ID)
	}
	if fi, err := os.Stat(dest); err != nil || fi.Size() == 0 {
		t.Errorf("docker archive output: %v", err)
	}

	// A fresh store with --cache-from runs nothing; a missing cache source
	// is a warning, not an error.
	fresh := newFakeBuild(t, nil)
	res2 := fresh.mustBuild(t, df, BuildOptions{CacheFrom: []CacheSource{{Type: CacheLocal, Dir: filepath.Join(t.TempDir(), "missing")}, {Type: CacheLocal, Dir: cacheDir}}})
	if res2.Cached != 2 || len(fresh.exec.Runs()) != 0 || res2.ID != res.ID {
		t.Errorf("build from imported cache: %d cached, %d runs, ID %s want %s", res2.Cached, len(fresh.exec.Runs()), res2.ID, res.ID)
	}
	var warnings, infos []string
	for _, ev := range fresh.evs {
		switch ev.Kind {
		case Warning:
			warnings = append(warnings, ev.Message)
		case Info:
			infos = append(infos, ev.Message)
		}
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "missing") || len(infos) != 1 || !strings.Contains(infos[0], "imported 2 cache entries") {
		t.Errorf("warnings %q, infos %q", warnings, infos)
	}
	if _, err := f.build(t, df, BuildOptions{Outputs: []Output{{Type: "nope"}}}); err == nil {
		t.Error("an unknown output type was accepted")
	}
}

// TestFakeTargetPlatform builds for another platform: FROM scratch, the
// image config and TARGETARCH follow --platform; only RUN would need the
// host's.
func TestFakeTargetPlatform(t *testing.T) {
	f := newFakeBuild(t, nil)
	res := f.mustBuild(t, "FROM scratch\nARG TARGETARCH\nLABEL arch=$TARGETARCH\nCMD [\"/x\"]\n", BuildOptions{Platform: "linux/arm64/v8", Tags: []string{"arm:1"}})
	ins, err := f.b.Inspect(context.Background(), []string{"arm:1"})
	if err != nil {
		t.Fatal(err)
	}
	if ins[0].Architecture != "arm64" || ins[0].Variant != "v8" || ins[0].Config.Labels["arch"] != "arm64" {
		t.Errorf("architecture %s/%s, label %q", ins[0].Architecture, ins[0].Variant, ins[0].Config.Labels["arch"])
	}
	host := f.mustBuild(t, "FROM scratch\nARG TARGETARCH\nLABEL arch=$TARGETARCH\nCMD [\"/x\"]\n", BuildOptions{})
	if host.ID == res.ID || host.Cached != 0 {
		t.Errorf("the host build reused the arm64 one: %d cached", host.Cached)
	}
	if _, err := f.build(t, "FROM scratch\n", BuildOptions{Platform: "linux"}); err == nil {
		t.Error("an invalid platform was accepted")
	}
}

// TestFakeIsolationOptions: the build's seccomp profile and limits reach
// every RUN, and a step run without the default profile is not a cache hit
// for one run with it.
func TestFakeIsolationOptions(t *testing.T) {
	f := newFakeBuild(t, nil)
	df := "FROM scratch\nRUN echo hi > /hi\n"
	f.mustBuild(t, df, BuildOptions{})
	iso := Isolation{Memory: 64 << 20, CPUs: 0.5, PidsLimit: 100}
	if err := iso.ParseSecurityOpt("seccomp=unconfined"); err != nil {
		t.Fatal(err)
	}
	res := f.mustBuild(t, df, BuildOptions{Isolation: iso})
	if res.Cached != 0 {
		t.Errorf("an unconfined RUN reused the confined one's cache entry")
	}
	runs := f.exec.Runs()
	last := runs[len(runs)-1]
	if last.Seccomp != "unconfined" || last.Resources.Memory != 64<<20 || last.Resources.CPUs != 0.5 || last.Resources.PidsLimit != 100 {
		t.Errorf("spec: seccomp %q, resources %+v", last.Seccomp, last.Resources)
	}
	if runs[0].Seccomp != "" {
		t.Errorf("default build ran with seccomp %q", runs[0].Seccomp)
	}
	for _, bad := range []string{"apparmor=unconfined", "seccomp", "label=disable"} {
		if err := (&Isolation{}).ParseSecurityOpt(bad); err == nil {
			t.Errorf("--security-opt %s accepted", bad)
		}
	}
	if _, err := f.build(t, df, BuildOptions{Isolation: Isolation{Memory: -1}}); err == nil {
		t.Error("a negative memory limit was accepted")
	}
}
