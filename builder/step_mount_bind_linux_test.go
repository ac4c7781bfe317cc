package builder

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/builder-project/builder/dockerfile"
	"github.com/builder-project/builder/executor"
	"github.com/builder-project/builder/executor/executortest"
	"github.com/builder-project/builder/internal/testutil"
	"golang.org/x/sys/unix"
)

// listTree returns "path kind uid" for everything below dir, sorted.
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		kind := map[uint32]string{unix.S_IFDIR: "dir", unix.S_IFREG: "file", unix.S_IFIFO: "fifo", unix.S_IFLNK: "link"}[st.Mode&unix.S_IFMT]
		out = append(out, rel+" "+kind+" "+strconv.Itoa(int(st.Uid)))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// TestBindContextHonoursDockerignore binds the context into RUN steps:
// what .dockerignore excludes is not there (re-included paths are), files
// are owned by root as BuildKit transfers them, a fifo is recreated, not
// opened, and an ignored source is not found. Writes through a rw bind
// never reach the context.
func TestBindContextHonoursDockerignore(t *testing.T) {
	testutil.RequirePrivileges(t, "root") // the copy chowns to root, as COPY does
	var mu sync.Mutex
	seen := map[string][]string{}
	f := newFakeBuild(t, func(ctx context.Context, s executor.Spec, root string, stdio executor.IO) error {
		for _, m := range s.Mounts {
			if m.Type == "bind" {
				mu.Lock()
				seen[m.Destination] = listTree(t, m.Source)
				mu.Unlock()
			}
		}
		return executortest.Script(ctx, s, root, stdio)
	})
	(&buildFixture{ctx: f.ctx}).write(t, map[string]string{
		".dockerignore":  "secret.txt\n**/*.key\nlogs\n!logs/keep.log\n",
		"keep.txt":       "keep",
		"secret.txt":     "secret",
		"sub/keep":       "keep",
		"sub/secret.key": "secret",
		"logs/a.log":     "secret",
		"logs/keep.log":  "keep",
	})
	if err := os.Chown(filepath.Join(f.ctx, "keep.txt"), 1234, 1234); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(f.ctx, "sub", "pipe"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.mustBuild(t, `FROM scratch
RUN --mount=type=bind,target=/ctx cat /ctx/keep.txt > /whole
RUN --mount=type=bind,source=sub,target=/sub,rw echo scribble > /sub/secret.key
`, BuildOptions{})
	want := map[string][]string{
		"/ctx": {".dockerignore file 0", "Dockerfile file 0", "keep.txt file 0", "logs dir 0", "logs/keep.log file 0",
			"sub dir 0", "sub/keep file 0", "sub/pipe fifo 0"},
		"/sub": {"keep file 0", "pipe fifo 0"},
	}
	if !reflect.DeepEqual(seen, want) {
		t.Errorf("bind mounts showed\n%v\nwant\n%v", seen, want)
	}
	if data, err := os.ReadFile(filepath.Join(f.ctx, "sub", "secret.key")); err != nil || string(data) != "secret" {
		t.Errorf("a rw bind mount changed the context: %q, %v", data, err)
	}

	for _, src := range []string{"secret.txt", "logs/a.log", "sub/secret.key"} {
		_, err := f.build(t, "FROM scratch\nRUN --mount=type=bind,source="+src+",target=/s cat /s\n", BuildOptions{})
		if !errors.Is(err, ErrSourceNotFound) || !strings.Contains(err.Error(), src) {
			t.Errorf("bind of ignored %s: %v, want ErrSourceNotFound naming it", src, err)
		}
	}
}

// TestBindContextKeyIgnoresIgnoredFiles checks that the key of a RUN with
// a bind from the context changes with the files it sees, and not with
// the files .dockerignore hides from it.
func TestBindContextKeyIgnoresIgnoredFiles(t *testing.T) {
	for _, mount := range []string{"type=bind,target=/ctx", "type=bind,source=sub,target=/ctx,rw"} {
		t.Run(mount, func(t *testing.T) {
			f := newPlanFixture(t, keyedBase+"RUN --mount="+mount+" echo hi\n", BuildOptions{})
			var err error
			if f.bd.ignore, err = dockerfile.NewIgnore([]string{"**/*.secret", "sub/cache"}); err != nil {
				t.Fatal(err)
			}
			ctxDir := &buildFixture{ctx: f.bd.opts.ContextDir} // writes into the plan's context
			key := func() string {
				t.Helper()
				k, err := f.key(t, nil)
				if err != nil {
					t.Fatal(err)
				}
				return k.String()
			}
			base := key()
			ctxDir.write(t, map[string]string{"sub/token.secret": "s3cr3t", "sub/cache/blob": "xxxx"})
			if k := key(); k != base {
				t.Errorf("adding ignored files changed the key")
			}
			ctxDir.write(t, map[string]string{"sub/token.secret": "another value", "sub/cache/blob": "yy"})
			if k := key(); k != base {
				t.Errorf("changing ignored files changed the key")
			}
			ctxDir.write(t, map[string]string{"sub/f": "changed"})
			if k := key(); k == base {
				t.Errorf("changing a file the mount shows kept the key")
			}
		})
	}
}

// TestBindSourceLiteral binds context paths holding wildcard characters:
// each names exactly itself.
func TestBindSourceLiteral(t *testing.T) {
	for _, name := range []string{"a*", "[id].txt", `back\slash?`} {
		if got := literalSource(name); got == name {
			t.Errorf("literalSource(%q) left wildcards in", name)
		}
	}
	f := newPlanFixture(t, keyedBase+"RUN --mount=type=bind,source=[id].txt,target=/s echo hi\n", BuildOptions{})
	ctxDir := &buildFixture{ctx: f.bd.opts.ContextDir}
	if _, err := f.key(t, nil); !errors.Is(err, ErrSourceNotFound) {
		t.Fatalf("bind of a missing [id].txt: %v, want ErrSourceNotFound", err)
	}
	ctxDir.write(t, map[string]string{"i.txt": "a pattern match, not the source"})
	if _, err := f.key(t, nil); !errors.Is(err, ErrSourceNotFound) {
		t.Fatalf("bind of [id].txt matched i.txt: %v", err)
	}
	ctxDir.write(t, map[string]string{"[id].txt": "x"})
	if _, err := f.key(t, nil); err != nil {
		t.Fatalf("bind of [id].txt: %v", err)
	}
}

// TestCopySourceSpecialFiles copies a stage's tree holding a fifo and
// device nodes for a bind mount: they are recreated, never opened (opening
// the fifo would block, the devices have no driver), and a single special
// file as the source is refused by name.
func TestCopySourceSpecialFiles(t *testing.T) {
	testutil.RequirePrivileges(t, "root") // mknod
	root := t.TempDir()
	d := filepath.Join(root, "d")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "f"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	nodes := map[string]struct {
		mode uint32
		dev  uint64
	}{
		"fifo": {unix.S_IFIFO | 0o644, 0},
		"chr":  {unix.S_IFCHR | 0o600, unix.Mkdev(240, 7)},
		"blk":  {unix.S_IFBLK | 0o600, unix.Mkdev(240, 9)},
	}
	for name, n := range nodes {
		if err := unix.Mknod(filepath.Join(d, name), n.mode, int(n.dev)); err != nil {
			t.Fatal(err)
		}
	}
	// A fifo opened for reading blocks until a writer comes: give each copy
	// a deadline, and unblock a stuck one at the end.
	copyWithin := func(source, target string) error {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- copySource(root, source, target) }()
		select {
		case err := <-done:
			return err
		case <-time.After(20 * time.Second):
			t.Cleanup(func() {
				if w, err := os.OpenFile(filepath.Join(d, "fifo"), os.O_WRONLY|unix.O_NONBLOCK, 0); err == nil {
					w.Close()
				}
			})
			t.Fatalf("copying %s blocked: a special file was opened", source)
			return nil
		}
	}

	target := filepath.Join(t.TempDir(), "src")
	if err := copyWithin("d", target); err != nil {
		t.Fatal(err)
	}
	for name, n := range nodes {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(target, name), &st); err != nil {
			t.Fatal(err)
		}
		if st.Mode != n.mode || st.Rdev != n.dev {
			t.Errorf("%s copied as mode %o rdev %d, want %o %d", name, st.Mode, st.Rdev, n.mode, n.dev)
		}
	}
	if data, err := os.ReadFile(filepath.Join(target, "f")); err != nil || string(data) != "data" {
		t.Errorf("f = %q, %v", data, err)
	}

	for name, kind := range map[string]string{"fifo": "fifo", "chr": "character device", "blk": "block device"} {
		err := copyWithin("d/"+name, filepath.Join(t.TempDir(), "src"))
		if err == nil || !strings.Contains(err.Error(), `"d/`+name+`"`) || !strings.Contains(err.Error(), kind) {
			t.Errorf("single %s as a bind source: %v, want a refusal naming it", name, err)
		}
	}
}
