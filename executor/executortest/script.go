package executortest

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/builder-project/builder/executor"
	securejoin "github.com/cyphar/filepath-securejoin"
)

// Script is the default Handler. It interprets the command line of a RUN
// step (the argument of "sh -c", or the exec-form words) as a tiny shell:
// commands separated by ";", "&&" or newlines, words in single or double
// quotes, $NAME and ${NAME} from the step's environment, and ">" / ">>"
// redirection of stdout into a file. It knows echo, cat, touch, mkdir [-p],
// rm [-rf], sleep, env, true, false and exit; any other command exits 127.
// Paths are resolved inside root, relative ones against the working dir;
// a path below a bind mount's destination is resolved in its source.
func Script(ctx context.Context, s executor.Spec, root string, stdio executor.IO) error {
	line := strings.Join(s.Args, " ")
	if len(s.Args) >= 3 && path.Base(s.Args[0]) == "sh" && s.Args[1] == "-c" {
		line = s.Args[2]
	}
	sh := &shell{ctx: ctx, root: root, cwd: s.Cwd, env: s.Env, mounts: s.Mounts, stdout: orDiscard(stdio.Stdout), stderr: orDiscard(stdio.Stderr)}
	if sh.cwd == "" {
		sh.cwd = "/"
	}
	toks, err := tokenize(line, sh.lookup)
	if err != nil {
		return err
	}
	code := 0
	var cmd []string
	skip := false
	flush := func() {
		if len(cmd) > 0 && !skip {
			code = sh.run(cmd)
		}
		cmd = nil
	}
	for _, t := range toks {
		switch t {
		case ";", "\n":
			flush()
			skip = false
		case "&&":
			flush()
			skip = skip || code != 0
		default:
			cmd = append(cmd, t)
		}
		if sh.exited {
			break
		}
	}
	if !sh.exited {
		flush()
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if code != 0 {
		return &executor.ExitError{Code: code}
	}
	return nil
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

type shell struct {
	ctx            context.Context
	root, cwd      string
	env            []string
	mounts         []executor.Mount
	stdout, stderr io.Writer
	exited         bool
}

func (sh *shell) lookup(name string) string {
	for i := len(sh.env) - 1; i >= 0; i-- {
		if k, v, _ := strings.Cut(sh.env[i], "="); k == name {
			return v
		}
	}
	return ""
}

// path resolves a container path inside the root, or inside the source of
// the bind mount it is below (the last such mount wins, as it would be
// mounted on top).
func (sh *shell) path(p string) (string, error) {
	if !path.IsAbs(p) {
		p = path.Join(sh.cwd, p)
	}
	p = path.Clean(p)
	for i := len(sh.mounts) - 1; i >= 0; i-- {
		m := sh.mounts[i]
		if m.Type != "bind" {
			continue
		}
		if rel, ok := strings.CutPrefix(p, path.Clean(m.Destination)); ok && (rel == "" || rel[0] == '/') {
			if rel == "" {
				return m.Source, nil
			}
			return securejoin.SecureJoin(m.Source, rel)
		}
	}
	return securejoin.SecureJoin(sh.root, p)
}

// run executes one command and returns its exit status.
func (sh *shell) run(words []string) int {
	out := sh.stdout
	for i := 0; i < len(words)-1; i++ {
		if words[i] != ">" && words[i] != ">>" {
			continue
		}
		p, err := sh.path(words[i+1])
		if err != nil {
			fmt.Fprintln(sh.stderr, "sh:", err)
			return 1
		}
		flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
		if words[i] == ">>" {
			flags = os.O_CREATE | os.O_WRONLY | os.O_APPEND
		}
		f, err := os.OpenFile(p, flags, 0o644)
		if err != nil {
			fmt.Fprintln(sh.stderr, "sh:", err)
			return 1
		}
		defer f.Close()
		out = f
		words = append(words[:i:i], words[i+2:]...)
		break
	}
	name, args := words[0], words[1:]
	switch name {
	case "true", ":":
		return 0
	case "false":
		return 1
	case "exit":
		sh.exited = true
		if len(args) == 0 {
			return 0
		}
		n, err := strconv.Atoi(args[0])
		if err != nil {
			return 2
		}
		return n
	case "echo":
		fmt.Fprintln(out, strings.Join(args, " "))
		return 0
	case "env":
		for _, kv := range sh.env {
			fmt.Fprintln(out, kv)
		}
		return 0
	case "sleep":
		secs, err := strconv.ParseFloat(strings.Join(args, ""), 64)
		if err != nil {
			return 1
		}
		select {
		case <-time.After(time.Duration(secs * float64(time.Second))):
			return 0
		case <-sh.ctx.Done():
			return 130
		}
	}
	return sh.fileCommand(name, args, out)
}

// fileCommand runs the commands that take paths.
func (sh *shell) fileCommand(name string, args []string, out io.Writer) int {
	var opts []string
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		opts, args = append(opts, args[0]), args[1:]
	}
	known := map[string]bool{"cat": true, "touch": true, "mkdir": true, "rm": true}
	if !known[name] {
		fmt.Fprintf(sh.stderr, "sh: %s: not found\n", name)
		return 127
	}
	for _, a := range args {
		p, err := sh.path(a)
		if err == nil {
			err = sh.fileOp(name, opts, p, out)
		}
		if err != nil {
			fmt.Fprintf(sh.stderr, "%s: %s: %v\n", name, a, err)
			return 1
		}
	}
	return 0
}

func (sh *shell) fileOp(name string, opts []string, p string, out io.Writer) error {
	switch name {
	case "cat":
		data, err := os.ReadFile(p)
		if err == nil {
			_, err = out.Write(data)
		}
		return err
	case "touch":
		f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		return f.Close()
	case "mkdir":
		if len(opts) > 0 {
			return os.MkdirAll(p, 0o755)
		}
		return os.Mkdir(p, 0o755)
	default: // rm
		if len(opts) > 0 {
			return os.RemoveAll(p)
		}
		return os.Remove(p)
	}
}

// tokenize splits a command line into words and the operators ";", "&&",
// "\n", ">" and ">>", expanding variables outside single quotes.
func tokenize(line string, lookup func(string) string) ([]string, error) {
	var toks []string
	var cur strings.Builder
	inWord := false
	emit := func() {
		if inWord {
			toks = append(toks, cur.String())
			cur.Reset()
			inWord = false
		}
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == ' ' || c == '\t':
			emit()
		case c == '\n' || c == ';':
			emit()
			toks = append(toks, string(c))
		case c == '&' && i+1 < len(line) && line[i+1] == '&':
			emit()
			toks = append(toks, "&&")
			i++
		case c == '>':
			emit()
			if i+1 < len(line) && line[i+1] == '>' {
				toks = append(toks, ">>")
				i++
			} else {
				toks = append(toks, ">")
			}
		case c == '\'':
			end := strings.IndexByte(line[i+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("sh: unterminated quote in %q", line)
			}
			cur.WriteString(line[i+1 : i+1+end])
			inWord = true
			i += end + 1
		case c == '"':
			end := strings.IndexByte(line[i+1:], '"')
			if end < 0 {
				return nil, fmt.Errorf("sh: unterminated quote in %q", line)
			}
			cur.WriteString(expand(line[i+1:i+1+end], lookup))
			inWord = true
			i += end + 1
		case c == '$':
			n := varEnd(line[i:])
			cur.WriteString(expand(line[i:i+n], lookup))
			inWord = true
			i += n - 1
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	emit()
	return toks, nil
}

// varEnd returns the length of the variable reference at the start of s
// ("$NAME" or "${NAME}"), or 1 for a lone "$".
func varEnd(s string) int {
	if strings.HasPrefix(s, "${") {
		if end := strings.IndexByte(s, '}'); end > 0 {
			return end + 1
		}
		return 1
	}
	n := 1
	for n < len(s) && (s[n] == '_' || s[n] >= 'a' && s[n] <= 'z' || s[n] >= 'A' && s[n] <= 'Z' || s[n] >= '0' && s[n] <= '9') {
		n++
	}
	return n
}

// expand replaces $NAME and ${NAME} in s.
func expand(s string, lookup func(string) string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' {
			b.WriteByte(s[i])
			continue
		}
		n := varEnd(s[i:])
		if n == 1 {
			b.WriteByte('$')
			continue
		}
		name := strings.TrimSuffix(strings.TrimPrefix(s[i+1:i+n], "{"), "}")
		b.WriteString(lookup(name))
		i += n - 1
	}
	return b.String()
}
