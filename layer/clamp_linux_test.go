package layer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestClampTimes checks BuildKit's rewrite-timestamp rule on disk: an
// entry newer than the epoch gets the epoch, an older one keeps its time
// to the nanosecond, a symlink is clamped itself (not its target), and the
// root keeps its times. The tar Diff writes afterwards carries the same
// times without being given the epoch.
func TestClampTimes(t *testing.T) {
	dir := t.TempDir()
	epoch := time.Unix(1_600_000_000, 0)
	old := time.Unix(1_500_000_000, 123456789)
	newer := time.Unix(1_700_000_000, 5)
	writeFile(t, filepath.Join(dir, "d/new"), "n")
	writeFile(t, filepath.Join(dir, "d/old"), "o")
	writeFile(t, filepath.Join(dir, "target"), "t")
	must(t, os.Symlink("target", filepath.Join(dir, "link")))
	must(t, os.Mkdir(filepath.Join(dir, "olddir"), 0o755))
	must(t, unix.Mkfifo(filepath.Join(dir, "fifo"), 0o644))
	setMtime := func(p string, tm time.Time) {
		ts := []unix.Timespec{unix.NsecToTimespec(tm.UnixNano()), unix.NsecToTimespec(tm.UnixNano())}
		must(t, unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(dir, p), ts, unix.AT_SYMLINK_NOFOLLOW))
	}
	for _, p := range []string{"d/new", "d", "target", "link", "fifo"} {
		setMtime(p, newer)
	}
	setMtime("d/old", old)
	setMtime("olddir", old)
	setMtime(".", newer)
	// The atime of d/new is left as it was.
	var before unix.Stat_t
	must(t, unix.Lstat(filepath.Join(dir, "d/new"), &before))

	if err := ClampTimes(context.Background(), dir, epoch); err != nil {
		t.Fatal(err)
	}
	want := map[string]time.Time{
		"d": epoch, "d/new": epoch, "target": epoch, "link": epoch, "fifo": epoch,
		"d/old": old, "olddir": old, ".": newer,
	}
	for p, w := range want {
		var st unix.Stat_t
		must(t, unix.Lstat(filepath.Join(dir, p), &st))
		if got := time.Unix(st.Mtim.Unix()); !got.Equal(w) {
			t.Errorf("%s: mtime %s, want %s", p, got, w)
		}
	}
	var after unix.Stat_t
	must(t, unix.Lstat(filepath.Join(dir, "d/new"), &after))
	if after.Atim != before.Atim {
		t.Errorf("d/new: atime changed from %v to %v", before.Atim, after.Atim)
	}

	// A tar of the clamped tree is the tar Diff writes with the epoch.
	plain := diffTar(t, dir, DiffOptions{})
	clamped := diffTar(t, dir, DiffOptions{SourceDateEpoch: &epoch})
	if !bytes.Equal(plain, clamped) {
		t.Error("the tar of the clamped tree differs from the tar clamped by Diff")
	}
}

func TestClampTimesCancelled(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a"), "a")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := ClampTimes(ctx, dir, time.Unix(0, 0)); !errors.Is(err, context.Canceled) {
		t.Fatalf("ClampTimes = %v, want context.Canceled", err)
	}
}

// BenchmarkClampTimes measures ClampTimes over 20,000 files in 200
// directories, every one newer than the epoch, against Diff of the same
// tree (the pass that follows it in a build).
func BenchmarkClampTimes(b *testing.B) {
	dir := b.TempDir()
	for d := range 200 {
		for f := range 100 {
			p := filepath.Join(dir, fmt.Sprintf("d%03d/f%03d", d, f))
			if f == 0 {
				must(b, os.MkdirAll(filepath.Dir(p), 0o755))
			}
			must(b, os.WriteFile(p, []byte("x"), 0o644))
		}
	}
	b.Run("clamp", func(b *testing.B) {
		for i := range b.N {
			// Alternate epochs, so that every entry is rewritten each time.
			epoch := time.Unix(1_600_000_000-int64(i), 0)
			if err := ClampTimes(context.Background(), dir, epoch); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("diff", func(b *testing.B) {
		for range b.N {
			if err := Diff(context.Background(), dir, DiffOptions{}, io.Discard); err != nil {
				b.Fatal(err)
			}
		}
	})
}
