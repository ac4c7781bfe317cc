package builder

import (
	"context"
	"os"
	"strings"

	"github.com/builder-project/builder/cache"
	"github.com/builder-project/builder/dockerfile"
	"github.com/builder-project/builder/executor"
	"github.com/builder-project/builder/internal/store"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

// workdirPlan is a WORKDIR step: it sets the working directory and creates
// it, as docker does; the step has a layer only when the directory did not
// exist.
type workdirPlan struct {
	cmd     *instructions.WorkdirCommand
	dir     string // the absolute directory, resolved against the current one
	history string
}

func newWorkdirPlan(res *stageResult, r *dockerfile.Resolved, c *instructions.WorkdirCommand) *workdirPlan {
	return &workdirPlan{cmd: c, dir: workdirPath(res.cfg.Config.WorkingDir, c.Path), history: metaCreatedBy(r)}
}

func (p *workdirPlan) key() cache.KeyInput {
	return cache.KeyInput{Instruction: "WORKDIR " + commandJSON(p.cmd), Flags: []cache.KV{{Name: "dir", Value: p.dir}}}
}

func (p *workdirPlan) createdBy() string { return p.history }

func (p *workdirPlan) execute(ctx context.Context, bd *build, res *stageResult, ev Event) (*store.Layer, error) {
	res.cfg.Config.WorkingDir = p.dir
	rel := strings.TrimPrefix(p.dir, "/")
	return bd.withSnapshot(ctx, res, ev, func(lowers []string, upper, work string, _ *logWriter) error {
		return bd.exec.WithRootfs([]executor.RootfsMount{{Lowers: lowers, Upper: upper, Work: work}}, func(roots []string) error {
			if rel == "" {
				return nil
			}
			root, err := os.OpenRoot(roots[0])
			if err != nil {
				return err
			}
			defer root.Close()
			return root.MkdirAll(rel, 0o755)
		})
	})
}
