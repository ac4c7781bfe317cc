package dockerfile

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func mustParse(t *testing.T, src string, opts Options) *Graph {
	t.Helper()
	if opts.BuildPlatform.OS == "" {
		opts.BuildPlatform = ocispec.Platform{OS: "linux", Architecture: "amd64"}
	}
	g, err := Parse("Dockerfile", []byte(src), opts)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return g
}

// applyAll walks the target stage (and its base stages) with Scope, giving
// image-based stages imageEnv, and returns the resolved steps of the target.
func applyAll(t *testing.T, g *Graph, imageEnv []string) []*Resolved {
	t.Helper()
	scopes := map[*Stage]*Scope{}
	var out []*Resolved
	for _, s := range g.Needed() {
		var sc *Scope
		if s.BaseStage != nil {
			sc = scopes[s.BaseStage].Child()
		} else {
			sc = g.NewScope(imageEnv)
		}
		for _, st := range s.Steps {
			r, err := sc.Apply(st)
			if err != nil {
				t.Fatalf("Apply %s: %v", st.Original, err)
			}
			if s == g.Target {
				out = append(out, r)
			}
		}
		scopes[s] = sc
	}
	return out
}

func TestArgScoping(t *testing.T) {
	arm := ocispec.Platform{OS: "linux", Architecture: "arm64"}
	tests := []struct {
		name     string
		src      string
		opts     Options
		imageEnv []string
		want     string // WORKDIR of the last step after expansion
		wantArgs string // args visible at the last step
	}{
		{
			name: "meta arg not visible in stage",
			src:  "ARG V=1\nFROM alpine\nWORKDIR /x$V\n",
			want: "/x",
		},
		{
			name:     "meta arg redeclared",
			src:      "ARG V=1\nFROM alpine\nARG V\nWORKDIR /x$V\n",
			want:     "/x1",
			wantArgs: "V=1",
		},
		{
			name:     "build arg overrides meta and default",
			src:      "ARG V=1\nFROM alpine\nARG V=2\nWORKDIR /x$V\n",
			opts:     Options{BuildArgs: map[string]string{"V": "3"}},
			want:     "/x3",
			wantArgs: "V=3",
		},
		{
			name:     "stage default expanded with earlier args",
			src:      "FROM alpine\nARG A=a\nARG B=${A}b\nWORKDIR /$B\n",
			want:     "/ab",
			wantArgs: "A=a B=ab",
		},
		{
			name: "undeclared build arg invisible",
			src:  "FROM alpine\nWORKDIR /x$V\n",
			opts: Options{BuildArgs: map[string]string{"V": "3"}},
			want: "/x",
		},
		{
			name: "platform args need declaration in stage",
			src:  "FROM alpine\nWORKDIR /$TARGETARCH\n",
			opts: Options{TargetPlatform: arm},
			want: "/",
		},
		{
			name:     "platform args after ARG",
			src:      "FROM alpine\nARG TARGETARCH\nARG BUILDARCH\nWORKDIR /$TARGETARCH/$BUILDARCH\n",
			opts:     Options{TargetPlatform: arm},
			want:     "/arm64/amd64",
			wantArgs: "TARGETARCH=arm64 BUILDARCH=amd64",
		},
		{
			name: "proxy args are not expanded nor listed",
			src:  "FROM alpine\nWORKDIR /x$HTTP_PROXY\n",
			opts: Options{BuildArgs: map[string]string{"HTTP_PROXY": "http://p"}},
			want: "/x",
		},
		{
			name:     "later ENV overrides ARG",
			src:      "FROM alpine\nARG V=arg\nENV V=env\nWORKDIR /$V\n",
			want:     "/env",
			wantArgs: "V=arg",
		},
		{
			name:     "ENV uses values from before the instruction",
			src:      "FROM alpine\nENV A=1\nENV A=2 B=$A\nWORKDIR /$A$B\n",
			want:     "/21",
			wantArgs: "",
		},
		{
			name:     "image env used lazily",
			src:      "FROM alpine\nARG P=$HOME/bin\nWORKDIR $HOME/app\n",
			imageEnv: []string{"HOME=/home/u"},
			want:     "/home/u/app",
			wantArgs: "P=/home/u/bin",
		},
		{
			name:     "child stage inherits args and env",
			src:      "FROM alpine AS base\nARG V=1\nENV E=e\nFROM base\nWORKDIR /$V$E\n",
			want:     "/1e",
			wantArgs: "V=1",
		},
		{
			name:     "TARGETSTAGE",
			src:      "FROM alpine AS one\nARG TARGETSTAGE\nWORKDIR /$TARGETSTAGE\n",
			want:     "/one",
			wantArgs: "TARGETSTAGE=one",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := mustParse(t, tc.src, tc.opts)
			rs := applyAll(t, g, tc.imageEnv)
			last := rs[len(rs)-1]
			wd, ok := last.Command.(*instructions.WorkdirCommand)
			if !ok {
				t.Fatalf("last command is %T", last.Command)
			}
			if wd.Path != tc.want {
				t.Errorf("WORKDIR = %q, want %q", wd.Path, tc.want)
			}
			var args []string
			for _, a := range last.Args {
				args = append(args, a.String())
			}
			if got := strings.Join(args, " "); got != tc.wantArgs {
				t.Errorf("args = %q, want %q", got, tc.wantArgs)
			}
			if tc.imageEnv == nil {
				// Without image env, the parse-time view agrees with Scope.
				st := g.Target.Steps[len(g.Target.Steps)-1]
				if !reflect.DeepEqual(st.Args, last.Args) {
					t.Errorf("Step.Args = %v, Scope args = %v", st.Args, last.Args)
				}
			}
		})
	}
}

