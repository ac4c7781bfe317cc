package builder

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/builder-project/builder/layer"
	"github.com/klauspost/compress/gzip"
)

// TestImportRefusesUnsafeEntries imports tarballs holding an entry that
// layer.Apply would refuse: the import fails naming the entry, and neither
// a blob nor an image is stored.
func TestImportRefusesUnsafeEntries(t *testing.T) {
	file := func(name string) *tar.Header { return &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644} }
	link := func(name, to string) *tar.Header {
		return &tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: to, Mode: 0o644}
	}
	for _, tc := range []struct {
		name, entry string
		hdrs        []*tar.Header
		gzip        bool
	}{
		{"dotdot name", "../../etc/cron.d/x", []*tar.Header{file("ok"), file("../../etc/cron.d/x")}, false},
		{"dotdot name, gzip", "a/../../x", []*tar.Header{file("a/../../x")}, true},
		{"hardlink out of the root", "h", []*tar.Header{link("h", "../etc/shadow")}, false},
		{"hardlink to a host path", "h", []*tar.Header{link("h", "/etc/shadow")}, false},
		{"whiteout that escapes", "../.wh.x", []*tar.Header{file("../.wh.x")}, false},
		{"whiteout prefix in a directory", ".wh.d/f", []*tar.Header{file(".wh.d/f")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			var zw *gzip.Writer
			tw := tar.NewWriter(&buf)
			if tc.gzip {
				zw = gzip.NewWriter(&buf)
				tw = tar.NewWriter(zw)
			}
			for _, h := range tc.hdrs {
				if err := tw.WriteHeader(h); err != nil {
					t.Fatal(err)
				}
			}
			tw.Close()
			if zw != nil {
				zw.Close()
			}
			b := newTestBuilder(t)
			_, err := b.Import(context.Background(), &buf, ImportOptions{Ref: "evil:1"})
			if !errors.Is(err, layer.ErrInvalidEntry) || !strings.Contains(err.Error(), `entry "`+tc.entry+`"`) {
				t.Fatalf("Import = %v, want an error naming entry %q", err, tc.entry)
			}
			if blobs, err := b.st.Blobs(); err != nil || len(blobs) != 0 {
				t.Errorf("a failed import stored %d blobs (%v)", len(blobs), err)
			}
			if imgs, err := b.Images(context.Background(), ImagesOptions{}); err != nil || len(imgs) != 0 {
				t.Errorf("a failed import recorded %d images (%v)", len(imgs), err)
			}
		})
	}
}
