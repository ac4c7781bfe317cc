package executor

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/builder-project/builder/internal/passwd"
)

const (
	testPasswd = "root:x:0:0:root:/root:/bin/sh\n# comment\nbroken line\napp:x:1000:1000:app:/home/app:/bin/sh\nnohome:x:1001:1001::\n"
	testGroup  = "root:x:0:\nwheel:x:10:app,other\napp:x:1000:\nstaff:x:50: app \n"
)

func TestLookupUser(t *testing.T) {
	users, err := passwd.ParsePasswd(strings.NewReader(testPasswd))
	if err != nil {
		t.Fatal(err)
	}
	groups, err := passwd.ParseGroup(strings.NewReader(testGroup))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		spec string
		want execUser
		err  string
	}{
		{spec: "", want: execUser{UID: 0, GID: 0, Groups: []uint32{}, Home: "/root"}},
		{spec: "root", want: execUser{Groups: []uint32{}, Home: "/root"}},
		{spec: "app", want: execUser{UID: 1000, GID: 1000, Groups: []uint32{10, 50}, Home: "/home/app"}},
		{spec: "1000", want: execUser{UID: 1000, GID: 1000, Groups: []uint32{10, 50}, Home: "/home/app"}},
		{spec: "app:wheel", want: execUser{UID: 1000, GID: 10, Home: "/home/app"}},
		{spec: "app:77", want: execUser{UID: 1000, GID: 77, Home: "/home/app"}},
		{spec: "4242", want: execUser{UID: 4242, GID: 0, Groups: []uint32{}, Home: "/"}},
		{spec: "4242:4343", want: execUser{UID: 4242, GID: 4343, Home: "/"}},
		{spec: "nohome", want: execUser{UID: 1001, GID: 1001, Groups: []uint32{}, Home: "/"}},
		{spec: "ghost", err: `no user named "ghost"`},
		{spec: "app:ghosts", err: `no group named "ghosts"`},
		{spec: "app:", err: "empty group"},
		{spec: ":10", err: "empty user"},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			got, err := lookupUser(tc.spec, users, groups)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.UID != tc.want.UID || got.GID != tc.want.GID || got.Home != tc.want.Home || !slices.Equal(got.Groups, tc.want.Groups) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestResolveUserStaysInRoot resolves /etc through an absolute symlink,
// which must point inside the root, not at the host's /etc.
func TestResolveUserStaysInRoot(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "real"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "real/passwd"), []byte("only:x:7:7::/o:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/real", filepath.Join(root, "etc")); err != nil {
		t.Fatal(err)
	}
	u, err := resolveUser(root, "only")
	if err != nil || u.UID != 7 {
		t.Fatalf("got %+v, %v", u, err)
	}
	if _, err := resolveUser(root, "root"); err == nil {
		t.Error("resolved root from outside the root filesystem")
	}
	if u, err := resolveUser(t.TempDir(), "0"); err != nil || u.UID != 0 || u.Home != "/" {
		t.Errorf("numeric user without /etc/passwd: %+v, %v", u, err)
	}
}
