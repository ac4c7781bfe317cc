package layer

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestDiffDeterministic builds the same tree twice, creating its entries in
// opposite orders, at different times, with different access times, and
// requires Diff to write the same bytes for both: entries sorted, ids
// numeric without names, no atime or ctime, and no PAX record but the
// xattrs'.
func TestDiffDeterministic(t *testing.T) {
	files := []string{"b/z", "b/a", "a", "c/d/e", "hl"}
	mtime := time.Unix(1_650_000_000, 0)
	build := func(order []string, atime time.Time) string {
		dir := t.TempDir()
		for _, f := range order {
			writeFile(t, filepath.Join(dir, f), "content of "+f)
		}
		must(t, os.Link(filepath.Join(dir, "hl"), filepath.Join(dir, "b/hl2")))
		must(t, os.Symlink("a", filepath.Join(dir, "ln")))
		setXattrOrSkip(t, filepath.Join(dir, "a"), "user.one", "1")
		setXattrOrSkip(t, filepath.Join(dir, "a"), "user.two", "2")
		err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
			if err != nil || p == dir {
				return err
			}
			ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
			return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
		})
		must(t, err)
		return dir
	}
	reversed := make([]string, len(files))
	for i, f := range files {
		reversed[len(files)-1-i] = f
	}
	one := diffTar(t, build(files, time.Unix(1_700_000_000, 1)), DiffOptions{})
	time.Sleep(10 * time.Millisecond) // other ctimes
	two := diffTar(t, build(reversed, time.Unix(1_710_000_000, 2)), DiffOptions{})
	if !bytes.Equal(one, two) {
		t.Fatalf("two diffs of the same tree differ:\n%q\n%q", listTar(t, one), listTar(t, two))
	}

	tr := tar.NewReader(bytes.NewReader(one))
	var names []string
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		must(t, err)
		names = append(names, hdr.Name)
		if hdr.Uname != "" || hdr.Gname != "" {
			t.Errorf("%s: user/group names %q/%q, want none", hdr.Name, hdr.Uname, hdr.Gname)
		}
		if !hdr.AccessTime.IsZero() || !hdr.ChangeTime.IsZero() {
			t.Errorf("%s: atime %v, ctime %v, want none", hdr.Name, hdr.AccessTime, hdr.ChangeTime)
		}
		if !hdr.ModTime.Equal(mtime) {
			t.Errorf("%s: mtime %v, want %v", hdr.Name, hdr.ModTime, mtime)
		}
		for k := range hdr.PAXRecords {
			if !strings.HasPrefix(k, paxXattr) {
				t.Errorf("%s: PAX record %s, want xattrs only", hdr.Name, k)
			}
		}
	}
	want := "a|b/|b/a|b/hl2|b/z|c/|c/d/|c/d/e|hl|ln"
	if got := strings.Join(names, "|"); got != want {
		t.Errorf("entries %s, want %s", got, want)
	}
}
