package dockerfile

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// Step is one instruction of a stage.
type Step struct {
	// Command is the typed BuildKit command as parsed, unexpanded
	// (*instructions.RunCommand, *instructions.CopyCommand, ...). Heredoc
	// bodies are in RunCommand.Files and in CopyCommand/AddCommand
	// SourceContents (RUN bodies are not chomped yet: RunArgs does that).
	// Treat it as read-only; use Scope.Apply or Expanded to
	// get an expanded copy.
	Command instructions.Command
	// Original is the instruction as written, line continuations joined
	// (heredoc bodies are not included), for history's created_by.
	Original string
	// Location is where the instruction is. For ONBUILD triggers it is the
	// location of the FROM line that ran them, as in BuildKit.
	Location Location
	// Args are the build args visible at this step (before it runs), in
	// declaration order, as far as known at parse time: the values assume
	// the base image defines no environment. Scope.Apply returns the
	// authoritative list.
	Args []KeyValue
	// Trigger is set for ONBUILD triggers of the base stage or image; they
	// run right after FROM.
	Trigger bool
	// FromStage is the stage a COPY --from refers to (by name or index).
	FromStage *Stage
	// FromImage is the image a COPY --from refers to when it names no stage.
	FromImage string
	// Mounts lists the RUN --mount entries that have from=, resolved.
	Mounts []MountSource

	node   *parser.Node
	escape rune
}

// MountSource is the resolved from= of one RUN --mount.
type MountSource struct {
	// Index is the position of the mount in instructions.GetMounts.
	Index int
	// From is the from= value as written.
	From string
	// Stage is the stage mounted, nil for an image.
	Stage *Stage
	// Image is the image mounted when From names no stage.
	Image string
}

// Sources returns the stages this step reads from (COPY --from and RUN
// --mount from= stages).
func (st *Step) Sources() []*Stage {
	var out []*Stage
	if st.FromStage != nil {
		out = append(out, st.FromStage)
	}
	for _, m := range st.Mounts {
		if m.Stage != nil {
			out = append(out, m.Stage)
		}
	}
	return out
}

// fresh returns a newly parsed copy of the step's command, so expansion
// never mutates Step.Command.
func (st *Step) fresh() (instructions.Command, error) {
	c, err := instructions.ParseCommand(st.node)
	if err != nil {
		return nil, errorAt(st.Location, unlocated(err))
	}
	return c, nil
}

// Expanded returns a copy of the step's command with variables expanded
// against env ("KEY=value" entries: image env, stage ENV and visible build
// args, later entries win), as BuildKit does before dispatching it. RUN
// command lines are left alone (the shell expands them); only RUN --mount
// options are expanded. ARG commands are returned unexpanded: their values
// depend on build args and scope, use Scope.Apply.
func (st *Step) Expanded(env []string) (instructions.Command, error) {
	c, err := st.fresh()
	if err != nil {
		return nil, err
	}
	if err := expandCommand(c, shell.NewLex(st.escape), shell.EnvsFromSlice(env), false); err != nil {
		return nil, errorAt(st.Location, err)
	}
	if err := validateExpanded(c); err != nil {
		return nil, errorAt(st.Location, err)
	}
	return c, nil
}

// ExpandCommand expands the variables of c in place against env
// ("KEY=value" entries, later ones win) with the default escape token, as
// a Dockerfile step is expanded: for docker's --change instructions, which
// see the image's environment. ARG commands are left alone.
func ExpandCommand(c instructions.Command, env []string) error {
	return expandCommand(c, shell.NewLex(parser.DefaultEscapeToken), shell.EnvsFromSlice(env), false)
}

// expandCommand expands c in place like BuildKit's dispatch: the words of
// the commands that support expansion, and EXPOSE's ports (which may
// become several). ARG commands are skipped. With lenient set, words that
// fail to expand are kept as written.
func expandCommand(c instructions.Command, lex *shell.Lex, env shell.EnvGetter, lenient bool) error {
	if _, isArg := c.(*instructions.ArgCommand); isArg {
		return nil
	}
	if ex, ok := c.(instructions.SupportsSingleWordExpansion); ok {
		err := ex.Expand(func(word string) (string, error) {
			w, _, err := lex.ProcessWord(word, env)
			if err != nil && lenient {
				return word, nil
			}
			return w, err
		})
		if err != nil {
			return fmt.Errorf("expanding %s: %w", strings.ToUpper(c.Name()), err)
		}
	}
	if c, ok := c.(*instructions.ExposeCommand); ok {
		// EXPOSE alone expands a word into words (PORTS="80 443"), as
		// BuildKit's dispatchExpose does.
		var ports []string
		for _, p := range c.Ports {
			ws, err := lex.ProcessWords(p, env)
			if err != nil {
				if !lenient {
					return fmt.Errorf("expanding EXPOSE: %w", err)
				}
				ws = []string{p}
			}
			ports = append(ports, ws...)
		}
		c.Ports = ports
	}
	if ex, ok := c.(instructions.SupportsSingleWordExpansionRaw); ok {
		// Heredoc bodies with expansion use a backslash lexer that keeps
		// quotes, whatever the escape directive says (as BuildKit does).
		raw := shell.NewLex('\\')
		raw.SkipProcessQuotes = true
		err := ex.ExpandRaw(func(word string) (string, error) {
			w, _, err := raw.ProcessWord(word, env)
			if err != nil && lenient {
				return word, nil
			}
			return w, err
		})
		if err != nil {
			return fmt.Errorf("expanding heredoc of %s: %w", strings.ToUpper(c.Name()), err)
		}
	}
	return nil
}

