package builder

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/builder-project/builder/internal/store"
)

// ConfigOptions change a container's config, as buildah config does; what
// a later Start runs and a Commit writes. Nil and empty fields change
// nothing.
type ConfigOptions struct {
	// Container names the container.
	Container string
	// Cmd and Entrypoint are a JSON array (exec form) or a command line
	// run by the config's shell; "" clears them.
	Cmd, Entrypoint *string
	// Env sets KEY=VALUE entries; "KEY-" removes KEY.
	Env []string
	// Labels sets KEY=VALUE labels; "KEY-" removes KEY.
	Labels []string
	// Workdir and User replace the working directory and the user.
	Workdir, User *string
	// Ports are exposed ports, as EXPOSE takes them ("8080", "53/udp").
	Ports []string
}

// ConfigureContainer changes a container's config.
func (b *Builder) ConfigureContainer(ctx context.Context, opts ConfigOptions) error {
	c, err := b.loadContainer(opts.Container)
	if err != nil {
		return err
	}
	return b.st.UpdateContainer(c.rec.ID, func(rec *store.Container) error {
		var spec containerSpec
		if err := json.Unmarshal(rec.Config, &spec); err != nil {
			return err
		}
		if err := opts.apply(&spec); err != nil {
			return err
		}
		data, err := json.Marshal(spec)
		rec.Config = data
		return err
	})
}

func (opts ConfigOptions) apply(spec *containerSpec) error {
	cfg := &spec.Config
	shell := shellOf(&Config{Config: *cfg})
	if opts.Cmd != nil {
		cfg.Cmd = configCommand(*opts.Cmd, shell)
	}
	if opts.Entrypoint != nil {
		cfg.Entrypoint = configCommand(*opts.Entrypoint, shell)
	}
	for _, kv := range opts.Env {
		if k, ok := strings.CutSuffix(kv, "-"); ok && !strings.Contains(kv, "=") {
			cfg.Env = removeEnv(cfg.Env, k)
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("invalid --env %q: want KEY=VALUE or KEY-", kv)
		}
		cfg.Env = setEnv(cfg.Env, k, v)
	}
	for _, kv := range opts.Labels {
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		if k, ok := strings.CutSuffix(kv, "-"); ok && !strings.Contains(kv, "=") {
			delete(cfg.Labels, k)
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("invalid --label %q: want KEY=VALUE or KEY-", kv)
		}
		cfg.Labels[k] = v
	}
	if opts.Workdir != nil {
		cfg.WorkingDir = workdirPath(cfg.WorkingDir, *opts.Workdir)
	}
	if opts.User != nil {
		cfg.User = *opts.User
	}
	if len(opts.Ports) > 0 {
		ports, err := expandPorts(opts.Ports)
		if err != nil {
			return err
		}
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = map[string]struct{}{}
		}
		for _, p := range ports {
			cfg.ExposedPorts[p] = struct{}{}
		}
	}
	return nil
}

// configCommand turns buildah's --cmd or --entrypoint value into argv: a
// JSON array as it is, anything else run by shell, "" nothing.
func configCommand(v string, shell []string) []string {
	if strings.TrimSpace(v) == "" {
		return nil
	}
	var argv []string
	if strings.HasPrefix(strings.TrimSpace(v), "[") && json.Unmarshal([]byte(v), &argv) == nil {
		return argv
	}
	return append(shell, v)
}

// removeEnv removes key from env.
func removeEnv(env []string, key string) []string {
	out := env[:0]
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k != key {
			out = append(out, kv)
		}
	}
	return out
}
