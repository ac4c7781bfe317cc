package executor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/builder-project/builder/internal/testutil"
)

func TestRunMounts(t *testing.T) {
	testutil.RequirePrivileges(t, "root", "overlay")
	for name, ex := range executors(t) {
		t.Run(name, func(t *testing.T) {
			tmp := privateTMPDIR(t)
			f := newFixture(t)
			src, out := t.TempDir(), t.TempDir()
			if err := os.WriteFile(filepath.Join(src, "in"), []byte("input\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			cfgFile := filepath.Join(t.TempDir(), "app.conf")
			if err := os.WriteFile(cfgFile, []byte("conf\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			s := f.spec(sh(`cat /src/in; touch /src/x 2>/dev/null && echo src-writable;
				echo result > /out/file; cat /etc/app.conf;
				grep ' /tmp/cache ' /proc/mounts | cut -d' ' -f3; echo cached > /tmp/cache/f`)...)
			s.Mounts = []Mount{
				{Type: "bind", Source: src, Destination: "/src", Options: []string{"ro"}},
				{Type: "bind", Source: out, Destination: "/deep/out/../../out"},
				{Type: "bind", Source: cfgFile, Destination: "/etc/app.conf", Options: []string{"ro"}},
				{Type: "tmpfs", Destination: "/tmp/cache", Options: []string{"size=1m"}},
			}
			got := mustRun(t, ex, s)
			if want := "input\nconf\ntmpfs\n"; got != want {
				t.Errorf("output = %q, want %q", got, want)
			}
			if b, err := os.ReadFile(filepath.Join(out, "file")); err != nil || string(b) != "result\n" {
				t.Errorf("rw bind: %q, %v", b, err)
			}
			if ents := f.upperEntries(t); len(ents) != 0 {
				t.Errorf("upper = %q, want empty: every mountpoint stub must be removed", ents)
			}
			checkRunCleanedUp(t, tmp, f.lower, f.upper, f.work, src, out, filepath.Dir(cfgFile))
		})
	}
}

// TestStubCleanupStaysInRoot plays CVE-2024-23652: the process moves a
// stub's parent away and puts a symlink to a host directory in its place.
// Cleaning the stubs must not follow it.
func TestStubCleanupStaysInRoot(t *testing.T) {
	f := newFixture(t)
	victim := t.TempDir()
	if err := os.Mkdir(filepath.Join(victim, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	s := f.spec(sh(fmt.Sprintf(`mv /mnt /moved && ln -s %s /mnt && echo swapped`, victim))...)
	s.Mounts = []Mount{{Type: "tmpfs", Destination: "/mnt/data"}}
	if out := mustRun(t, builtinExecutor(t), s); out != "swapped\n" {
		t.Fatalf("output = %q", out)
	}
	if _, err := os.Stat(filepath.Join(victim, "data")); err != nil {
		t.Errorf("host directory touched by stub cleanup: %v", err)
	}
	if fi, err := os.Lstat(filepath.Join(f.upper, "mnt")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the process's symlink should stay in upper: %v", err)
	}
}

func TestHostsAndResolvConf(t *testing.T) {
	t.Run("existing-in-rootfs", func(t *testing.T) {
		f := newFixture(t)
		for _, n := range []string{"hosts", "resolv.conf"} {
			if err := os.WriteFile(filepath.Join(f.lower, "etc", n), []byte("image\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		s := f.spec(sh(`cat /etc/hosts /etc/resolv.conf`)...)
		hosts, resolv := filepath.Join(t.TempDir(), "h"), filepath.Join(t.TempDir(), "r")
		for p, content := range map[string]string{hosts: "10.0.0.1 given\n", resolv: "nameserver 10.0.0.2\n"} {
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		s.Hosts, s.ResolvConf = hosts, resolv
		if out := mustRun(t, builtinExecutor(t), s); out != "10.0.0.1 given\nnameserver 10.0.0.2\n" {
			t.Errorf("output = %q", out)
		}
		if ents := f.upperEntries(t); len(ents) != 0 {
			t.Errorf("upper = %q, want empty", ents)
		}
	})
	t.Run("no-etc-in-rootfs", func(t *testing.T) {
		f := newFixture(t)
		if err := os.RemoveAll(filepath.Join(f.lower, "etc")); err != nil {
			t.Fatal(err)
		}
		mustRun(t, builtinExecutor(t), f.spec("cat", "/etc/hosts"))
		if ents := f.upperEntries(t); len(ents) != 0 {
			t.Errorf("upper = %q, want empty: /etc created only for the stubs", ents)
		}
	})
	t.Run("process-writes-next-to-stub", func(t *testing.T) {
		f := newFixture(t)
		mustRun(t, builtinExecutor(t), f.spec(sh(`echo x > /etc/new`)...))
		ents := f.upperEntries(t)
		if strings.Join(ents, ",") != "etc,etc/new" {
			t.Errorf("upper = %q, want etc and etc/new only", ents)
		}
	})
}

// TestManyLowers needs more lowerdir text than a page holds. All
// directories share one long parent, so that mount(2) with relative paths
// works too.
func TestManyLowers(t *testing.T) {
	testutil.SkipIfShort(t, "120 lower layers, mounted both ways")
	testutil.RequirePrivileges(t, "root", "overlay")
	for _, legacy := range []bool{false, true} {
		t.Run(fmt.Sprintf("legacy=%v", legacy), func(t *testing.T) {
			base := filepath.Join(t.TempDir(), strings.Repeat("x", 200))
			f := fixture{lower: filepath.Join(base, "bb"), upper: filepath.Join(base, "u"), work: filepath.Join(base, "w")}
			for _, d := range []string{f.lower, f.upper, f.work} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := testutil.MakeBusyboxRootfs(testutil.BusyboxPath(t), f.lower); err != nil {
				t.Fatal(err)
			}
			var lowers []string
			for i := range 120 {
				d := filepath.Join(base, fmt.Sprintf("l%03d", i))
				if err := os.Mkdir(d, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(d, "which"), []byte(fmt.Sprint(i)), 0o644); err != nil {
					t.Fatal(err)
				}
				lowers = append([]string{d}, lowers...)
			}
			s := f.spec("cat", "/which")
			s.Lowers = append(lowers, f.lower)
			if n := len(overlayData(s.Lowers, f.upper, f.work)); n <= os.Getpagesize() {
				t.Fatalf("options are only %d bytes", n)
			}
			forceLegacyOverlay = legacy
			defer func() { forceLegacyOverlay = false }()
			if out := mustRun(t, builtinExecutor(t), s); out != "119" {
				t.Errorf("output = %q, want the topmost layer's file", out)
			}
		})
	}
}

func TestEmptyLowers(t *testing.T) {
	f := newFixture(t)
	s := f.spec("/bin/busybox", "true")
	s.Lowers = nil
	_, _, err := run(t, builtinExecutor(t), s)
	if err == nil || !strings.Contains(err.Error(), "busybox") {
		t.Errorf("err = %v, want a missing /bin/busybox in an empty root", err)
	}
}

func TestCrun(t *testing.T) {
	testutil.RequirePrivileges(t, "root", "overlay")
	ex, err := New(Crun)
	if err != nil {
		if !strings.Contains(err.Error(), "crun") {
			t.Errorf("New(crun) error %q does not name crun", err)
		}
		return
	}
	f := newFixture(t)
	out, errOut, err := run(t, ex, f.spec("echo", "hi"))
	var ee *ExitError
	if err == nil {
		// crun works on this host: it must run the process.
		if out != "hi\n" {
			t.Errorf("crun: output = %q, want %q", out, "hi\n")
		}
		return
	}
	if errors.As(err, &ee) || !strings.Contains(err.Error(), "crun") {
		t.Errorf("err = %v (stderr %q), want an error naming crun", err, errOut)
	}
}
