package builder

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/builder-project/builder/cache"
	"github.com/builder-project/builder/dockerfile"
	"github.com/builder-project/builder/executor"
	"github.com/builder-project/builder/internal/passwd"
	"github.com/builder-project/builder/internal/store"
	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

// workdirPlan is a WORKDIR step: it sets the working directory and creates
// it, as docker does; the step has a layer only when the directory did not
// exist.
type workdirPlan struct {
	cmd     *instructions.WorkdirCommand
	dir     string // the absolute directory, resolved against the current one
	user    string // the stage's USER, who owns the directories made
	history string
}

func newWorkdirPlan(res *stageResult, r *dockerfile.Resolved, c *instructions.WorkdirCommand) *workdirPlan {
	return &workdirPlan{cmd: c, dir: workdirPath(res.cfg.Config.WorkingDir, c.Path), user: res.cfg.Config.User, history: metaCreatedBy(r)}
}

// key names the user only when there is one, so that records of steps
// made before directories were owned by the user (as root) do not match.
func (p *workdirPlan) key() cache.KeyInput {
	flags := []cache.KV{{Name: "dir", Value: p.dir}}
	if p.user != "" {
		flags = append(flags, cache.KV{Name: "user", Value: p.user})
	}
	return cache.KeyInput{Instruction: "WORKDIR " + commandJSON(p.cmd), Flags: flags}
}

func (p *workdirPlan) createdBy() string { return p.history }

// execute creates the directories of the path that are missing, mode 0755
// and owned by the stage's USER, as BuildKit's dispatchWorkdir does (a
// mkdir with parents, as that user): directories that exist keep their
// owner.
func (p *workdirPlan) execute(ctx context.Context, bd *build, res *stageResult, ev Event) (*store.Layer, error) {
	res.cfg.Config.WorkingDir = p.dir
	rel := strings.TrimPrefix(p.dir, "/")
	return bd.withSnapshot(ctx, res, ev, func(lowers []string, upper, work string, _ *logWriter) error {
		return bd.exec.WithRootfs([]executor.RootfsMount{{Lowers: lowers, Upper: upper, Work: work}}, func(roots []string) error {
			if rel == "" {
				return nil
			}
			uid, gid, err := fileOwner(roots[0], p.user)
			if err != nil {
				return err
			}
			return mkdirAllOwned(roots[0], rel, uid, gid)
		})
	})
}

// mkdirAllOwned creates the directory rel of the root filesystem at
// rootfs with its missing parents, mode 0755, giving the ones it creates to
// uid:gid. Each component is resolved inside rootfs, symlinks included
// (absolute ones too: /var/run -> /run), as BuildKit's mkdir does.
func mkdirAllOwned(rootfs, rel string, uid, gid int) error {
	parts := strings.Split(rel, "/")
	for i := range parts {
		p := "/" + strings.Join(parts[:i+1], "/")
		abs, err := securejoin.SecureJoin(rootfs, p)
		if err != nil {
			return fmt.Errorf("creating %s: %w", p, err)
		}
		fi, err := os.Stat(abs)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("creating /%s: %s is not a directory", rel, p)
			}
			continue
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("creating %s: %w", p, err)
		}
		if err := os.Mkdir(abs, 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", p, err)
		}
		if uid != 0 || gid != 0 {
			if err := os.Lchown(abs, uid, gid); err != nil {
				return fmt.Errorf("creating %s: %w", p, err)
			}
		}
	}
	return nil
}

// fileOwner resolves user (a stage's USER: name or uid, with an optional
// ":group") to the owner BuildKit gives the files an operation creates as
// that user: a name is looked up in the root filesystem's /etc/passwd
// (uid and primary gid; a name it lacks, or a missing file, is root, as in
// BuildKit), a number is uid and gid both; a group, by name in /etc/group
// or by number, replaces the gid.
func fileOwner(rootfs, user string) (uid, gid int, err error) {
	if user == "" {
		return 0, 0, nil
	}
	u, g, _ := strings.Cut(user, ":")
	if n, err := strconv.ParseUint(u, 10, 32); err == nil {
		uid, gid = int(n), int(n)
	} else {
		users, err := passwd.ReadIn(rootfs, "/etc/passwd", passwd.ParsePasswd)
		if err != nil {
			return 0, 0, fmt.Errorf("resolving user %q: %w", user, err)
		}
		if pw, ok := passwd.UserByName(users, u); ok {
			uid, gid = int(pw.UID), int(pw.GID)
		}
	}
	if g == "" {
		return uid, gid, nil
	}
	if n, err := strconv.ParseUint(g, 10, 32); err == nil {
		return uid, int(n), nil
	}
	groups, err := passwd.ReadIn(rootfs, "/etc/group", passwd.ParseGroup)
	if err != nil {
		return 0, 0, fmt.Errorf("resolving group of user %q: %w", user, err)
	}
	if gr, ok := passwd.GroupByName(groups, g); ok {
		gid = int(gr.GID)
	}
	return uid, gid, nil
}
