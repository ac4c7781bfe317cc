package dockerfile

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

// checkCycles rejects dependency cycles between stages (COPY --from itself,
// two stages copying from each other, ...), located at the instruction that
// closes the cycle.
func (g *Graph) checkCycles() error {
	done := map[*Stage]bool{}
	onPath := map[*Stage]bool{}
	var visit func(s *Stage) (closing *Stage, via *Stage)
	visit = func(s *Stage) (*Stage, *Stage) {
		if done[s] {
			return nil, nil
		}
		done[s] = true
		onPath[s] = true
		defer delete(onPath, s)
		for _, d := range s.Deps {
			if onPath[d] {
				return s, d
			}
			if c, v := visit(d); c != nil {
				return c, v
			}
		}
		return nil, nil
	}
	for _, root := range g.Stages {
		if from, to := visit(root); from != nil {
			err := fmt.Errorf("circular dependency detected on stage: %s", root.DisplayName())
			return errorAt(edgeLocation(from, to), err)
		}
	}
	return nil
}

// edgeLocation is the location of the instruction that makes from depend on
// to: the first step reading from it, else the FROM line.
func edgeLocation(from, to *Stage) Location {
	for _, st := range from.Steps {
		for _, src := range st.Sources() {
			if src == to {
				return st.Location
			}
		}
	}
	return from.Location
}

// checkOrder rejects, in the stages to build, COPY --from and RUN --mount
// from= that refer to a stage defined later in the file, as BuildKit does
// when it dispatches stages in file order.
func (g *Graph) checkOrder(needed []*Stage) error {
	for _, s := range needed {
		for _, st := range s.Steps {
			if st.FromStage != nil && st.FromStage.Index >= s.Index {
				from := st.Command.(*instructions.CopyCommand).From
				return errorAt(st.Location, fmt.Errorf("cannot copy from stage %q, it needs to be defined before current stage %q", from, s.DisplayName()))
			}
			for _, m := range st.Mounts {
				if m.Stage != nil && m.Stage.Index >= s.Index {
					return errorAt(st.Location, fmt.Errorf("cannot mount from stage %q to %q, stage needs to be defined before current command", m.From, mountTarget(st, m.Index)))
				}
			}
		}
	}
	return nil
}

// mountTarget returns the target= of mount i of a RUN step as written.
func mountTarget(st *Step, i int) string {
	c, err := st.fresh()
	if err != nil {
		return ""
	}
	run, ok := c.(*instructions.RunCommand)
	if !ok || run.Expand(func(w string) (string, error) { return w, nil }) != nil {
		return ""
	}
	if ms := instructions.GetMounts(run); i < len(ms) {
		return ms[i].Target
	}
	return ""
}

// checkSupported rejects valid Dockerfile features this builder cannot
// honour, so that they never become silent no-ops.
func (g *Graph) checkSupported(stages []*Stage) error {
	for _, s := range stages {
		for _, st := range s.Steps {
			run, ok := st.Command.(*instructions.RunCommand)
			if !ok {
				continue
			}
			if instructions.GetSecurity(run) == instructions.SecurityInsecure {
				return errorAt(st.Location, errors.New("RUN --security=insecure is not supported"))
			}
			if len(instructions.GetDevices(run)) > 0 {
				return errorAt(st.Location, errors.New("RUN --device is not supported"))
			}
			if err := checkMounts(st); err != nil {
				return errorAt(st.Location, err)
			}
			switch n := instructions.GetNetwork(run); n {
			case instructions.NetworkDefault, instructions.NetworkNone, instructions.NetworkHost:
			default:
				return errorAt(st.Location, fmt.Errorf("unsupported network mode %q", n))
			}
		}
	}
	return nil
}

// checkMounts validates the --mount options of a RUN step at parse time
// when they contain no variables (otherwise Scope.Apply validates them once
// expanded): unknown mount types, keys and values are reported early.
func checkMounts(st *Step) error {
	if st.node == nil || strings.Contains(strings.Join(st.node.Flags, " "), "$") {
		return nil
	}
	c, err := st.fresh()
	if err != nil {
		return err
	}
	if run, ok := c.(*instructions.RunCommand); ok {
		return run.Expand(func(w string) (string, error) { return w, nil })
	}
	return nil
}

