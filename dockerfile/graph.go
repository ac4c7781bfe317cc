package dockerfile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/builder-project/builder/internal/platform"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/moby/buildkit/util/suggest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ScratchImage is the base name of a stage that starts from an empty
// filesystem.
const ScratchImage = "scratch"

// Options controls Parse. The zero value builds the last stage for the host
// platform without build args.
type Options struct {
	// BuildArgs are the --build-arg values. Resolving "--build-arg NAME"
	// (value from the environment) is the caller's job.
	BuildArgs map[string]string
	// Target names the stage to build (case-insensitive); "" builds the last
	// stage.
	Target string
	// BuildPlatform is the platform the build runs on; it defaults to the
	// host (linux/GOARCH). It fills BUILDPLATFORM, BUILDOS, BUILDARCH and
	// BUILDVARIANT.
	BuildPlatform ocispec.Platform
	// TargetPlatform is the platform of the image being built; it defaults to
	// BuildPlatform. It fills TARGETPLATFORM, TARGETOS, TARGETARCH and
	// TARGETVARIANT.
	TargetPlatform ocispec.Platform
}

// Graph is a parsed Dockerfile: its stages, the edges between them and the
// stage to build.
type Graph struct {
	// File is the name passed to Parse, used in locations and errors.
	File string
	// Stages are all stages in file order; Stages[i].Index == i.
	Stages []*Stage
	// Target is the stage to build.
	Target *Stage
	// MetaArgs are the ARGs declared before the first FROM with their
	// resolved values (--build-arg, else the expanded default). Meta args
	// without any value are left out, as BuildKit does.
	MetaArgs []KeyValue
	// GlobalArgs is the scope of FROM lines: the automatic platform args
	// (BUILDPLATFORM..., TARGETPLATFORM..., TARGETSTAGE) followed by
	// MetaArgs. Inside a stage these are only visible once declared by ARG.
	GlobalArgs []KeyValue
	// ProxyEnv holds the predefined proxy args (HTTP_PROXY, https_proxy, ...)
	// given as build args. They are visible to RUN without an ARG
	// declaration but must stay out of history and cache keys.
	ProxyEnv []KeyValue
	// BuildArgs is a copy of Options.BuildArgs.
	BuildArgs map[string]string
	// Directives are the parser directives found at the top of the file
	// (escape, syntax, check), by lower-case name.
	Directives map[string]string
	// EscapeToken is the escape character in effect ('\\' or '`').
	EscapeToken rune
	// Warnings are non-fatal findings, each prefixed with "file:line: ".
	Warnings []string

	byName map[string]*Stage
}

// Stage is one FROM section of a Dockerfile.
type Stage struct {
	// Index is the position of the stage in the file.
	Index int
	// Name is the lower-cased name after AS, "" when unnamed.
	Name string
	// BaseName is the FROM argument after ARG expansion: "scratch", an
	// image reference or the name of an earlier stage.
	BaseName string
	// BaseStage is the earlier stage that FROM refers to, nil for images.
	BaseStage *Stage
	// Platform is the expanded --platform value, "" when none was given.
	Platform string
	// Steps are the instructions of the stage. When BaseStage has ONBUILD
	// instructions, their triggers come first (Step.Trigger is set).
	Steps []*Step
	// Deps are the stages this one depends on: BaseStage, then COPY --from
	// and RUN --mount from= stages in step order, without duplicates.
	Deps []*Stage
	// Location is the location of the FROM instruction.
	Location Location
	// Original is the FROM instruction as written.
	Original string
	// From is the stage as returned by BuildKit, unexpanded.
	From *instructions.Stage
}

// DisplayName is the name BuildKit uses for the stage in messages: Name, or
// "stage-N" for unnamed stages.
func (s *Stage) DisplayName() string {
	if s.Name != "" {
		return s.Name
	}
	return fmt.Sprintf("stage-%d", s.Index)
}

// IsScratch reports whether the stage starts from an empty filesystem.
func (s *Stage) IsScratch() bool { return s.BaseStage == nil && s.BaseName == ScratchImage }

// KeyValue is a named value, used for build args and environment entries.
type KeyValue struct {
	Key   string
	Value string
}

// String renders the pair as "key=value".
func (kv KeyValue) String() string { return kv.Key + "=" + kv.Value }