func TestMetaArgsInFrom(t *testing.T) {
	g := mustParse(t, "ARG TAG=3.19\nARG IMG=alpine:${TAG}\nFROM --platform=$TARGETPLATFORM ${IMG} AS a\nFROM a\n", Options{
		TargetPlatform: ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v7"},
		BuildArgs:      map[string]string{"TAG": "edge"},
	})
	a := g.Stages[0]
	if a.BaseName != "alpine:edge" || a.Platform != "linux/arm/v7" {
		t.Errorf("stage a: base %q platform %q", a.BaseName, a.Platform)
	}
	if g.Stages[1].BaseStage != a {
		t.Errorf("FROM a did not resolve to stage a")
	}
	want := []KeyValue{{"TAG", "edge"}, {"IMG", "alpine:edge"}}
	if !reflect.DeepEqual(g.MetaArgs, want) {
		t.Errorf("MetaArgs = %v, want %v", g.MetaArgs, want)
	}
}

func TestProxyEnv(t *testing.T) {
	g := mustParse(t, "FROM alpine\nRUN env\n", Options{BuildArgs: map[string]string{"https_proxy": "http://p:1", "NO_PROXY": "local"}})
	want := []KeyValue{{"HTTPS_PROXY", "http://p:1"}, {"https_proxy", "http://p:1"}, {"NO_PROXY", "local"}, {"no_proxy", "local"}}
	if !reflect.DeepEqual(g.ProxyEnv, want) {
		t.Errorf("ProxyEnv = %v, want %v", g.ProxyEnv, want)
	}
	for _, w := range g.Warnings {
		if strings.Contains(w, "not consumed") {
			t.Errorf("proxy args reported unused: %s", w)
		}
	}
}

func TestRunNotExpanded(t *testing.T) {
	g := mustParse(t, "FROM alpine\nARG DIR=/cache\nRUN --mount=type=cache,target=$DIR echo $DIR\n", Options{})
	rs := applyAll(t, g, nil)
	run := rs[1].Command.(*instructions.RunCommand)
	if run.CmdLine[0] != "echo $DIR" {
		t.Errorf("RUN command line expanded: %q", run.CmdLine)
	}
	if m := instructions.GetMounts(run); len(m) != 1 || m[0].Target != "/cache" || m[0].Type != instructions.MountTypeCache {
		t.Errorf("mount not expanded: %+v", m[0])
	}
	if !contains(rs[1].Env, "DIR=/cache") || !contains(rs[1].Env, "PATH="+DefaultPathEnv) {
		t.Errorf("RUN env = %v", rs[1].Env)
	}
}

func TestHeredocExpansion(t *testing.T) {
	src := "FROM alpine\nARG NAME=world\nCOPY <<EOF /a\nhello $NAME\nEOF\nCOPY <<'EOF' /b\nhello $NAME\nEOF\n"
	g := mustParse(t, src, Options{})
	rs := applyAll(t, g, nil)
	a := rs[1].Command.(*instructions.CopyCommand).SourceContents[0]
	b := rs[2].Command.(*instructions.CopyCommand).SourceContents[0]
	if a.Data != "hello world\n" || b.Data != "hello $NAME\n" {
		t.Errorf("heredoc bodies %q %q", a.Data, b.Data)
	}
	// The parsed step is untouched.
	if d := g.Target.Steps[1].Command.(*instructions.CopyCommand).SourceContents[0].Data; d != "hello $NAME\n" {
		t.Errorf("Step.Command mutated: %q", d)
	}
}