// validateExpanded checks the flags BuildKit validates once they are
// expanded: --chmod, --chown with --link, ADD --checksum.
func validateExpanded(c instructions.Command) error {
	var chmod, chown string
	var link bool
	switch c := c.(type) {
	case *instructions.CopyCommand:
		chmod, chown, link = c.Chmod, c.Chown, c.Link
	case *instructions.AddCommand:
		chmod, chown, link = c.Chmod, c.Chown, c.Link
		if c.Checksum != "" {
			if len(c.SourcePaths) != 1 {
				return errors.New("checksum can't be specified for multiple sources")
			}
			if !IsHTTPSource(c.SourcePaths[0]) && !IsGitSource(c.SourcePaths[0]) {
				return errors.New("checksum requires HTTP(S) or Git sources")
			}
		}
	default:
		return nil
	}
	if chown != "" && link && chownByName(chown) {
		return fmt.Errorf("--chown=%s: user and group names can't be resolved when used with --link, use numeric uid[:gid] instead", chown)
	}
	if chmod != "" {
		if _, _, err := ParseChmod(chmod); err != nil {
			return err
		}
	}
	return nil
}

// symbolicMode matches chmod(1) symbolic modes such as "u+x,go-w" or "a=rX".
var symbolicMode = regexp.MustCompile(`^([ugoa]*([-+=]([rwxXst]*|[ugo]))+)(,[ugoa]*([-+=]([rwxXst]*|[ugo]))+)*$`)

// ParseChmod validates a --chmod value. An octal value (at most 07777) is
// returned as mode; a symbolic one (chmod(1) syntax, e.g. "u+x,g-w") is
// returned as symbolic, for the builder to apply to each file's mode.
func ParseChmod(s string) (mode uint32, symbolic string, err error) {
	nonOctal := fmt.Errorf("invalid chmod parameter: '%v'. it should be octal string and between 0 and 07777", s)
	if p, err := strconv.ParseUint(s, 8, 32); err == nil {
		if p > 0o7777 {
			return 0, "", nonOctal
		}
		return uint32(p), "", nil
	}
	if s != "" && s[0] >= '0' && s[0] <= '9' {
		return 0, "", nonOctal
	}
	if !symbolicMode.MatchString(s) {
		return 0, "", fmt.Errorf("invalid chmod parameter: %q: not an octal or symbolic mode", s)
	}
	return 0, s, nil
}

// chownByName reports whether a --chown value names a user or group rather
// than giving numeric IDs.
func chownByName(chown string) bool {
	user, group, _ := strings.Cut(chown, ":")
	return !isNumeric(user) || (group != "" && !isNumeric(group))
}

func isNumeric(s string) bool {
	_, err := strconv.ParseUint(s, 10, 32)
	return err == nil
}

// scpLikeGit matches scp-like Git remotes such as "git@github.com:org/repo".
var scpLikeGit = regexp.MustCompile(`^[A-Za-z0-9_.-]+@[A-Za-z0-9_.-]+:`)

// IsGitSource reports whether an ADD source is a Git repository: a git://
// or ssh:// URL, an scp-like "user@host:path", a "github.com/..." path, or
// an HTTP(S) URL whose path ends in ".git" (an optional "#ref:subdir"
// fragment aside), following BuildKit's rules.
func IsGitSource(src string) bool {
	switch {
	case strings.HasPrefix(src, "./"), strings.HasPrefix(src, "../"):
		return false
	case strings.HasPrefix(src, "git://"), strings.HasPrefix(src, "ssh://"),
		strings.HasPrefix(src, "github.com/"), scpLikeGit.MatchString(src):
		return true
	case strings.HasPrefix(src, "http://"), strings.HasPrefix(src, "https://"):
		u, err := url.Parse(src)
		return err == nil && strings.HasSuffix(u.Path, ".git")
	}
	return false
}

// IsHTTPSource reports whether an ADD source is an HTTP(S) URL that is not
// a Git repository.
func IsHTTPSource(src string) bool {
	if !strings.HasPrefix(src, "http://") && !strings.HasPrefix(src, "https://") {
		return false
	}
	return !IsGitSource(src)
}
