package builder

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/builder-project/builder/cache"
	"github.com/builder-project/builder/dockerfile"
	"github.com/builder-project/builder/internal/store"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

// metaPlan is a step that changes only the image config: ENV, LABEL, CMD,
// ENTRYPOINT, EXPOSE, USER, VOLUME, STOPSIGNAL, HEALTHCHECK, SHELL,
// ONBUILD and MAINTAINER.
type metaPlan struct {
	cmd     instructions.Command // expanded
	history string
}

func newMetaPlan(r *dockerfile.Resolved, c instructions.Command) (*metaPlan, error) {
	if !isConfigCommand(c) {
		return nil, fmt.Errorf("instruction %s is not supported", instructionName(c))
	}
	return &metaPlan{cmd: c, history: metaCreatedBy(r)}, nil
}

func (p *metaPlan) key() cache.KeyInput {
	return cache.KeyInput{Instruction: instructionName(p.cmd) + " " + commandJSON(p.cmd)}
}

func (p *metaPlan) createdBy() string { return p.history }

func (p *metaPlan) execute(_ context.Context, bd *build, res *stageResult, ev Event) (*store.Layer, error) {
	start := time.Now()
	if _, err := applyConfig(&res.cfg, &res.cst, p.cmd); err != nil {
		return nil, err
	}
	bd.metaStep(ev, start)
	return nil, nil
}

// argPlan is an ARG step. It keys on the names it declares only: a value
// takes effect through the steps that use it (RUN keys on the args in
// scope), so a changed value invalidates from its first use, as in Docker.
type argPlan struct{ cmd *instructions.ArgCommand }

func newArgPlan(c *instructions.ArgCommand) *argPlan { return &argPlan{cmd: c} }

func (p *argPlan) key() cache.KeyInput {
	names := make([]string, len(p.cmd.Args))
	for i, a := range p.cmd.Args {
		names[i] = a.Key
	}
	return cache.KeyInput{Instruction: "ARG " + strings.Join(names, " ")}
}

func (p *argPlan) createdBy() string { return dockerfile.ArgString(p.cmd) }

func (p *argPlan) execute(_ context.Context, bd *build, _ *stageResult, ev Event) (*store.Layer, error) {
	bd.metaStep(ev, time.Now())
	return nil, nil
}

// metaStep reports a step that changed no file.
func (bd *build) metaStep(ev Event, start time.Time) {
	bd.count(false)
	ev.Kind = StepDone
	ev.Duration = time.Since(start)
	bd.ev.emit(ev)
}

// metaCreatedBy renders a metadata instruction for history, expanded.
func metaCreatedBy(r *dockerfile.Resolved) string {
	switch c := r.Command.(type) {
	case *instructions.EnvCommand:
		return "ENV " + kvString(c.Env)
	case *instructions.LabelCommand:
		return "LABEL " + kvString(c.Labels)
	case *instructions.WorkdirCommand:
		return "WORKDIR " + c.Path
	case *instructions.UserCommand:
		return "USER " + c.User
	case *instructions.ExposeCommand:
		return "EXPOSE " + strings.Join(c.Ports, " ")
	}
	return r.Step.Original
}

func kvString(kvs instructions.KeyValuePairs) string {
	parts := make([]string, len(kvs))
	for i, kv := range kvs {
		parts[i] = kv.Key + "=" + kv.Value
	}
	return strings.Join(parts, " ")
}
