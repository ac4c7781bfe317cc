package dockerfile

import (
	"fmt"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// DefaultPathEnv is the PATH BuildKit adds to a stage whose base image sets
// none (Linux).
const DefaultPathEnv = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Scope is the variable scope of one stage while the builder walks its
// steps in order: the environment (base image env, ENV, declared ARGs) and
// the build args declared so far. Create it with Graph.NewScope for a stage
// based on an image or scratch, or with Child of the finished scope of the
// base stage for a stage FROM another stage. A Scope is not safe for
// concurrent use; stages built in parallel each have their own.
type Scope struct {
	g        *Graph
	lex      *shell.Lex
	env      []string   // environment for RUN and expansion (BuildKit's state env)
	imageEnv []string   // image config env: base env and ENV only
	args     []KeyValue // declared build args with values
	lenient  bool
}

// Resolved is a step ready to execute.
type Resolved struct {
	// Step is the step this was resolved from.
	Step *Step
	// Command is a fresh, expanded copy of Step.Command. RUN command lines
	// are not expanded (the shell does that); RUN --mount options are. For
	// ARG, each Args[i].Value holds the value that took effect (nil when
	// the arg has none).
	Command instructions.Command
	// Args are the build args visible to this step, in declaration order.
	// They are part of RUN's environment (already in Env) and of its cache
	// key; proxy args are not among them unless declared.
	Args []KeyValue
	// Env is the environment the step runs with ("KEY=value"): image env,
	// stage ENV and visible build args. For RUN, append Graph.ProxyEnv.
	Env []string
}

// NewScope starts the scope of a stage built FROM an image (or scratch)
// whose config has imageEnv. As BuildKit does, PATH is set to DefaultPathEnv
// when imageEnv has none, and it then belongs in the image config too (see
// ImageEnv).
func (g *Graph) NewScope(imageEnv []string) *Scope {
	env := append([]string(nil), imageEnv...)
	if _, ok := shell.EnvsFromSlice(env).Get("PATH"); !ok {
		env = append(env, "PATH="+DefaultPathEnv)
	}
	return &Scope{
		g:        g,
		lex:      shell.NewLex(g.EscapeToken),
		env:      env,
		imageEnv: append([]string(nil), env...),
	}
}

// Child starts the scope of a stage built FROM the stage whose finished
// scope is sc: it inherits the environment and the declared build args, as
// in BuildKit.
func (sc *Scope) Child() *Scope {
	return &Scope{
		g:        sc.g,
		lex:      shell.NewLex(sc.g.EscapeToken),
		env:      append([]string(nil), sc.env...),
		imageEnv: append([]string(nil), sc.imageEnv...),
		args:     cloneKVs(sc.args),
		lenient:  sc.lenient,
	}
}

// Env returns the current environment (image env, ENV and declared ARGs).
func (sc *Scope) Env() []string { return append([]string(nil), sc.env...) }

// ImageEnv returns the environment to record in the image config: the base
// image env (with the default PATH) and ENV instructions, without ARGs.
func (sc *Scope) ImageEnv() []string { return append([]string(nil), sc.imageEnv...) }

// Args returns the build args declared so far with their values.
func (sc *Scope) Args() []KeyValue { return cloneKVs(sc.args) }

// Apply resolves st against the scope and then records its effect on the
// scope (ENV and ARG). Steps must be applied in order: ONBUILD triggers of
// the base image (Graph.ParseTriggers) first, then Stage.Steps.
func (sc *Scope) Apply(st *Step) (*Resolved, error) {
	c, err := st.fresh()
	if err != nil {
		return nil, err
	}
	r := &Resolved{Step: st, Command: c, Args: cloneKVs(sc.args), Env: sc.Env()}
	env := shell.EnvsFromSlice(sc.env)
	if err := expandCommand(c, sc.lex, env, sc.lenient); err != nil {
		return nil, errorAt(st.Location, err)
	}
	switch c := c.(type) {
	case *instructions.ArgCommand:
		if err := sc.declare(c, env); err != nil {
			return nil, errorAt(st.Location, err)
		}
	case *instructions.EnvCommand:
		for _, kv := range c.Env {
			sc.env = setEnv(sc.env, kv.Key, kv.Value)
			sc.imageEnv = setEnv(sc.imageEnv, kv.Key, kv.Value)
		}
	}
	if !sc.lenient {
		if err := validateExpanded(c); err != nil {
			return nil, errorAt(st.Location, err)
		}
	}
	return r, nil
}

// declare applies an ARG instruction like BuildKit's dispatchArg: a
// --build-arg value wins, else the default expanded against env, else (no
// default) the meta or platform arg of the same name.
func (sc *Scope) declare(c *instructions.ArgCommand, env shell.EnvGetter) error {
	for i, kv := range c.Args {
		bv, hasBuildArg := sc.g.BuildArgs[kv.Key]
		switch {
		case hasBuildArg:
			kv.Value = &bv
		case kv.Value != nil:
			v, _, err := sc.lex.ProcessWord(*kv.Value, env)
			if err != nil {
				if !sc.lenient {
					return fmt.Errorf("expanding ARG %s: %w", kv.Key, err)
				}
				v = *kv.Value
			}
			kv.Value = &v
		default:
			for _, g := range sc.g.GlobalArgs {
				if g.Key == kv.Key {
					v := g.Value
					kv.Value = &v
				}
			}
		}
		c.Args[i] = kv
		if kv.Value == nil {
			continue
		}
		if !nonEnvArgs[kv.Key] {
			sc.env = setEnv(sc.env, kv.Key, *kv.Value)
		}
		sc.args = setKV(sc.args, kv.Key, *kv.Value)
	}
	return nil
}

// ArgString renders a resolved ARG command like BuildKit's history entry:
// "ARG a=1 b".
func ArgString(c *instructions.ArgCommand) string {
	parts := make([]string, 0, len(c.Args))
	for _, kv := range c.Args {
		s := kv.Key
		if kv.Value != nil {
			s += "=" + *kv.Value
		}
		parts = append(parts, s)
	}
	return "ARG " + strings.Join(parts, " ")
}
