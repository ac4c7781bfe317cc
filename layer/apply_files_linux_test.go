package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/builder-project/builder/internal/testutil"
)

// TestApplyManyFiles unpacks more small files than the file writers
// buffer, between large files that Apply writes itself, with hardlinks to
// and replacements of files a writer may still hold, and checks every
// file's content, mode and times.
func TestApplyManyFiles(t *testing.T) {
	mt := time.Unix(1500000000, 42)
	big := strings.Repeat("0123456789abcdef", (smallFileMax+4096)/16)
	var entries []tarEntry
	want := map[string]string{"d": "d"}
	for i := range 3 * fileBuffers {
		name := fmt.Sprintf("d/f%03d", i)
		body := strings.Repeat(string(rune('a'+i%26)), i*97)
		entries = append(entries, tarEntry{name: name, body: body, mode: 0o640 + int64(i%2)*0o100, mtime: mt})
		want[name] = "f:" + body
		if i%10 == 5 {
			name := fmt.Sprintf("d/big%03d", i)
			entries = append(entries, tarEntry{name: name, body: big, mode: 0o600, mtime: mt})
			want[name] = "f:" + big
		}
	}
	// A hardlink to a file just queued, then the first file replaced.
	entries = append(entries,
		tarEntry{name: "d/link", typ: tar.TypeLink, link: "d/f047"},
		tarEntry{name: "d/f000", body: "replaced", mode: 0o644, mtime: mt},
	)
	want["d/link"] = want["d/f047"]
	want["d/f000"] = "f:replaced"

	root := t.TempDir()
	data := buildTar(t, entries...)
	n, err := Apply(context.Background(), root, bytes.NewReader(data), applyOpts(DirFormat))
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len(data)) {
		t.Errorf("Apply read %d bytes, want %d", n, len(data))
	}
	if d := diffMaps(want, compact(t, root)); d != "" {
		t.Fatalf("tree mismatch:\n%s", d)
	}
	for _, e := range entries {
		if e.typ != 0 || e.name == "d/f000" && e.body != "replaced" {
			continue
		}
		var st unix.Stat_t
		must(t, unix.Lstat(filepath.Join(root, e.name), &st))
		if st.Mode&0o7777 != uint32(e.mode) || st.Mtim.Sec != mt.Unix() || st.Mtim.Nsec != 42 {
			t.Errorf("%s: mode %o mtime %d.%09d, want %o %d.%09d", e.name, st.Mode&0o7777, st.Mtim.Sec, st.Mtim.Nsec, e.mode, mt.Unix(), 42)
		}
	}
	var st unix.Stat_t
	must(t, unix.Lstat(filepath.Join(root, "d/link"), &st))
	if st.Nlink != 2 {
		t.Errorf("d/link has %d links, want 2 (d/f047 and itself)", st.Nlink)
	}
}

// TestApplyFileWriterError checks that a file writer's failure (an xattr
// the filesystem refuses) fails Apply with the entry's name, and that the
// files Apply created are all closed.
func TestApplyFileWriterError(t *testing.T) {
	testutil.RequirePrivileges(t, "root")
	var entries []tarEntry
	for i := range 2 * fileBuffers {
		entries = append(entries, file(fmt.Sprintf("f%d", i), "x"))
	}
	entries[7].xattrs = map[string]string{"bogus.namespace": "v"}
	fds := openFDs(t)
	_, err := Apply(context.Background(), t.TempDir(), bytes.NewReader(buildTar(t, entries...)), ApplyOptions{})
	if err == nil || !strings.Contains(err.Error(), `entry "f7"`) || !strings.Contains(err.Error(), "bogus.namespace") {
		t.Fatalf("Apply = %v, want an error naming entry f7 and its xattr", err)
	}
	if after := openFDs(t); after != fds {
		t.Errorf("%d file descriptors open after Apply, %d before", after, fds)
	}
}

// openFDs counts the open file descriptors of this process.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