// Parse parses the Dockerfile src, named name in locations and errors, and
// returns its step graph. Errors about the Dockerfile are *Error.
func Parse(name string, src []byte, opts Options) (*Graph, error) {
	g := &Graph{
		File:       name,
		Directives: map[string]string{},
		BuildArgs:  copyMap(opts.BuildArgs),
		byName:     map[string]*Stage{},
	}
	fileErr := func(err error) error { return &Error{File: name, Err: err} }
	if len(src) == 0 {
		return nil, fileErr(errors.New("the Dockerfile cannot be empty"))
	}
	if err := g.readDirectives(src); err != nil {
		return nil, err
	}

	res, err := parser.Parse(bytes.NewReader(src))
	if err != nil {
		return nil, fromBuildKit(name, err, Location{File: name})
	}
	g.EscapeToken = res.EscapeToken
	for _, w := range res.Warnings {
		line := 0
		if w.Location != nil {
			line = w.Location.Start.Line
		}
		g.warn(line, w.Short)
	}

	stages, metaArgs, err := g.parseInstructions(res.AST)
	if err != nil {
		return nil, err
	}
	if len(stages) == 0 {
		return nil, fileErr(errors.New("dockerfile contains no stages to build"))
	}

	targetName := opts.Target
	if targetName == "" {
		targetName = stages[len(stages)-1].from.Name
	}
	lex := shell.NewLex(g.EscapeToken)
	global := platformArgs(opts, targetName)
	if err := g.buildMetaArgs(lex, global, metaArgs); err != nil {
		return nil, err
	}
	g.ProxyEnv = proxyEnv(opts.BuildArgs)

	for i, ps := range stages {
		st, err := g.newStage(lex, i, ps)
		if err != nil {
			return nil, err
		}
		g.Stages = append(g.Stages, st)
	}
	if err := g.resolveSources(); err != nil {
		return nil, err
	}
	if err := g.checkCycles(); err != nil {
		return nil, err
	}
	if err := g.resolveTarget(opts.Target); err != nil {
		return nil, err
	}
	needed := g.Needed()
	if err := g.checkOrder(needed); err != nil {
		return nil, err
	}
	if err := g.checkSupported(needed); err != nil {
		return nil, err
	}
	g.computeStepArgs()
	g.warnUnusedBuildArgs(needed)
	return g, nil
}

// parsedStage is a BuildKit stage with the AST nodes of its commands.
type parsedStage struct {
	from  *instructions.Stage
	node  *parser.Node
	nodes []*parser.Node
	cmds  []instructions.Command
}

// parseInstructions turns the AST into typed instructions, keeping each
// command's node so that Scope can re-parse a fresh copy to expand.
func (g *Graph) parseInstructions(ast *parser.Node) ([]*parsedStage, []*instructions.ArgCommand, error) {
	lint := linter.New(&linter.Config{Warn: func(rule, _, _, msg string, loc []parser.Range) {
		start, _, _ := rangeOf([][]parser.Range{loc})
		g.warn(start, rule+": "+msg)
	}})
	var stages []*parsedStage
	var metaArgs []*instructions.ArgCommand
	for _, n := range ast.Children {
		loc := Location{File: g.File, StartLine: n.StartLine, EndLine: n.EndLine}
		v, err := instructions.ParseInstructionWithLinter(n, lint)
		if err != nil {
			return nil, nil, fromBuildKit(g.File, err, loc)
		}
		switch c := v.(type) {
		case *instructions.Stage:
			stages = append(stages, &parsedStage{from: c, node: n})
		case *instructions.ArgCommand:
			if len(stages) == 0 {
				metaArgs = append(metaArgs, c)
				continue
			}
			cur := stages[len(stages)-1]
			cur.cmds, cur.nodes = append(cur.cmds, c), append(cur.nodes, n)
		case instructions.Command:
			if len(stages) == 0 {
				return nil, nil, errorAt(loc, errors.New("no build stage in current context"))
			}
			cur := stages[len(stages)-1]
			cur.cmds, cur.nodes = append(cur.cmds, c), append(cur.nodes, n)
		default:
			return nil, nil, errorAt(loc, fmt.Errorf("%T is not a command type", v))
		}
	}
	return stages, metaArgs, nil
}

// newStage expands FROM and builds the steps of stage i.
func (g *Graph) newStage(lex *shell.Lex, i int, ps *parsedStage) (*Stage, error) {
	st := &Stage{
		Index:    i,
		Name:     ps.from.Name,
		Location: location(g.File, ps.from.Location),
		Original: strings.TrimSpace(ps.node.Original),
		From:     ps.from,
	}
	global := envOf(g.GlobalArgs)
	base, err := lex.ProcessWordWithMatches(ps.from.BaseName, global)
	if err != nil {
		return nil, errorAt(st.Location, fmt.Errorf("expanding base name %s: %w", ps.from.BaseName, err))
	}
	if base.Result == "" {
		return nil, errorAt(st.Location, fmt.Errorf("base name (%s) should not be blank", ps.from.BaseName))
	}
	st.BaseName = base.Result
	if p := ps.from.Platform; p != "" {
		plat, err := lex.ProcessWordWithMatches(p, global)
		if err != nil {
			return nil, errorAt(st.Location, fmt.Errorf("processing arguments for platform %s: %w", p, err))
		}
		if plat.Result == "" {
			return nil, errorAt(st.Location, fmt.Errorf("empty platform value from expression %s", p))
		}
		st.Platform = plat.Result
	}
	// Like BuildKit, FROM only sees stages defined before it, by exact name.
	st.BaseStage = g.byName[st.BaseName]
	if st.Name != "" {
		if _, dup := g.byName[st.Name]; dup {
			g.warn(st.Location.StartLine, fmt.Sprintf("DuplicateStageName: Duplicate stage name %q, stage names should be unique", st.Name))
		}
		g.byName[st.Name] = st
	}

	if st.BaseStage != nil {
		triggers, err := g.baseStageTriggers(st)
		if err != nil {
			return nil, err
		}
		st.Steps = append(st.Steps, triggers...)
	}
	for j, c := range ps.cmds {
		st.Steps = append(st.Steps, g.newStep(c, ps.nodes[j], location(g.File, c.Location())))
	}
	return st, nil
}

