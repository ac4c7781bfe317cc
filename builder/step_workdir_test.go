package builder

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

// TestWorkdirOwnedByUser: WORKDIR creates the missing directories of its
// path as the stage's USER, as BuildKit does, so that a RUN as that user
// can write there; directories that existed keep their owner. A named user
// comes from the image's /etc/passwd (uid and primary gid), a numeric one
// is uid:uid, a group replaces the gid, and a name /etc/passwd lacks is
// root, as in BuildKit.
func TestWorkdirOwnedByUser(t *testing.T) {
	f := newBuildFixture(t, map[string]string{"Dockerfile": `FROM busybox:latest
USER app
WORKDIR /home/app/work/deep
RUN touch x && id -u > x
USER 1234:wheel
WORKDIR /srv/a
USER 2345
WORKDIR /srv/a/b
USER nosuchuser
WORKDIR /opt/x
`})
	f.mustBuild(t, BuildOptions{Tags: []string{"wd:1"}})
	root := f.rootfs(t, "wd:1")
	if got := readFile(t, filepath.Join(root, "home/app/work/deep/x")); strings.TrimSpace(got) != "1000" {
		t.Errorf("x = %q", got)
	}
	for p, want := range map[string][2]uint32{
		"home":               {0, 0},
		"home/app":           {1000, 1000},
		"home/app/work":      {1000, 1000},
		"home/app/work/deep": {1000, 1000},
		"srv":                {1234, 10},
		"srv/a":              {1234, 10},
		"srv/a/b":            {2345, 2345},
		"opt":                {0, 0},
		"opt/x":              {0, 0},
	} {
		fi, err := os.Lstat(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if !fi.IsDir() || fi.Mode().Perm() != 0o755 || st.Uid != want[0] || st.Gid != want[1] {
			t.Errorf("/%s: %v %d:%d, want a directory 0755 %d:%d", p, fi.Mode(), st.Uid, st.Gid, want[0], want[1])
		}
	}
}

// TestWorkdirKeyNamesUser: the user who will own the directories is part
// of a WORKDIR step's key when there is one.
func TestWorkdirKeyNamesUser(t *testing.T) {
	c := &instructions.WorkdirCommand{Path: "/app"}
	root := (&workdirPlan{cmd: c, dir: "/app"}).key()
	app := (&workdirPlan{cmd: c, dir: "/app", user: "app"}).key()
	if reflect.DeepEqual(root, app) {
		t.Errorf("WORKDIR as root and as app have one key: %+v", root)
	}
	if len(root.Flags) != 1 {
		t.Errorf("WORKDIR as root: flags %+v, want the directory only", root.Flags)
	}
}
