// Package dockerfile turns Dockerfile bytes into a step graph: stages, their
// dependency edges (FROM <stage>, COPY --from, RUN --mount from=), the stage
// the build targets and the stages it transitively needs. It also reads and
// evaluates .dockerignore files.
//
// Parsing is delegated to BuildKit's frontend packages (parser, instructions
// and shell), so instruction syntax, flags, heredocs, directives and word
// expansion behave exactly as in Docker. This package adds what BuildKit's
// LLB converter does around them: ARG scoping, stage resolution, target
// pruning, cycle detection and validation of flags the builder cannot honour.
//
// # Expansion contract
//
// Step.Command is the instruction exactly as parsed: nothing is expanded,
// because word expansion needs the environment of the base image, which is
// only known when the builder has pulled it. At build time the builder walks
// every needed stage with a [Scope]:
//
//	scope := g.NewScope(stage, parentScope, baseImageConfig.Env)
//	for _, st := range stage.Steps {
//		r, err := scope.Apply(st)   // expands a fresh copy, updates ENV/ARG state
//		// r.Command: expanded typed command (RUN command lines are never
//		//            expanded: the shell does that at run time)
//		// r.Args:    build args visible at this step (RUN env, cache key)
//		// r.Env:     environment for RUN and for expansion (image env, ENV, ARG)
//	}
//
// Steps carry a parse-time view of the visible build args too (Step.Args),
// computed as if the base image had no environment; Scope.Apply is the
// authoritative value. Step.Expanded expands a fresh copy of one step with an
// explicit environment for callers that track the environment themselves.
//
// Build args follow BuildKit's scoping: ARGs before the first FROM (meta
// args) and the automatic platform args (TARGETPLATFORM, BUILDARCH, ...) are
// visible in FROM lines only; inside a stage an ARG must be declared to be
// visible, and a declaration without a default takes the --build-arg value or
// the meta/platform value. A stage built FROM another stage inherits that
// stage's environment and declared args. The proxy args (HTTP_PROXY, ...)
// need no declaration: their --build-arg values are in Graph.ProxyEnv, to be
// added to RUN's environment but kept out of history and cache keys.
//
// # Errors
//
// Every error about the Dockerfile is an *Error carrying the file name and
// line range; Error() reads "Dockerfile:7: unknown instruction: RUNN (did you
// mean RUN?)".
package dockerfile
