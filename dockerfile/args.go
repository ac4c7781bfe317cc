package dockerfile

import (
	"fmt"
	"sort"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// proxyArgs are the predefined args usable without declaration, matched
// case-insensitively, in BuildKit's order.
var proxyArgs = []string{"HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY"}

// nonEnvArgs are args BuildKit keeps out of RUN's environment.
var nonEnvArgs = map[string]bool{
	"BUILDKIT_SBOM_SCAN_CONTEXT": true,
	"BUILDKIT_SBOM_SCAN_STAGE":   true,
}

// buildMetaArgs resolves the ARGs before the first FROM: a --build-arg wins,
// else the default expanded against the args so far (platform args and
// earlier meta args). It sets g.MetaArgs and g.GlobalArgs.
func (g *Graph) buildMetaArgs(lex *shell.Lex, global []KeyValue, metaArgs []*instructions.ArgCommand) error {
	for _, cmd := range metaArgs {
		loc := location(g.File, cmd.Location())
		for _, kv := range cmd.Args {
			var value string
			if v, ok := g.BuildArgs[kv.Key]; ok {
				value = v
			} else if kv.Value != nil {
				res, err := lex.ProcessWordWithMatches(*kv.Value, envOf(global))
				if err != nil {
					return errorAt(loc, fmt.Errorf("expanding ARG %s: %w", kv.Key, err))
				}
				value = res.Result
			} else {
				continue
			}
			global = setKV(global, kv.Key, value)
			g.MetaArgs = setKV(g.MetaArgs, kv.Key, value)
		}
	}
	g.GlobalArgs = global
	return nil
}

// proxyEnv returns the proxy build args as RUN environment entries, both
// upper- and lower-case as BuildKit's executor sets them.
func proxyEnv(buildArgs map[string]string) []KeyValue {
	keys := make([]string, 0, len(buildArgs))
	for k := range buildArgs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	values := map[string]string{}
	for _, k := range keys {
		for _, p := range proxyArgs {
			if strings.EqualFold(k, p) {
				values[p] = buildArgs[k]
			}
		}
	}
	var out []KeyValue
	for _, p := range proxyArgs {
		if v := values[p]; v != "" {
			out = append(out, KeyValue{p, v}, KeyValue{strings.ToLower(p), v})
		}
	}
	return out
}

// isPredefinedArg reports whether name needs no declaration to be a valid
// build arg (proxy args and the automatic platform args).
func isPredefinedArg(name string) bool {
	for _, p := range proxyArgs {
		if strings.EqualFold(name, p) {
			return true
		}
	}
	switch name {
	case "BUILDPLATFORM", "BUILDOS", "BUILDOSVERSION", "BUILDARCH", "BUILDVARIANT",
		"TARGETPLATFORM", "TARGETOS", "TARGETOSVERSION", "TARGETARCH", "TARGETVARIANT", "TARGETSTAGE":
		return true
	}
	return strings.HasPrefix(name, "BUILDKIT_") || name == "SOURCE_DATE_EPOCH"
}

// computeStepArgs fills Step.Args with a lenient parse-time walk of every
// stage, assuming base images define no environment.
func (g *Graph) computeStepArgs() {
	final := make([]*Scope, len(g.Stages))
	for _, s := range g.Stages {
		var sc *Scope
		if s.BaseStage != nil && final[s.BaseStage.Index] != nil {
			sc = final[s.BaseStage.Index].Child()
		} else {
			sc = g.NewScope(nil)
		}
		sc.lenient = true
		for _, st := range s.Steps {
			st.Args = cloneKVs(sc.args)
			_, _ = sc.Apply(st) // lenient: expansion errors surface at build time
		}
		final[s.Index] = sc
	}
}

// warnUnusedBuildArgs warns about --build-arg values that no needed stage
// and no meta ARG declares, like Docker's "were not consumed" warning.
func (g *Graph) warnUnusedBuildArgs(needed []*Stage) {
	declared := map[string]bool{}
	for _, kv := range g.MetaArgs {
		declared[kv.Key] = true
	}
	for _, s := range needed {
		for _, st := range s.Steps {
			if a, ok := st.Command.(*instructions.ArgCommand); ok {
				for _, kv := range a.Args {
					declared[kv.Key] = true
				}
			}
		}
	}
	var unused []string
	for k := range g.BuildArgs {
		if !declared[k] && !isPredefinedArg(k) {
			unused = append(unused, k)
		}
	}
	if len(unused) > 0 {
		sort.Strings(unused)
		g.warn(0, fmt.Sprintf("one or more build-args %v were not consumed", unused))
	}
}

// envOf returns kvs as a shell environment; later entries win.
func envOf(kvs []KeyValue) shell.EnvGetter {
	env := make([]string, len(kvs))
	for i, kv := range kvs {
		env[i] = kv.String()
	}
	return shell.EnvsFromSlice(env)
}

// setKV sets key in kvs, in place when present, else appended.
func setKV(kvs []KeyValue, key, value string) []KeyValue {
	for i := range kvs {
		if kvs[i].Key == key {
			kvs[i].Value = value
			return kvs
		}
	}
	return append(kvs, KeyValue{key, value})
}

// setEnv sets key in a "KEY=value" list, in place when present.
func setEnv(env []string, key, value string) []string {
	for i, e := range env {
		k, _, _ := strings.Cut(e, "=")
		if shell.EqualEnvKeys(k, key) {
			env[i] = key + "=" + value
			return env
		}
	}
	return append(env, key+"="+value)
}

func cloneKVs(kvs []KeyValue) []KeyValue {
	if len(kvs) == 0 {
		return nil
	}
	return append([]KeyValue(nil), kvs...)
}
