package imagediff

import (
	"archive/tar"
	"bytes"
	"slices"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
)

type file struct {
	name, body string
	mtime      int64
	pax        map[string]string
}

func layerOf(t *testing.T, files ...file) Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body)), Typeflag: tar.TypeReg, ModTime: time.Unix(f.mtime, 0), PAXRecords: f.pax}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(f.body))
	}
	tw.Close()
	entries, err := ReadLayer(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	return Layer{Digest: digest.FromBytes(buf.Bytes()), Entries: entries}
}

// TestCompare checks that every kind of difference is named with its
// layer, path and attribute, and that equal images compare equal.
func TestCompare(t *testing.T) {
	base := []file{{"a", "A", 100, nil}, {"b", "B", 100, map[string]string{"SCHILY.xattr.user.k": "v"}}}
	a := &Image{Config: []byte(`{"created":"2020-01-01T00:00:00Z","history":[{"created_by":"x"},{"created_by":"y","created":"1"}]}`),
		Layers: []Layer{layerOf(t, base...), layerOf(t, base...)}}
	if d := Compare(a, a); d != nil {
		t.Fatalf("an image differs from itself: %q", d)
	}
	b := &Image{Config: []byte(`{"created":"2021-01-01T00:00:00Z","history":[{"created_by":"x"},{"created_by":"y","created":"2"}]}`),
		Layers: []Layer{layerOf(t, base...), layerOf(t,
			file{"a", "A2", 200, nil}, file{"b", "B", 100, map[string]string{"SCHILY.xattr.user.k": "w"}}, file{"c", "", 100, nil})}}
	got := Compare(a, b)
	l := "layer 1 (" + a.Layers[1].Digest.Encoded()[:12] + " != " + b.Layers[1].Digest.Encoded()[:12] + "): "
	want := []string{
		`config: created: "2020-01-01T00:00:00Z" != "2021-01-01T00:00:00Z"`,
		`config: history[1]: {"created_by":"y","created":"1"} != {"created_by":"y","created":"2"}`,
		l + "a: size 1 != 2",
		l + "a: mtime 1970-01-01T00:01:40Z != 1970-01-01T00:03:20Z",
		l + "a: sha256 559aead08264d5795d3909718cdd05abd49572e84fe55590eef31a88a08fdffd != " + digest.FromString("A2").Encoded(),
		l + `b: pax:SCHILY.xattr.user.k "v" != "w"`,
		l + "only in the second: c type=reg mode=0644 uid=0 gid=0 size=0 mtime=1970-01-01T00:01:40Z sha256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Compare:\n%s\nwant\n%s", join(got), join(want))
	}

	// The same entries in another order.
	c := &Image{Config: a.Config, Layers: []Layer{a.Layers[0], layerOf(t, base[1], base[0])}}
	if got := Compare(a, c); len(got) != 1 || !bytes.Contains([]byte(got[0]), []byte(`entry order: ["a" "b"] != ["b" "a"]`)) {
		t.Errorf("Compare of reordered entries: %q", got)
	}
}

func join(lines []string) string {
	var b bytes.Buffer
	for _, l := range lines {
		b.WriteString("  " + l + "\n")
	}
	return b.String()
}