// unlocated strips BuildKit's location wrapper, keeping the message.
func unlocated(err error) error {
	var le *parser.LocationError
	if errors.As(err, &le) {
		return le.Unwrap()
	}
	return err
}

// resolveSources fills FromStage/FromImage/Mounts and the stage Deps. Like
// BuildKit, COPY --from and mount from= see every stage of the file (later
// ones included; checkOrder rejects those) and the last stage of a name.
func (g *Graph) resolveSources() error {
	for _, s := range g.Stages {
		if s.BaseStage != nil {
			s.Deps = append(s.Deps, s.BaseStage)
		}
		for _, st := range s.Steps {
			if err := g.resolveStep(st); err != nil {
				return err
			}
			for _, dep := range st.Sources() {
				s.addDep(dep)
			}
		}
	}
	return nil
}

func (s *Stage) addDep(d *Stage) {
	for _, x := range s.Deps {
		if x == d {
			return
		}
	}
	s.Deps = append(s.Deps, d)
}

// resolveStep resolves the sources of one COPY or RUN step.
func (g *Graph) resolveStep(st *Step) error {
	switch c := st.Command.(type) {
	case *instructions.CopyCommand:
		if c.From == "" {
			return nil
		}
		res, err := shell.NewLex(g.EscapeToken).ProcessWordWithMatches(c.From, shell.EnvsFromSlice(nil))
		if err != nil || res.Result != c.From {
			return errorAt(st.Location, errors.New("variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround"))
		}
		if idx, err := strconv.Atoi(c.From); err == nil {
			if idx < 0 || idx >= len(g.Stages) {
				return errorAt(st.Location, fmt.Errorf("invalid stage index %d", idx))
			}
			st.FromStage = g.Stages[idx]
			return nil
		}
		if s, ok := g.byName[strings.ToLower(c.From)]; ok {
			st.FromStage = s
		} else {
			st.FromImage = c.From
		}
	case *instructions.RunCommand:
		for i, m := range instructions.GetMounts(c) {
			if m.From == "" {
				continue
			}
			ms := MountSource{Index: i, From: m.From}
			if s, ok := g.byName[strings.ToLower(m.From)]; ok {
				ms.Stage = s
			} else {
				ms.Image = m.From
			}
			st.Mounts = append(st.Mounts, ms)
		}
	}
	return nil
}

// baseStageTriggers returns the ONBUILD triggers of s's base stage as steps
// located at s's FROM line. Sources are resolved later with the others.
func (g *Graph) baseStageTriggers(s *Stage) ([]*Step, error) {
	var exprs []string
	for _, st := range s.BaseStage.Steps {
		if ob, ok := st.Command.(*instructions.OnbuildCommand); ok && !st.Trigger {
			exprs = append(exprs, ob.Expression)
		}
	}
	return g.parseTriggers(s, exprs)
}

// ParseTriggers parses the ONBUILD triggers of the base image of stage s
// (its config's OnBuild list) into steps that the builder runs right after
// FROM, before s.Steps, through the same Scope. The steps are located at s's
// FROM line and their COPY --from / mount sources are resolved against the
// graph; a trigger may thus need a stage that Needed did not list, which the
// builder must then build first.
func (g *Graph) ParseTriggers(s *Stage, triggers []string) ([]*Step, error) {
	steps, err := g.parseTriggers(s, triggers)
	if err != nil {
		return nil, err
	}
	for _, st := range steps {
		if err := g.resolveStep(st); err != nil {
			return nil, err
		}
		for _, src := range st.Sources() {
			if src == s || src.Index >= s.Index {
				return nil, errorAt(st.Location, fmt.Errorf("cannot copy from stage %q, it needs to be defined before current stage %q", src.DisplayName(), s.DisplayName()))
			}
		}
	}
	if err := g.checkSupported([]*Stage{{Steps: steps}}); err != nil {
		return nil, err
	}
	return steps, nil
}

func (g *Graph) parseTriggers(s *Stage, triggers []string) ([]*Step, error) {
	var steps []*Step
	for _, trigger := range triggers {
		res, err := parser.Parse(strings.NewReader(trigger))
		if err != nil {
			return nil, errorAt(s.Location, fmt.Errorf("parsing ONBUILD trigger %q: %w", trigger, unlocated(err)))
		}
		if len(res.AST.Children) != 1 {
			return nil, errorAt(s.Location, errors.New("onbuild trigger should be a single expression"))
		}
		n := res.AST.Children[0]
		n.StartLine, n.EndLine = s.Location.StartLine, s.Location.EndLine
		c, err := instructions.ParseCommand(n)
		if err != nil {
			return nil, errorAt(s.Location, fmt.Errorf("parsing ONBUILD trigger %q: %w", trigger, unlocated(err)))
		}
		st := g.newStep(c, n, s.Location)
		st.escape = res.EscapeToken
		st.Trigger = true
		steps = append(steps, st)
	}
	return steps, nil
}
