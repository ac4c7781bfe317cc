package builder

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/builder-project/builder/cache"
	"github.com/builder-project/builder/dockerfile"
	"github.com/builder-project/builder/internal/platform"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	digest "github.com/opencontainers/go-digest"
)

// The tests in this file prove that a step's cache key covers every field
// of the buildkit commands the plans execute: each field of RunCommand,
// CopyCommand, AddCommand and of every RUN --mount type is changed in
// turn, and the step's key must change with it, or its plan must refuse
// the value. A field added to buildkit later fails here until the plan
// either keys on it or refuses it, so it can never be silently left out
// and give a wrong cache hit. None of these tests need root.

// planFixture is a parsed Dockerfile with a context and a store, ready to
// resolve steps into plans without running anything.
type planFixture struct {
	bd *build
	g  *dockerfile.Graph
}

func newPlanFixture(t *testing.T, src string, opts BuildOptions) *planFixture {
	t.Helper()
	ctxDir := t.TempDir()
	for name, body := range map[string]string{"a": "a", "ax": "ax", "sub/f": "f", "subx/f": "g", "a.tar": "not a tar"} {
		p := filepath.Join(ctxDir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	g, err := dockerfile.Parse("Dockerfile", []byte(src), dockerfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	opts.ContextDir = ctxDir
	if opts.Network == "" {
		opts.Network = "default"
	}
	bd := &build{b: newTestBuilder(t), opts: opts, g: g, target: platform.Host(), results: map[*dockerfile.Stage]*stageResult{}}
	if bd.ignore, err = dockerfile.NewIgnore(nil); err != nil {
		t.Fatal(err)
	}
	for _, s := range g.Stages {
		bd.results[s] = &stageResult{key: digest.FromString("stage " + s.Name)}
	}
	return &planFixture{bd: bd, g: g}
}

// key resolves the last step of the target stage, changed by mutate, and
// returns its cache key or the plan's error.
func (f *planFixture) key(t *testing.T, mutate func(instructions.Command)) (digest.Digest, error) {
	t.Helper()
	s := f.g.Target
	res := &stageResult{scope: f.g.NewScope(nil), key: digest.FromString("parent"), platform: platform.Host()}
	var r *dockerfile.Resolved
	for _, st := range s.Steps {
		var err error
		if r, err = res.scope.Apply(st); err != nil {
			t.Fatal(err)
		}
	}
	if mutate != nil {
		mutate(r.Command)
	}
	p, err := f.bd.newPlan(context.Background(), res, r)
	if err != nil {
		return "", err
	}
	in := p.key()
	in.Parent, in.Platform = res.key, dockerfile.FormatPlatform(res.platform)
	return cache.Key(in), nil
}

// fieldPath names one settable value inside a command: struct field names
// and slice indexes, from the command struct down.
type fieldPath []string

func (p fieldPath) String() string { return strings.Join(p, ".") }

// leaves lists the paths of every exported field below v, recursing into
// structs (embedded ones too) and into the elements of slices, which are
// also leaves themselves (a new element can be appended).
func leaves(v reflect.Value, prefix fieldPath) []fieldPath {
	var out []fieldPath
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() || v.Elem().Kind() != reflect.Struct {
			return []fieldPath{prefix}
		}
		return leaves(v.Elem(), prefix)
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			if !f.IsExported() {
				continue // unexported: buildkit's own bookkeeping, see TestRunExternalDataIsKeyed
			}
			out = append(out, leaves(v.Field(i), append(append(fieldPath{}, prefix...), f.Name))...)
		}
		return out
	case reflect.Slice:
		out = append(out, prefix)
		for i := 0; i < v.Len(); i++ {
			out = append(out, leaves(v.Index(i), append(append(fieldPath{}, prefix...), strconv.Itoa(i)))...)
		}
		return out
	}
	return []fieldPath{prefix}
}

// at follows p from v.
func at(v reflect.Value, p fieldPath) reflect.Value {
	for _, name := range p {
		for v.Kind() == reflect.Pointer {
			v = v.Elem()
		}
		if i, err := strconv.Atoi(name); err == nil {
			v = v.Index(i)
		} else {
			v = v.FieldByName(name)
		}
	}
	return v
}

// change gives v another value of its type.
func change(t *testing.T, v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		v.SetString(v.String() + "x")
	case reflect.Bool:
		v.SetBool(!v.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(v.Int() + 1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(v.Uint() + 1)
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
			if v.Elem().Kind() == reflect.Bool {
				return // nil and false differ for an optional flag
			}
		}
		change(t, v.Elem())
	case reflect.Slice:
		e := reflect.New(v.Type().Elem()).Elem()
		if e.Kind() == reflect.Struct {
			for i := 0; i < e.NumField(); i++ {
				if e.Field(i).CanSet() {
					change(t, e.Field(i))
				}
			}
		} else {
			change(t, e)
		}
		v.Set(reflect.Append(v, e))
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Field(i).CanSet() {
				change(t, v.Field(i))
			}
		}
	default:
		t.Fatalf("no way to change a %s", v.Type())
	}
}

// assertEveryFieldKeyed changes, one at a time, every field below the
// value get returns from the command, and requires a new key or an error.
func assertEveryFieldKeyed(t *testing.T, f *planFixture, name string, get func(instructions.Command) reflect.Value) {
	t.Helper()
	base, err := f.key(t, nil)
	if err != nil {
		t.Fatalf("%s: base plan: %v", name, err)
	}
	var paths []fieldPath
	f.key(t, func(c instructions.Command) { paths = leaves(get(c), nil) })
	if len(paths) == 0 {
		t.Fatalf("%s: no fields found", name)
	}
	for _, p := range paths {
		got, err := f.key(t, func(c instructions.Command) { change(t, at(get(c), p)) })
		switch {
		case err != nil:
			t.Logf("%s.%s: refused: %v", name, p, err)
		case got == base:
			t.Errorf("%s.%s: changing it does not change the cache key", name, p)
		}
	}
	t.Logf("%s: %d fields checked", name, len(paths))
}

