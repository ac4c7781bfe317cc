package filecopy

import (
	"os"
	"path/filepath"
	"testing"
)

func TestFile(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	if err := os.WriteFile(src, []byte("content"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := File(dst, src, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(dst)
	if err != nil || string(got) != "content" {
		t.Fatalf("dst = %q, %v", got, err)
	}
	if fi, _ := os.Stat(dst); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
	// An existing destination is never overwritten, nor a symlink followed.
	if err := File(dst, src, 0o600); err == nil {
		t.Error("copy over an existing file succeeded")
	}
	victim := filepath.Join(dir, "victim")
	os.WriteFile(victim, []byte("keep"), 0o644)
	link := filepath.Join(dir, "link")
	if err := os.Symlink(victim, link); err != nil {
		t.Fatal(err)
	}
	if err := File(link, src, 0o644); err == nil {
		t.Error("copy through a symlink succeeded")
	}
	if got, _ := os.ReadFile(victim); string(got) != "keep" {
		t.Errorf("symlink target written: %q", got)
	}
	if err := File(filepath.Join(dir, "x"), filepath.Join(dir, "missing"), 0o644); err == nil {
		t.Error("copy of a missing file succeeded")
	}
}
