package executor

import (
	"os"
	"path/filepath"
	"testing"
)

func TestRemoveStubs(t *testing.T) {
	upper := t.TempDir()
	host := t.TempDir()
	mk := func(p string, dir bool, content string) {
		p = filepath.Join(upper, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if dir {
			if err := os.Mkdir(p, 0o755); err != nil {
				t.Fatal(err)
			}
			return
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mk("etc/hosts", false, "")
	mk("etc/resolv.conf", false, "changed")
	mk("a/b", true, "")
	mk("c/keep", false, "x")
	mk("c/stub", true, "")
	if err := os.WriteFile(filepath.Join(host, "hostfile"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(host, filepath.Join(upper, "evil")); err != nil {
		t.Fatal(err)
	}
	entries := []cleanupEntry{
		{Path: "etc", Dir: true, Mode: 0o755},
		{Path: "etc/hosts", Created: true},
		{Path: "etc/resolv.conf", Created: true},
		{Path: "a", Dir: true, Created: true},
		{Path: "a/b", Dir: true, Created: true},
		{Path: "c", Dir: true, Mode: 0o700}, // mode changed since: keep
		{Path: "c/stub", Dir: true, Created: true},
		{Path: "evil/hostfile", Created: true},
		{Path: "evil", Dir: true, Created: true},
		{Path: "missing/x", Created: true},
	}
	if err := removeStubs(upper, entries); err != nil {
		t.Fatal(err)
	}
	var left []string
	err := filepath.Walk(upper, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if rel, _ := filepath.Rel(upper, p); rel != "." {
			left = append(left, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"c", "c/keep", "etc", "etc/resolv.conf", "evil"}
	if len(left) != len(want) {
		t.Fatalf("left = %q, want %q", left, want)
	}
	for i := range want {
		if left[i] != want[i] {
			t.Fatalf("left = %q, want %q", left, want)
		}
	}
	if _, err := os.Stat(filepath.Join(host, "hostfile")); err != nil {
		t.Errorf("host file removed through a symlink: %v", err)
	}
	if err := removeStubs(upper, []cleanupEntry{{Path: "../x"}}); err == nil {
		t.Error("no error for a path leaving the upperdir")
	}
}
