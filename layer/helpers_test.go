package layer

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"sort"
	"strings"
	"testing"
	"time"
)

// tarEntry describes one entry of a tar built in code.
type tarEntry struct {
	name     string
	typ      byte // tar type flag; 0 means regular file
	body     string
	link     string
	mode     int64
	uid, gid int
	major    int64
	minor    int64
	xattrs   map[string]string
	mtime    time.Time
}

func file(name, body string) tarEntry   { return tarEntry{name: name, body: body} }
func dir(name string) tarEntry          { return tarEntry{name: name, typ: tar.TypeDir} }
func symlink(name, to string) tarEntry  { return tarEntry{name: name, typ: tar.TypeSymlink, link: to} }
func hardlink(name, to string) tarEntry { return tarEntry{name: name, typ: tar.TypeLink, link: to} }

// buildTar returns a tar of entries in the given order.
func buildTar(t testing.TB, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode,
			Uid: e.uid, Gid: e.gid, Devmajor: e.major, Devminor: e.minor, ModTime: e.mtime}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if h.ModTime.Nanosecond() != 0 {
			h.Format = tar.FormatPAX
		}
		if h.ModTime.IsZero() {
			h.ModTime = time.Unix(1700000000, 0)
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		for k, v := range e.xattrs {
			if h.PAXRecords == nil {
				h.PAXRecords = map[string]string{}
			}
			h.PAXRecords["SCHILY.xattr."+k] = v
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("writing header %s: %v", e.name, err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// listTar returns "name type [link]" lines of a tar in order.
func listTar(t testing.TB, data []byte) []string {
	t.Helper()
	var out []string
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading tar after %d entries: %v", len(out), err)
		}
		s := h.Name + " " + string(rune(h.Typeflag))
		if h.Typeflag == tar.TypeLink || h.Typeflag == tar.TypeSymlink {
			s += " " + h.Linkname
		}
		out = append(out, s)
	}
	return out
}

func diffMaps(want, got map[string]string) string {
	var b strings.Builder
	keys := map[string]bool{}
	for k := range want {
		keys[k] = true
	}
	for k := range got {
		keys[k] = true
	}
	var sorted []string
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		w, wok := want[k]
		g, gok := got[k]
		switch {
		case !wok:
			fmt.Fprintf(&b, "  unexpected %s: %s\n", k, g)
		case !gok:
			fmt.Fprintf(&b, "  missing %s: %s\n", k, w)
		case w != g:
			fmt.Fprintf(&b, "  %s:\n    want %s\n    got  %s\n", k, w, g)
		}
	}
	return b.String()
}
