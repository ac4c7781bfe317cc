package compression

import (
	"bytes"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/builder-project/builder/internal/testutil"
)

var plain = []byte(strings.Repeat("layer data ", 1000))

func gzipped(t *testing.T) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write(plain)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func zstded(t *testing.T) []byte {
	zw, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer zw.Close()
	return zw.EncodeAll(plain, nil)
}

// external compresses plain with a program, which CI must have.
func external(tool string) func(t *testing.T) []byte {
	return func(t *testing.T) []byte {
		cmd := exec.Command(testutil.RequireTool(t, tool), "-c")
		cmd.Stdin = bytes.NewReader(plain)
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
}

func TestDetect(t *testing.T) {
	tests := []struct {
		name string
		head []byte
		want Kind
	}{
		{"gzip", []byte{0x1f, 0x8b, 8, 0, 0, 0}, Gzip},
		{"gzip magic only", []byte{0x1f, 0x8b}, Gzip},
		{"zstd", []byte{0x28, 0xb5, 0x2f, 0xfd, 0x24, 0x00}, Zstd},
		{"bzip2", []byte("BZh91AY"), Bzip2},
		{"xz", []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}, Xz},
		{"xz cut short", []byte{0xfd, '7', 'z', 'X', 'Z'}, None},
		{"gzip cut short", []byte{0x1f}, None},
		{"bzip2 cut short", []byte("BZ"), None},
		{"empty", nil, None},
		{"text", []byte("hello, world"), None},
		{"tar", append([]byte("etc/"), make([]byte, 508)...), None},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Detect(tc.head); got != tc.want {
				t.Errorf("Detect = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestMagicLen(t *testing.T) {
	longest := 0
	for _, m := range magics {
		longest = max(longest, len(m.magic))
		if got := Detect(m.magic); got != m.kind {
			t.Errorf("Detect(magic of %v) = %v", m.kind, got)
		}
	}
	if longest != MagicLen {
		t.Errorf("MagicLen = %d, longest magic number is %d bytes", MagicLen, longest)
	}
}

func TestKindString(t *testing.T) {
	want := map[Kind]string{None: "uncompressed", Gzip: "gzip", Zstd: "zstd", Bzip2: "bzip2", Xz: "xz", Kind(42): "Kind(42)"}
	for k, s := range want {
		if k.String() != s {
			t.Errorf("Kind(%d).String() = %q, want %q", int(k), k.String(), s)
		}
	}
}

// closeRecorder records whether Close was called on it.
type closeRecorder struct {
	io.Reader
	closed bool
}

func (c *closeRecorder) Close() error {
	c.closed = true
	return nil
}

func TestNewReader(t *testing.T) {
	tests := []struct {
		name string
		data func(t *testing.T) []byte
		want Kind
		out  []byte
	}{
		{"plain", func(*testing.T) []byte { return plain }, None, plain},
		{"empty", func(*testing.T) []byte { return nil }, None, []byte{}},
		{"short", func(*testing.T) []byte { return []byte{0x1f} }, None, []byte{0x1f}},
		{"gzip", gzipped, Gzip, plain},
		{"zstd", zstded, Zstd, plain},
		{"bzip2", external("bzip2"), Bzip2, plain},
		{"xz", external("xz"), Xz, plain},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := &closeRecorder{Reader: bytes.NewReader(tc.data(t))}
			rc, got, err := NewReader(src)
			if err != nil {
				t.Fatal(err)
			}
			out, err := io.ReadAll(rc)
			if err != nil {
				t.Fatal(err)
			}
			if err := rc.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if got != tc.want || !bytes.Equal(out, tc.out) {
				t.Errorf("NewReader = %v, %d bytes; want %v, %d bytes", got, len(out), tc.want, len(tc.out))
			}
			if src.closed {
				t.Errorf("Close closed the source")
			}
		})
	}
}

func TestNewReaderErrors(t *testing.T) {
	readErr := errors.New("disk on fire")
	t.Run("source error", func(t *testing.T) {
		_, k, err := NewReader(io.MultiReader(bytes.NewReader([]byte{0x1f}), iotest.ErrReader(readErr)))
		if !errors.Is(err, readErr) || k != None {
			t.Errorf("NewReader = %v, %v; want the read error", k, err)
		}
	})
	t.Run("bad gzip header", func(t *testing.T) {
		_, k, err := NewReader(bytes.NewReader([]byte{0x1f, 0x8b, 0, 0, 0, 0, 0, 0, 0, 0}))
		if err == nil || !strings.Contains(err.Error(), "opening gzip stream") || k != None {
			t.Errorf("NewReader = %v, %v; want a gzip error", k, err)
		}
	})
	t.Run("corrupt zstd", func(t *testing.T) {
		rc, _, err := NewReader(bytes.NewReader(append([]byte{0x28, 0xb5, 0x2f, 0xfd}, "garbage"...)))
		if err == nil {
			defer rc.Close()
			_, err = io.ReadAll(rc)
		}
		if err == nil {
			t.Errorf("reading a corrupt zstd stream succeeded")
		}
	})
	t.Run("corrupt xz", func(t *testing.T) {
		testutil.RequireTool(t, "xz")
		rc, _, err := NewReader(bytes.NewReader([]byte{0xfd, '7', 'z', 'X', 'Z', 0x00, 'g', 'a', 'r', 'b', 'a', 'g', 'e'}))
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		if _, err := io.ReadAll(rc); err == nil || !strings.Contains(err.Error(), "decoding xz stream") {
			t.Errorf("reading a corrupt xz stream: %v", err)
		}
	})
	t.Run("xz closed early", func(t *testing.T) {
		data := external("xz")(t)
		rc, _, err := NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rc.Read(make([]byte, 10)); err != nil {
			t.Fatal(err)
		}
		if err := rc.Close(); err != nil {
			t.Errorf("Close before the end: %v", err)
		}
	})
	t.Run("xz missing", func(t *testing.T) {
		data := external("xz")(t)
		t.Setenv("PATH", t.TempDir())
		_, k, err := NewReader(bytes.NewReader(data))
		if !errors.Is(err, ErrUnsupported) || k != None {
			t.Errorf("NewReader without xz = %v, %v; want ErrUnsupported", k, err)
		}
	})
}
