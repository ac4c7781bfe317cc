package builder

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/builder-project/builder/internal/testutil"
	"github.com/builder-project/builder/output"
)

// TestLocalOutputKeepsDestination exports an image whose layer whites out
// precious.txt into a directory holding the user's own precious.txt: the
// file is never deleted. ExportDir and a local output without force refuse
// the directory (the build before it starts); with force=true the image
// merges into it.
func TestLocalOutputKeepsDestination(t *testing.T) {
	testutil.RequirePrivileges(t, "root") // unpacking restores ownership
	ctx := context.Background()
	f := newFakeBuild(t, nil)
	if _, err := f.b.Import(ctx, bytes.NewReader(tarOf(t, ".wh.precious.txt", "", "hello", "image")), ImportOptions{Ref: "wh:1"}); err != nil {
		t.Fatal(err)
	}
	dest := t.TempDir()
	if err := os.WriteFile(filepath.Join(dest, "precious.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	check := func(t *testing.T, want map[string]string) {
		t.Helper()
		entries, err := os.ReadDir(dest)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != len(want) {
			t.Errorf("destination holds %v, want %v", entries, want)
		}
		for name, data := range want {
			if got, err := os.ReadFile(filepath.Join(dest, name)); err != nil || string(got) != data {
				t.Errorf("%s = %q, %v; want %q", name, got, err, data)
			}
		}
	}

	err := f.b.ExportDir(ctx, dest, "wh:1")
	if !errors.Is(err, output.ErrDirNotEmpty) {
		t.Fatalf("ExportDir into a directory that is not empty: %v, want ErrDirNotEmpty", err)
	}
	check(t, map[string]string{"precious.txt": "mine"})

	_, err = f.build(t, "FROM wh:1\nRUN echo built > /built\n", BuildOptions{Outputs: []Output{{Type: OutputLocal, Dest: dest}}})
	if !errors.Is(err, output.ErrDirNotEmpty) || !strings.Contains(err.Error(), "force=true") {
		t.Fatalf("local output into a directory that is not empty: %v, want ErrDirNotEmpty and a hint", err)
	}
	if runs := f.exec.Runs(); len(runs) != 0 {
		t.Errorf("the build ran %d steps before refusing its output", len(runs))
	}
	check(t, map[string]string{"precious.txt": "mine"})

	o, err := ParseOutput("type=local,dest=" + dest + ",force=true")
	if err != nil || !o.Force {
		t.Fatalf("ParseOutput = %+v, %v", o, err)
	}
	f.mustBuild(t, "FROM wh:1\nRUN echo built > /built\n", BuildOptions{Outputs: []Output{o}})
	check(t, map[string]string{"precious.txt": "mine", "hello": "image", "built": "built\n"})
}

func TestParseOutputForce(t *testing.T) {
	for _, s := range []string{"type=tar,dest=x.tar,force=true", "type=oci,dest=x.tar,force=true", "type=local,dest=d,force=maybe"} {
		if o, err := ParseOutput(s); err == nil {
			t.Errorf("ParseOutput(%q) = %+v, want an error", s, o)
		}
	}
	dest := filepath.Join(t.TempDir(), "missing")
	if o, err := ParseOutput("type=local,dest=" + dest + ",force=false"); err != nil || o.Force {
		t.Errorf("ParseOutput force=false = %+v, %v", o, err)
	}
}
