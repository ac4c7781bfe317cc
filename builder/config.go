package builder

import (
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/builder-project/builder/dockerfile"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/sys/signal"
)

// defaultShell is the shell of shell-form instructions when SHELL is unset.
var defaultShell = []string{"/bin/sh", "-c"}

// configState carries what applying metadata instructions must remember
// within one stage.
type configState struct {
	// cmdSet: CMD was set in this stage, so a later ENTRYPOINT keeps it.
	cmdSet bool
}

// shellOf returns the shell for shell-form commands of cfg.
func shellOf(cfg *Config) []string {
	if len(cfg.Config.Shell) > 0 {
		return append([]string(nil), cfg.Config.Shell...)
	}
	return append([]string(nil), defaultShell...)
}

// commandLine turns a shell-dependent command line into argv.
func commandLine(cfg *Config, c instructions.ShellDependantCmdLine) []string {
	if c.PrependShell {
		return append(shellOf(cfg), strings.Join(c.CmdLine, " "))
	}
	return append([]string(nil), c.CmdLine...)
}

// setEnv sets key=value in env, replacing an existing key in place.
func setEnv(env []string, key, value string) []string {
	for i, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			env[i] = key + "=" + value
			return env
		}
	}
	return append(env, key+"="+value)
}

// getEnv returns the value of key in env.
func getEnv(env []string, key string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, _ := strings.Cut(env[i], "="); k == key {
			return v, true
		}
	}
	return "", false
}

// applyConfig applies one metadata-only instruction (one that changes the
// image config but not its filesystem) to cfg. It returns false for
// instructions it does not handle. The command is already expanded.
func applyConfig(cfg *Config, st *configState, cmd instructions.Command) (bool, error) {
	c := &cfg.Config
	switch cmd := cmd.(type) {
	case *instructions.EnvCommand:
		for _, kv := range cmd.Env {
			c.Env = setEnv(c.Env, kv.Key, kv.Value)
		}
	case *instructions.LabelCommand:
		if c.Labels == nil {
			c.Labels = map[string]string{}
		}
		for _, kv := range cmd.Labels {
			c.Labels[kv.Key] = kv.Value
		}
	case *instructions.MaintainerCommand:
		cfg.Author = cmd.Maintainer
	case *instructions.CmdCommand:
		c.Cmd = commandLine(cfg, cmd.ShellDependantCmdLine)
		st.cmdSet = true
	case *instructions.EntrypointCommand:
		c.Entrypoint = commandLine(cfg, cmd.ShellDependantCmdLine)
		if !st.cmdSet {
			c.Cmd = nil
		}
	case *instructions.ExposeCommand:
		ports, err := expandPorts(cmd.Ports)
		if err != nil {
			return true, err
		}
		if c.ExposedPorts == nil {
			c.ExposedPorts = map[string]struct{}{}
		}
		for _, p := range ports {
			c.ExposedPorts[p] = struct{}{}
		}
	case *instructions.UserCommand:
		c.User = cmd.User
	case *instructions.VolumeCommand:
		if c.Volumes == nil {
			c.Volumes = map[string]struct{}{}
		}
		for _, v := range cmd.Volumes {
			if v = strings.TrimSpace(v); v == "" {
				return true, fmt.Errorf("VOLUME specified can not be an empty string")
			}
			c.Volumes[v] = struct{}{}
		}
	case *instructions.WorkdirCommand:
		c.WorkingDir = workdirPath(c.WorkingDir, cmd.Path)
	case *instructions.StopSignalCommand:
		if _, err := signal.ParseSignal(cmd.Signal); err != nil {
			return true, fmt.Errorf("invalid STOPSIGNAL %q: %w", cmd.Signal, err)
		}
		c.StopSignal = cmd.Signal
	case *instructions.HealthCheckCommand:
		hc := *cmd.Health
		cfg.Config.Healthcheck = &hc
	case *instructions.ShellCommand:
		cfg.Config.Shell = append([]string(nil), cmd.Shell...)
	case *instructions.OnbuildCommand:
		cfg.Config.OnBuild = append(cfg.Config.OnBuild, cmd.Expression)
	default:
		return false, nil
	}
	return true, nil
}

// workdirPath resolves a WORKDIR argument against the current working dir.
func workdirPath(cur, p string) string {
	if !path.IsAbs(p) {
		if cur == "" {
			cur = "/"
		}
		p = path.Join(cur, p)
	}
	return path.Clean(p)
}

// expandPorts turns EXPOSE arguments into "port/proto" keys, expanding ranges.
func expandPorts(ports []string) ([]string, error) {
	var out []string
	for _, p := range ports {
		spec, proto, _ := strings.Cut(p, "/")
		if proto == "" {
			proto = "tcp"
		}
		proto = strings.ToLower(proto)
		if proto != "tcp" && proto != "udp" && proto != "sctp" {
			return nil, fmt.Errorf("invalid proto %q in EXPOSE %s", proto, p)
		}
		lo, hi, isRange := strings.Cut(spec, "-")
		start, err := strconv.ParseUint(lo, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("invalid port %q in EXPOSE", p)
		}
		end := start
		if isRange {
			if end, err = strconv.ParseUint(hi, 10, 16); err != nil || end < start {
				return nil, fmt.Errorf("invalid port range %q in EXPOSE", p)
			}
		}
		for n := start; n <= end; n++ {
			out = append(out, fmt.Sprintf("%d/%s", n, proto))
		}
	}
	sort.Strings(out)
	return out, nil
}

// changeInstructions lists what `import -c` and `commit -c` accept, as docker does.
var changeInstructions = map[string]bool{
	"cmd": true, "entrypoint": true, "env": true, "expose": true, "label": true,
	"onbuild": true, "stopsignal": true, "user": true, "volume": true, "workdir": true,
}

// applyChanges parses docker --change instructions and applies them to cfg.
// Environment variables from cfg are expanded the way docker does.
func applyChanges(cfg *Config, changes []string) error {
	st := &configState{}
	for _, ch := range changes {
		res, err := parser.Parse(strings.NewReader(ch))
		if err != nil {
			return fmt.Errorf("parsing change %q: %w", ch, err)
		}
		for _, node := range res.AST.Children {
			if !changeInstructions[strings.ToLower(node.Value)] {
				return fmt.Errorf("%s is not a valid change command", strings.ToUpper(node.Value))
			}
			cmd, err := instructions.ParseCommand(node)
			if err != nil {
				return fmt.Errorf("parsing change %q: %w", ch, err)
			}
			if err := dockerfile.ExpandCommand(cmd, cfg.Config.Env); err != nil {
				return fmt.Errorf("expanding change %q: %w", ch, err)
			}
			if _, err := applyConfig(cfg, st, cmd); err != nil {
				return fmt.Errorf("applying change %q: %w", ch, err)
			}
		}
	}
	return nil
}

// isConfigCommand reports whether cmd is a metadata-only instruction that
// applyConfig handles, without changing any config.
func isConfigCommand(cmd instructions.Command) bool {
	ok, _ := applyConfig(&Config{}, &configState{}, cmd)
	return ok
}
