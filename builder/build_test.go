package builder

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/builder-project/builder/dockerfile"
	"github.com/builder-project/builder/internal/testutil"
)

// buildFixture is a store with a busybox base image and a context dir.
type buildFixture struct {
	b   *Builder
	ctx string
	mu  sync.Mutex
	evs []Event
}

func newBuildFixture(t *testing.T, files map[string]string) *buildFixture {
	t.Helper()
	testutil.RequirePrivileges(t, "root", "overlay")
	f := &buildFixture{b: newTestBuilder(t), ctx: t.TempDir()}
	importBusybox(t, f.b, "busybox:latest")
	f.write(t, files)
	return f
}

func (f *buildFixture) write(t *testing.T, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(f.ctx, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func (f *buildFixture) build(t *testing.T, opts BuildOptions) (*BuildResult, error) {
	t.Helper()
	opts.ContextDir = f.ctx
	opts.Progress = func(ev Event) {
		f.mu.Lock()
		f.evs = append(f.evs, ev)
		f.mu.Unlock()
	}
	return f.b.Build(context.Background(), opts)
}

func (f *buildFixture) mustBuild(t *testing.T, opts BuildOptions) *BuildResult {
	t.Helper()
	res, err := f.build(t, opts)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	return res
}

// rootfs exports the image's flattened rootfs into a directory.
func (f *buildFixture) rootfs(t *testing.T, ref string) string {
	t.Helper()
	dir := t.TempDir()
	if err := f.b.ExportDir(context.Background(), dir, ref); err != nil {
		t.Fatal(err)
	}
	return dir
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const instructionsDockerfile = `FROM busybox:latest
ARG WHO=world
ENV GREETING=hello PATH=/opt/bin:$PATH
LABEL maintainer.team=core version=1
WORKDIR /app
COPY a.txt b.txt ./
COPY dir/ /copied/
COPY --chown=app:app --chmod=0640 a.txt /owned.txt
COPY <<EOF /heredoc.txt
greeting=${GREETING}
EOF
RUN echo "$GREETING $WHO" > out.txt && mkdir -p /gone /keep && touch /gone/x /keep/y
RUN rm -rf /gone /etc/hostname && echo new > /keep/z
RUN rm -rf /keep && mkdir /keep && echo fresh > /keep/only
USER app
RUN id -u > /tmp/uid
EXPOSE 8080/tcp
VOLUME ["/data"]
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s --retries=2 CMD true
SHELL ["/bin/sh", "-ec"]
ONBUILD RUN echo triggered
ENTRYPOINT ["/bin/echo"]
CMD ["hi"]
`

func TestBuildInstructions(t *testing.T) {
	f := newBuildFixture(t, map[string]string{
		"Dockerfile": instructionsDockerfile,
		"a.txt":      "A", "b.txt": "B", "dir/sub/c.txt": "C",
	})
	res := f.mustBuild(t, BuildOptions{Tags: []string{"app:1"}, BuildArgs: map[string]string{"WHO": "builder"}})
	root := f.rootfs(t, "app:1")
	for p, want := range map[string]string{
		"app/a.txt": "A", "app/b.txt": "B", "copied/sub/c.txt": "C", "owned.txt": "A",
		"heredoc.txt": "greeting=hello\n", "app/out.txt": "hello builder\n", "keep/only": "fresh\n", "tmp/uid": "1000\n",
	} {
		if got := readFile(t, filepath.Join(root, p)); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
	for _, gone := range []string{"gone", "etc/hostname", "keep/y", "keep/z"} {
		if _, err := os.Lstat(filepath.Join(root, gone)); !os.IsNotExist(err) {
			t.Errorf("%s should be gone: %v", gone, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(root, "owned.txt")); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("owned.txt mode: %v %v", fi, err)
	}
	insp, err := f.b.Inspect(context.Background(), []string{res.ID.String()})
	if err != nil {
		t.Fatal(err)
	}
	c := insp[0].Config
	env := strings.Join(c.Env, ",")
	checks := map[string]bool{
		"env":         strings.Contains(env, "GREETING=hello") && strings.Contains(env, "PATH=/opt/bin:"),
		"no arg env":  !strings.Contains(env, "WHO="),
		"labels":      c.Labels["maintainer.team"] == "core" && c.Labels["version"] == "1",
		"workdir":     c.WorkingDir == "/app",
		"user":        c.User == "app",
		"expose":      len(c.ExposedPorts) == 1,
		"volume":      len(c.Volumes) == 1,
		"stopsignal":  c.StopSignal == "SIGINT",
		"healthcheck": c.Healthcheck != nil && c.Healthcheck.Retries == 2 && c.Healthcheck.Interval == 5*time.Second,
		"shell":       strings.Join(c.Shell, " ") == "/bin/sh -ec",
		"onbuild":     len(c.OnBuild) == 1,
		"entrypoint":  strings.Join(c.Entrypoint, " ") == "/bin/echo",
		"cmd":         strings.Join(c.Cmd, " ") == "hi",
	}
	for name, ok := range checks {
		if !ok {
			t.Errorf("config check %s failed: %+v", name, c)
		}
	}
	hist, _ := f.b.History(context.Background(), "app:1")
	var runs, empty int
	for _, h := range hist {
		if strings.HasPrefix(h.CreatedBy, "RUN ") {
			runs++
		}
		if h.EmptyLayer {
			empty++
		}
	}
	if runs != 4 || empty == 0 {
		t.Errorf("history: %d RUN entries, %d empty: %+v", runs, empty, hist)
	}
	if !strings.HasPrefix(hist[0].CreatedBy, "CMD") {
		t.Errorf("newest history entry = %q, want the CMD", hist[0].CreatedBy)
	}
	// The RUN that recreated /keep must produce an opaque directory.
	if !layerHasEntry(t, f.b, res.ID.String(), "keep/.wh..wh..opq") {
		t.Error("recreated /keep is not marked opaque in its layer")
	}
	if !layerHasEntry(t, f.b, res.ID.String(), ".wh.gone") {
		t.Error("removed /gone has no whiteout")
	}

	// A child image runs the ONBUILD trigger right after FROM.
	f.write(t, map[string]string{"child/Dockerfile": "FROM app:1\nRUN test -f /app/out.txt\n"})
	child := f.mustBuild(t, BuildOptions{Dockerfile: filepath.Join(f.ctx, "child/Dockerfile"), Tags: []string{"child"}})
	ch, _ := f.b.History(context.Background(), child.ID.String())
	if !strings.Contains(ch[1].CreatedBy, "echo triggered") {
		t.Errorf("ONBUILD trigger did not run first: %+v", ch[:2])
	}
	ci, _ := f.b.Inspect(context.Background(), []string{"child"})
	if len(ci[0].Config.OnBuild) != 0 {
		t.Errorf("child inherited ONBUILD: %v", ci[0].Config.OnBuild)
	}
}

// layerHasEntry reports whether some layer of the image has the tar entry name.
func layerHasEntry(t *testing.T, b *Builder, ref, name string) bool {
	t.Helper()
	img, err := b.resolve(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range img.manifest.Layers {
		for _, n := range layerEntries(t, b, l.Digest) {
			if strings.TrimPrefix(n, "./") == name {
				return true
			}
		}
	}
	return false
}

func TestBuildMultiStageParallel(t *testing.T) {
	testutil.SkipIfShort(t, "sleeps 2 s in real containers; TestFakeStagesRunInParallel covers scheduling")
	f := newBuildFixture(t, map[string]string{
		"Dockerfile": `FROM busybox:latest AS a
RUN date +%s.%N > /start && sleep 2 && date +%s.%N > /end
FROM busybox:latest AS b
RUN date +%s.%N > /start && sleep 2 && date +%s.%N > /end
FROM busybox:latest AS unused
RUN exit 7
FROM scratch
COPY --from=a /start /a.start
COPY --from=a /end /a.end
COPY --from=1 /start /b.start
COPY --from=b /end /b.end
`,
	})
	f.mustBuild(t, BuildOptions{Tags: []string{"multi"}, Jobs: 2})
	root := f.rootfs(t, "multi")
	num := func(n string) float64 {
		var v float64
		s := strings.TrimSpace(readFile(t, filepath.Join(root, n)))
		if _, err := fmt.Sscan(s, &v); err != nil {
			t.Fatalf("%s: %q: %v", n, s, err)
		}
		return v
	}
	// The two stages overlap in time: each started before the other ended.
	if !(num("a.start") < num("b.end") && num("b.start") < num("a.end")) {
		t.Fatalf("stages did not overlap: a=[%v,%v] b=[%v,%v]", num("a.start"), num("a.end"), num("b.start"), num("b.end"))
	}
}

func TestBuildErrors(t *testing.T) {
	f := newBuildFixture(t, map[string]string{"ok.txt": "x"})
	for _, tc := range []struct {
		name, dockerfile string
		line             int
		want             string
	}{
		{"unknown instruction", "FROM busybox\nRUNN true\n", 2, "unknown instruction"},
		{"failing run", "FROM busybox\nRUN true\nRUN echo boom-output; exit 3\n", 3, "exit code: 3"},
		{"missing copy source", "FROM busybox\nCOPY nothere.txt /\n", 2, "nothere.txt"},
		{"missing base", "FROM nosuchimage:1\n", 1, "nosuchimage"},
		{"unknown flag", "FROM busybox\nCOPY --bogus=1 ok.txt /\n", 2, "bogus"},
		{"cycle", "FROM busybox AS a\nCOPY --from=b / /\nFROM busybox AS b\nCOPY --from=a / /\n", 0, "circular"},
		{"bad target", "FROM busybox\n", 0, "target"},
		{"add url", "FROM busybox\nADD http://example.invalid/x /x\n", 2, "network"},
		{"foreign platform", "FROM --platform=linux/s390x busybox\n", 1, "s390x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := storeState(t, f.b)
			opts := BuildOptions{DockerfileData: []byte(tc.dockerfile), Pull: PullNever}
			if tc.name == "bad target" {
				opts.Target = "nope"
			}
			_, err := f.build(t, opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
			var de *dockerfile.Error
			if tc.line > 0 && (!errors.As(err, &de) || de.StartLine != tc.line) {
				t.Fatalf("err = %v (%T), want a Dockerfile error on line %d", err, err, tc.line)
			}
			if tc.name == "failing run" && !strings.Contains(err.Error(), "boom-output") {
				t.Fatalf("err lacks the output tail: %v", err)
			}
			if after := storeState(t, f.b); after != before {
				t.Fatalf("store changed by a failed build:\nbefore %s\nafter  %s", before, after)
			}
			assertNoLeftovers(t, f.b)
		})
	}
}

// storeState summarizes images and tags.
func storeState(t *testing.T, b *Builder) string {
	idx, err := b.st.View()
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	for tag, id := range idx.Tags() {
		parts = append(parts, tag+"="+id.String())
	}
	for _, img := range idx.Images() {
		parts = append(parts, img.ID.String())
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// assertNoLeftovers checks that no active snapshot, temp dir or mount remains.
func assertNoLeftovers(t *testing.T, b *Builder) {
	t.Helper()
	for _, sub := range []string{"active", "tmp", "ingest"} {
		entries, err := os.ReadDir(filepath.Join(b.Root(), sub))
		if err != nil {
			t.Fatalf("checking for leftovers: %v", err)
		}
		if len(entries) != 0 {
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			t.Errorf("%s/ not empty after build: %v", sub, names)
		}
	}
	// Only mounts at or below the test's own store matter.
	testutil.NoMountsBelow(t, b.Root())
}
