package layer

import (
	"bytes"
	"context"
	"errors"
	"github.com/builder-project/builder/internal/testutil"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// jail is a temporary directory holding the apply root next to a sentinel
// file and an empty directory that malicious layers aim at. Malicious
// layers aim only at these, never at the host's own files, so a check of
// the jail sees every escape a case attempts.
type jail struct {
	base, root, sentinel, outside string
}

func newJail(t testing.TB) *jail {
	t.Helper()
	base := t.TempDir()
	j := &jail{
		base:     base,
		root:     filepath.Join(base, "root"),
		sentinel: filepath.Join(base, "sentinel"),
		outside:  filepath.Join(base, "outside"),
	}
	j.reset(t)
	return j
}

// reset empties the jail and puts back the root, outside and sentinel.
func (j *jail) reset(t testing.TB) {
	t.Helper()
	names, err := readDirNames(j.base)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if err := os.RemoveAll(filepath.Join(j.base, n)); err != nil {
			t.Fatal(err)
		}
	}
	mkdirs(t, j.base, "root", "outside")
	writeFile(t, j.sentinel, "sentinel")
}

// check asserts that nothing outside the root changed.
func (j *jail) check(t testing.TB) {
	t.Helper()
	names, err := readDirNames(j.base)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	if strings.Join(names, ",") != "outside,root,sentinel" {
		t.Errorf("entries next to the root: %v", names)
	}
	var st = mustLstat(t, j.sentinel)
	if !st.Mode().IsRegular() {
		t.Errorf("sentinel is no longer a regular file: %v", st.Mode())
	}
	if b, err := os.ReadFile(j.sentinel); err != nil || string(b) != "sentinel" {
		t.Errorf("sentinel changed: %q, %v", b, err)
	}
	if st.Mode().Perm() != 0o644 {
		t.Errorf("sentinel mode changed: %v", st.Mode())
	}
	if out, err := readDirNames(j.outside); err != nil || len(out) != 0 {
		t.Errorf("files appeared outside the root: %v (%v)", out, err)
	}
}

func mustLstat(t testing.TB, p string) os.FileInfo {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi
}

// outcome is what a breakout case expects of Apply. Either means that
// failing (a dangling symlink cannot serve as a parent) and succeeding
// inside the root are both safe.
type outcome int

const (
	mustSucceed outcome = iota
	mustFail
	either
)

// breakoutCases are malicious layers; outside and sentinel stand for the
// absolute paths of the jail's directory and file.
func breakoutCases(outside, sentinel string) []struct {
	name    string
	entries []tarEntry
	want    outcome
} {
	rel := "../" // from the root to the jail base
	return []struct {
		name    string
		entries []tarEntry
		want    outcome
	}{
		{"dotdot name", []tarEntry{file("../sentinel", "pwned")}, mustFail},
		{"dotdot inside name", []tarEntry{file("a/../../outside/x", "pwned")}, mustFail},
		{"absolute dotdot name", []tarEntry{file("/../sentinel", "pwned")}, mustFail},
		{"absolute symlink then write through it", []tarEntry{symlink("evil", outside), file("evil/pwned", "pwned")}, either},
		{"absolute symlink to file then overwrite", []tarEntry{symlink("s", sentinel), file("s", "pwned")}, mustSucceed},
		{"relative symlink escape then write", []tarEntry{symlink("evil", "../../../../../.."+outside), file("evil/pwned", "pwned")}, either},
		{"relative symlink to sentinel then overwrite", []tarEntry{symlink("s", rel+"sentinel"), file("s", "pwned")}, mustSucceed},
		{"symlink dir component", []tarEntry{symlink("d", rel+"outside"), dir("d/sub"), file("d/sub/pwned", "pwned")}, either},
		{"symlink chain", []tarEntry{symlink("a", "b"), symlink("b", rel+".."+outside), file("a/pwned", "x")}, either},
		{"hardlink to an absolute host file", []tarEntry{hardlink("h", sentinel), file("h", "pwned")}, mustFail},
		{"hardlink dotdot target", []tarEntry{hardlink("h", "../sentinel")}, mustFail},
		{"hardlink through symlinked dir", []tarEntry{symlink("s", outside+"/.."), hardlink("h", "s/sentinel")}, mustFail},
		{"hardlink to symlink then write", []tarEntry{symlink("s", sentinel), hardlink("h", "s"), file("h", "pwned")}, mustSucceed},
		{"whiteout dotdot", []tarEntry{file("../.wh.sentinel", "")}, mustFail},
		{"whiteout through symlink", []tarEntry{symlink("s", outside+"/.."), file("s/.wh.sentinel", "")}, either},
		{"whiteout of dotdot", []tarEntry{file(".wh..", "")}, mustFail},
		{"opaque through symlink", []tarEntry{symlink("s", outside+"/.."), file("s/.wh..wh..opq", "")}, either},
		{"whiteout prefix in dir", []tarEntry{file(".wh.x/y", "")}, mustFail},
		{"chmod through replaced dir", []tarEntry{dir("d"), symlink("d", outside+"/.."), file("x", "x")}, mustSucceed},
		{"device over symlink", []tarEntry{symlink("s", sentinel), {name: "s", typ: '6', mode: 0o777}}, mustSucceed},
	}
}

func TestApplyBreakout(t *testing.T) {
	for _, format := range []Format{DirFormat, OverlayFormat} {
		for _, tc := range breakoutCases("OUTSIDE", "SENTINEL") {
			t.Run(format.String()+"/"+tc.name, func(t *testing.T) {
				if format == OverlayFormat {
					testutil.RequirePrivileges(t, "root")
				}
				j := newJail(t)
				entries := make([]tarEntry, len(tc.entries))
				for i, e := range tc.entries {
					e.link = strings.ReplaceAll(e.link, "OUTSIDE", j.outside)
					e.link = strings.ReplaceAll(e.link, "SENTINEL", j.sentinel)
					entries[i] = e
				}
				_, err := Apply(context.Background(), j.root, bytes.NewReader(buildTar(t, entries...)), applyOpts(format))
				if tc.want == mustFail && err == nil {
					t.Errorf("Apply succeeded, want an error")
				}
				if tc.want == mustSucceed && err != nil {
					t.Errorf("Apply: %v", err)
				}
				if err != nil && strings.Contains(tc.name, "dotdot") && !errors.Is(err, ErrInvalidEntry) {
					t.Errorf("error %v does not wrap ErrInvalidEntry", err)
				}
				j.check(t)
			})
		}
	}
}

// FuzzApply applies arbitrary layers in a jail and checks that nothing
// outside the root changed. The seeds aim at this process's jail, so one
// jail serves every input and is reset before each. (Under -fuzz a worker
// may get seeds naming the coordinator's jail, another temporary
// directory.)
func FuzzApply(f *testing.F) {
	j := newJail(f)
	for _, tc := range breakoutCases(j.outside, j.sentinel) {
		f.Add(buildTar(f, tc.entries...), false)
		f.Add(buildTar(f, tc.entries...), true)
	}
	f.Add(buildTar(f, dir("d"), file("d/a", "a"), hardlink("d/b", "d/a"), file("d/.wh..wh..opq", ""), file(".wh.x", "")), false)
	f.Fuzz(func(t *testing.T, data []byte, overlay bool) {
		j.reset(t)
		format := DirFormat
		if overlay && os.Geteuid() == 0 {
			format = OverlayFormat
		}
		_, _ = Apply(context.Background(), j.root, bytes.NewReader(data), applyOpts(format))
		j.check(t)
	})
}