func TestStepExpanded(t *testing.T) {
	g := mustParse(t, "FROM alpine\nCOPY --chmod=$M --chown=$U a /dst/$D/\n", Options{})
	st := g.Target.Steps[0]
	c, err := st.Expanded([]string{"M=0755", "U=1000:1000", "D=x"})
	if err != nil {
		t.Fatal(err)
	}
	cp := c.(*instructions.CopyCommand)
	if cp.Chmod != "0755" || cp.Chown != "1000:1000" || cp.DestPath != "/dst/x/" {
		t.Errorf("expanded COPY = %+v", cp)
	}
	if st.Command.(*instructions.CopyCommand).Chmod != "$M" {
		t.Error("Step.Command mutated")
	}
	_, err = st.Expanded([]string{"M=99999"})
	var de *Error
	if !errors.As(err, &de) || de.StartLine != 2 || !strings.Contains(err.Error(), "invalid chmod parameter") {
		t.Errorf("bad chmod error = %v", err)
	}
	if _, err := st.Expanded([]string{"M=u+x,go-w"}); err != nil {
		t.Errorf("symbolic chmod rejected: %v", err)
	}
}

func TestChownByNameWithLink(t *testing.T) {
	g := mustParse(t, "FROM alpine\nCOPY --link --chown=app a /b\n", Options{})
	if _, err := g.NewScope(nil).Apply(g.Target.Steps[0]); err == nil || !strings.Contains(err.Error(), "--link") {
		t.Errorf("error = %v", err)
	}
}

func TestParseTriggers(t *testing.T) {
	g := mustParse(t, "FROM alpine AS tools\nRUN true\n\nFROM node:20\nRUN echo child\n", Options{})
	steps, err := g.ParseTriggers(g.Target, []string{"COPY --from=tools /a /b", "RUN echo $X"})
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 2 || !steps[0].Trigger || steps[0].FromStage != g.Stages[0] {
		t.Fatalf("triggers = %+v", steps)
	}
	if steps[1].Location.StartLine != 4 {
		t.Errorf("trigger location = %v, want FROM line 4", steps[1].Location)
	}
	sc := g.NewScope(nil)
	for _, st := range append(steps, g.Target.Steps...) {
		if _, err := sc.Apply(st); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := g.ParseTriggers(g.Target, []string{"RUNN x"}); err == nil || !strings.Contains(err.Error(), "Dockerfile:4:") {
		t.Errorf("bad trigger error = %v", err)
	}
}

func TestErrorUnwrap(t *testing.T) {
	_, err := Parse("sub/Dockerfile.dev", []byte("FROM alpine\nRUNN x\n"), Options{})
	var ui *instructions.UnknownInstructionError
	if !errors.As(err, &ui) {
		t.Fatalf("error %v does not unwrap to UnknownInstructionError", err)
	}
	if got, want := err.Error(), "sub/Dockerfile.dev:2: unknown instruction: RUNN (did you mean RUN?)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestNeededParallel(t *testing.T) {
	src := "FROM alpine AS a\nFROM alpine AS b\nFROM alpine AS unused\nFROM scratch\nCOPY --from=a / /\nCOPY --from=b / /\n"
	g := mustParse(t, src, Options{})
	var names []string
	for _, s := range g.Needed() {
		names = append(names, s.DisplayName())
	}
	if got := strings.Join(names, " "); got != "a b stage-3" {
		t.Errorf("Needed = %s", got)
	}
	a, b := g.Stages[0], g.Stages[1]
	if len(a.Deps) != 0 || len(b.Deps) != 0 {
		t.Errorf("a and b should be independent: %v %v", a.Deps, b.Deps)
	}
	if !g.Target.IsScratch() {
		t.Error("target should be scratch")
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestRunArgs(t *testing.T) {
	src := "FROM alpine\nRUN echo hi\nRUN [\"ls\", \"-l\"]\nRUN <<EOF\necho body\nEOF\nRUN <<-EOF\n\t#!/usr/bin/env python3\n\tprint(1)\n\tEOF\nRUN cat <<A\nx\nA\n"
	g := mustParse(t, src, Options{})
	want := [][]string{
		{"/bin/sh", "-c", "echo hi"},
		{"ls", "-l"},
		{"/bin/sh", "-c", "echo body\n"},
		{"/dev/pipes/EOF"},
		{"/bin/sh", "-c", "cat <<A\nx\nA"},
	}
	for i, st := range g.Target.Steps {
		args, script, err := RunArgs(st.Command.(*instructions.RunCommand), nil)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(args, want[i]) {
			t.Errorf("step %d: args %q, want %q", i, args, want[i])
		}
		if (script != nil) != (i == 3) || (script != nil && script.Data != "#!/usr/bin/env python3\nprint(1)\n") {
			t.Errorf("step %d: script %+v", i, script)
		}
	}
}
