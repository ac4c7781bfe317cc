package dockerfile

import (
	"errors"
	"path"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// DefaultShell is the shell of shell-form RUN, CMD and ENTRYPOINT on Linux
// when no SHELL instruction or image config sets one.
var DefaultShell = []string{"/bin/sh", "-c"}

// InlineScriptDir is where BuildKit mounts a heredoc script that starts
// with "#!" (read-only, mode 0755), so that RUN can execute it directly.
const InlineScriptDir = "/dev/pipes/"

// InlineFile is a heredoc body that RUN executes as a script file.
type InlineFile struct {
	// Name is the file name under InlineScriptDir.
	Name string
	// Data is the script, already chomped when the heredoc used "<<-".
	Data string
}

// RunArgs returns the process arguments of an (expanded) RUN the way
// BuildKit builds them. Shell form is prefixed with shell (DefaultShell when
// empty). A RUN whose whole command is one heredoc runs its body: through
// the shell, or, when the body starts with "#!", as the returned script,
// which the caller must mount at InlineScriptDir+Name. Other heredocs are
// appended to the command line for the shell to read.
func RunArgs(c *instructions.RunCommand, shell []string) ([]string, *InlineFile, error) {
	if len(shell) == 0 {
		shell = DefaultShell
	}
	args := c.CmdLine
	var script *InlineFile
	if len(c.Files) > 0 {
		if len(args) != 1 || !c.PrependShell {
			return nil, nil, errors.New("parsing produced an invalid run command")
		}
		if hd := parser.MustParseHeredoc(args[0]); hd != nil {
			data := c.Files[0].Data
			if c.Files[0].Chomp {
				data = parser.ChompHeredocContent(data)
			}
			if strings.HasPrefix(data, "#!") {
				script = &InlineFile{Name: c.Files[0].Name, Data: data}
				return []string{path.Join(InlineScriptDir, script.Name)}, script, nil
			}
			args = []string{data}
		} else {
			var b strings.Builder
			b.WriteString(args[0])
			for _, f := range c.Files {
				b.WriteByte('\n')
				b.WriteString(f.Data)
				b.WriteString(f.Name)
			}
			args = []string{b.String()}
		}
	}
	if c.PrependShell {
		args = append(append([]string(nil), shell...), args...)
	}
	return args, script, nil
}