func commandValue(c instructions.Command) reflect.Value { return reflect.ValueOf(c) }

const keyedBase = "FROM scratch AS base\nFROM scratch\n"

func TestKeyCoversRunCommand(t *testing.T) {
	for name, line := range map[string]string{
		"shell":   "RUN echo hi",
		"exec":    `RUN ["echo", "hi"]`,
		"heredoc": "RUN <<EOF\necho hi\nEOF",
		"script":  "RUN <<EOF\n#!/bin/sh\necho hi\nEOF",
	} {
		t.Run(name, func(t *testing.T) {
			f := newPlanFixture(t, keyedBase+line+"\n", BuildOptions{})
			assertEveryFieldKeyed(t, f, "RunCommand", commandValue)
		})
	}
}

func TestKeyCoversCopyCommand(t *testing.T) {
	for name, line := range map[string]string{
		"context": "COPY --chown=1:1 --chmod=644 --link --exclude=*.tmp --parents a /dst/",
		"stage":   "COPY --from=base --chown=1:1 --chmod=644 --exclude=*.tmp a /dst/",
		"heredoc": "COPY <<EOF /h\nbody\nEOF",
	} {
		t.Run(name, func(t *testing.T) {
			f := newPlanFixture(t, keyedBase+line+"\n", BuildOptions{})
			assertEveryFieldKeyed(t, f, "CopyCommand", commandValue)
		})
	}
}

func TestKeyCoversAddCommand(t *testing.T) {
	for name, line := range map[string]string{
		"context": "ADD --chown=1:1 --chmod=644 --link --exclude=*.tmp a.tar /dst/",
		"heredoc": "ADD <<EOF /h\nbody\nEOF",
	} {
		t.Run(name, func(t *testing.T) {
			f := newPlanFixture(t, keyedBase+line+"\n", BuildOptions{})
			assertEveryFieldKeyed(t, f, "AddCommand", commandValue)
		})
	}
}

func TestKeyCoversRunMounts(t *testing.T) {
	for typ, mount := range map[string]string{
		"bind":       "type=bind,source=sub,target=/ctx",
		"bind-rw":    "type=bind,source=sub,target=/ctx,rw",
		"bind-stage": "type=bind,from=base,source=/,target=/b",
		"cache":      "type=cache,target=/cache,id=c1,sharing=locked,mode=0755,uid=1,gid=1",
		"tmpfs":      "type=tmpfs,target=/tmp,size=1m",
		"secret":     "type=secret,id=tok,target=/run/t,required=true,env=TOK,mode=0400,uid=1,gid=1",
	} {
		t.Run(typ, func(t *testing.T) {
			f := newPlanFixture(t, keyedBase+"RUN --mount="+mount+" echo hi\n", BuildOptions{})
			assertEveryFieldKeyed(t, f, "Mount", func(c instructions.Command) reflect.Value {
				return reflect.ValueOf(instructions.GetMounts(c.(*instructions.RunCommand))[0])
			})
		})
	}
}

// TestRunExternalDataIsKeyed covers what reflection cannot reach: buildkit
// keeps RUN's --mount, --network, --security and --device in an
// unexported table. Every entry of that table must be one this test knows
// to be keyed (or refused by the dockerfile package), and the network
// (from the flag or the build's default) must be in the key.
func TestRunExternalDataIsKeyed(t *testing.T) {
	f := newPlanFixture(t, keyedBase+"RUN echo hi\n", BuildOptions{})
	r, err := f.g.NewScope(nil).Apply(f.g.Target.Steps[0])
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]string{
		"dockerfile/run/mounts":   "keyed: TestKeyCoversRunMounts",
		"dockerfile/run/network":  "keyed: below",
		"dockerfile/run/security": "keyed as a flag; insecure is refused by the dockerfile package",
		"dockerfile/run/devices":  "refused by the dockerfile package",
	}
	table := reflect.ValueOf(r.Command).Elem().FieldByName("withExternalData").FieldByName("m")
	var keys []string
	for _, k := range table.MapKeys() {
		keys = append(keys, fmt.Sprint(k))
	}
	sort.Strings(keys)
	for _, k := range keys {
		if _, ok := known[k]; !ok {
			t.Errorf("RUN keeps %q, which the cache key does not cover: key it in runPlan or refuse it in the dockerfile package", k)
		}
	}
	if len(keys) == 0 {
		t.Fatal("found no external data: the reflection path is stale")
	}

	// The network a step runs on must be in its key, whether it comes from
	// the flag or from the build's default (--network).
	keys2 := map[string]digest.Digest{}
	for name, c := range map[string]struct{ line, network string }{
		"flag none":    {"RUN --network=none echo hi", ""},
		"flag host":    {"RUN --network=host echo hi", ""},
		"default":      {"RUN echo hi", "default"},
		"build none":   {"RUN echo hi", "none"},
		"build host":   {"RUN echo hi", "host"},
		"flag default": {"RUN --network=default echo hi", "none"},
	} {
		f := newPlanFixture(t, keyedBase+c.line+"\n", BuildOptions{Network: c.network})
		k, err := f.key(t, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		keys2[name] = k
	}
	for _, p := range [][2]string{{"default", "build none"}, {"default", "build host"}, {"build none", "build host"}, {"flag none", "flag host"}, {"flag default", "default"}} {
		if keys2[p[0]] == keys2[p[1]] {
			t.Errorf("%s and %s run on different networks but share a key", p[0], p[1])
		}
	}
}