// newStep wraps a parsed command.
func (g *Graph) newStep(c instructions.Command, n *parser.Node, loc Location) *Step {
	return &Step{
		Command:  c,
		Original: strings.TrimSpace(n.Original),
		Location: loc,
		node:     n,
		escape:   g.EscapeToken,
	}
}

// readDirectives records the parser directives and warns about the ignored
// syntax directive (this builder always uses its built-in frontend). A
// malformed directive (an escape token other than ` or \, a repeated
// directive) is an error at its line: BuildKit's parser reports those
// without one.
func (g *Graph) readDirectives(src []byte) error {
	var dp parser.DirectiveParser
	sc := bufio.NewScanner(bytes.NewReader(src))
	for line := 1; sc.Scan(); line++ {
		text := sc.Bytes()
		if line == 1 {
			text = bytes.TrimPrefix(text, []byte("\xEF\xBB\xBF")) // a byte-order mark
		}
		d, err := dp.ParseLine(bytes.TrimLeftFunc(text, unicode.IsSpace))
		if err == nil && d != nil && d.Name == "escape" && d.Value != "`" && d.Value != `\` {
			err = fmt.Errorf("invalid escape token '%s' does not match ` or \\", d.Value)
		}
		if err != nil {
			return &Error{File: g.File, StartLine: line, EndLine: line, Err: err}
		}
		if d == nil {
			return nil // the first line that is no directive ends them
		}
		g.Directives[d.Name] = d.Value
		if d.Name == "syntax" {
			g.warn(line, fmt.Sprintf("syntax directive %s ignored", d.Value))
		}
	}
	return nil
}

// resolveTarget sets g.Target from the --target name.
func (g *Graph) resolveTarget(target string) error {
	if target == "" {
		g.Target = g.Stages[len(g.Stages)-1]
		return nil
	}
	if st, ok := g.byName[strings.ToLower(target)]; ok {
		g.Target = st
		return nil
	}
	var names []string
	for _, st := range g.Stages {
		if st.Name != "" {
			names = append(names, st.Name)
		}
	}
	err := suggest.WrapError(fmt.Errorf("target stage %q could not be found", target), target, names, true)
	return &Error{File: g.File, Err: err}
}

// StageByName returns the stage named name (case-insensitive); when several
// stages share a name the last one wins, as for COPY --from.
func (g *Graph) StageByName(name string) (*Stage, bool) {
	st, ok := g.byName[strings.ToLower(name)]
	return st, ok
}

// Needed returns the stages the target transitively needs, the target
// included, dependencies before their dependents. Unused stages are left
// out. Stages that do not depend on each other may be built in parallel.
func (g *Graph) Needed() []*Stage {
	var out []*Stage
	seen := map[*Stage]bool{}
	var visit func(*Stage)
	visit = func(s *Stage) {
		if seen[s] {
			return
		}
		seen[s] = true
		for _, d := range s.Deps {
			visit(d)
		}
		out = append(out, s)
	}
	if g.Target != nil {
		visit(g.Target)
	}
	return out
}

// warn records a warning at line (0 for none).
func (g *Graph) warn(line int, msg string) {
	if line > 0 {
		g.Warnings = append(g.Warnings, fmt.Sprintf("%s:%d: %s", g.File, line, msg))
		return
	}
	g.Warnings = append(g.Warnings, fmt.Sprintf("%s: %s", g.File, msg))
}

// platformArgs returns BuildKit's automatic args for FROM lines, overridden
// by build args of the same name.
func platformArgs(opts Options, target string) []KeyValue {
	bp := opts.BuildPlatform
	if bp.OS == "" {
		bp = platform.Host()
	}
	tp := opts.TargetPlatform
	if tp.OS == "" {
		tp = bp
	}
	if target == "" {
		target = "default"
	}
	args := []KeyValue{
		{"BUILDPLATFORM", FormatPlatform(bp)},
		{"BUILDOS", bp.OS},
		{"BUILDOSVERSION", bp.OSVersion},
		{"BUILDARCH", bp.Architecture},
		{"BUILDVARIANT", bp.Variant},
		{"TARGETPLATFORM", FormatPlatform(tp)},
		{"TARGETOS", tp.OS},
		{"TARGETOSVERSION", tp.OSVersion},
		{"TARGETARCH", tp.Architecture},
		{"TARGETVARIANT", tp.Variant},
		{"TARGETSTAGE", target},
	}
	for i, kv := range args {
		if v, ok := opts.BuildArgs[kv.Key]; ok {
			args[i].Value = v
		}
	}
	return args
}

// FormatPlatform renders p as "os/arch[/variant]", the form of
// TARGETPLATFORM and --platform.
func FormatPlatform(p ocispec.Platform) string { return platform.Format(p) }

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
