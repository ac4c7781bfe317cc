package builder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/builder-project/builder/internal/store"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	digest "github.com/opencontainers/go-digest"
)

// CreateOptions describe a new container: its image and, as docker run's
// flags, what overrides the image's config.
type CreateOptions struct {
	// Image names a stored image.
	Image string
	// Name is the container's name; empty picks "<image>-working-container"
	// (with -1, -2, … when taken), as buildah from does.
	Name string
	// Cmd replaces the image's CMD when non-empty.
	Cmd []string
	// Entrypoint replaces the image's ENTRYPOINT when non-nil; as in
	// docker, a non-empty one also drops the image's CMD.
	Entrypoint []string
	// Env adds or replaces KEY=VALUE entries.
	Env []string
	// User and Workdir override the image's when set.
	User, Workdir string
	// Network is "default", "host" or "none".
	Network string
	// Volumes are docker -v bind mounts, "HOSTDIR:DIR[:ro|:rw]". A missing
	// host directory is created, as docker does. Their mount points are
	// never committed.
	Volumes []string
	// Runtime selects the runtime of the container's processes, as in
	// BuildOptions. Only the built-in one ("" or "builtin") runs
	// long-lived containers; on an OCI runtime a container runs attached
	// and without a terminal only.
	Runtime string
	// Tty runs the process on a pseudo-terminal (-t).
	Tty bool
	// Interactive keeps its standard input open (-i).
	Interactive bool
	// AutoRemove removes the container once its process exits (--rm).
	AutoRemove bool
	// Isolation sets the seccomp profile and resource limits of its
	// processes.
	Isolation
}

// Volume is one bind mount of a container.
type Volume struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
	ReadOnly    bool   `json:"readOnly,omitempty"`
}

// containerSpec is what builder records of a container, as the store's
// Container.Config.
type containerSpec struct {
	// ImageRef is the image as the user named it.
	ImageRef string `json:"imageRef"`
	// Config is what the container runs with and what a commit starts
	// from: the image's config with run's and config's overrides.
	Config      dockerspec.DockerOCIImageConfig `json:"config"`
	Network     string                          `json:"network,omitempty"`
	Volumes     []Volume                        `json:"volumes,omitempty"`
	Runtime     string                          `json:"runtime,omitempty"`
	Tty         bool                            `json:"tty,omitempty"`
	Interactive bool                            `json:"interactive,omitempty"`
	AutoRemove  bool                            `json:"autoRemove,omitempty"`
	Isolation   Isolation                       `json:"isolation,omitempty"`
}

// container is a container read back from the store.
type container struct {
	rec  store.Container
	spec containerSpec
	dirs store.ContainerDirs
}

// command returns the container's process: entrypoint and command.
func (c *container) command() []string {
	return append(append([]string{}, c.spec.Config.Entrypoint...), c.spec.Config.Cmd...)
}

// loadContainer finds the container ref names and decodes its record.
func (b *Builder) loadContainer(ref string) (*container, error) {
	rec, err := b.st.Container(ref)
	if err != nil {
		return nil, err
	}
	return b.decodeContainer(rec)
}

func (b *Builder) decodeContainer(rec store.Container) (*container, error) {
	c := &container{rec: rec, dirs: b.st.ContainerDirs(rec.ID)}
	if err := json.Unmarshal(rec.Config, &c.spec); err != nil {
		return nil, fmt.Errorf("decoding container %s: %w", c.name(), err)
	}
	return c, nil
}

func (c *container) name() string { return c.rec.Name }

// ContainerCreated identifies a new container.
type ContainerCreated struct {
	ID   string
	Name string
}

// Create creates a container from a stored image without starting it: its
// own upperdir over the image's layers (a persistent snapshot named by its
// ID), and its config. A killed process leaves no half-created container:
// the store records it last and removes the rest on its next open.
func (b *Builder) Create(ctx context.Context, opts CreateOptions) (ContainerCreated, error) {
	img, err := b.resolve(ctx, opts.Image)
	if err != nil {
		return ContainerCreated{}, err
	}
	spec, err := newContainerSpec(opts, img.config.Config)
	if err != nil {
		return ContainerCreated{}, err
	}
	data, err := json.Marshal(spec)
	if err != nil {
		return ContainerCreated{}, err
	}
	lease, err := b.st.Lease()
	if err != nil {
		return ContainerCreated{}, err
	}
	defer lease.Release()
	rec, err := b.st.CreateContainer(ctx, store.NewContainer{
		Name: opts.Name, DefaultName: defaultContainerName(opts.Image),
		Image: img.rec.ID, Layers: img.layers, Config: data,
	})
	if err != nil {
		return ContainerCreated{}, err
	}
	return ContainerCreated{ID: rec.ID, Name: rec.Name}, nil
}

// defaultContainerName is buildah's: the image's last path component,
// without tag or digest, and "-working-container".
func defaultContainerName(ref string) string {
	ref, _, _ = strings.Cut(ref, "@")
	base := path.Base(ref)
	if i := strings.LastIndex(base, ":"); i > 0 {
		base = base[:i]
	}
	if strings.HasPrefix(ref, "sha256:") || len(base) == 64 {
		base = "container"
	}
	return base + "-working-container"
}

// newContainerSpec applies the options' overrides to the image's config.
func newContainerSpec(opts CreateOptions, image dockerspec.DockerOCIImageConfig) (containerSpec, error) {
	if err := checkNetwork(opts.Network); err != nil {
		return containerSpec{}, err
	}
	var cfg dockerspec.DockerOCIImageConfig
	data, err := json.Marshal(image)
	if err == nil {
		err = json.Unmarshal(data, &cfg)
	}
	if err != nil {
		return containerSpec{}, err
	}
	if opts.Entrypoint != nil {
		cfg.Entrypoint = append([]string{}, opts.Entrypoint...)
		if len(opts.Entrypoint) > 0 {
			cfg.Cmd = nil
		}
	}
	if len(opts.Cmd) > 0 {
		cfg.Cmd = append([]string{}, opts.Cmd...)
	}
	cfg.Env = addEnv(cfg.Env, opts.Env)
	if opts.User != "" {
		cfg.User = opts.User
	}
	if opts.Workdir != "" {
		cfg.WorkingDir = workdirPath(cfg.WorkingDir, opts.Workdir)
	}
	if err := opts.Isolation.check(); err != nil {
		return containerSpec{}, err
	}
	spec := containerSpec{ImageRef: opts.Image, Config: cfg, Network: opts.Network, Runtime: opts.Runtime,
		Tty: opts.Tty, Interactive: opts.Interactive, AutoRemove: opts.AutoRemove, Isolation: opts.Isolation}
	for _, v := range opts.Volumes {
		vol, err := parseVolume(v)
		if err != nil {
			return containerSpec{}, err
		}
		spec.Volumes = append(spec.Volumes, vol)
	}
	return spec, nil
}

// parseVolume parses docker's -v HOSTDIR:DIR[:ro|:rw] and creates a
// missing host directory.
func parseVolume(v string) (Volume, error) {
	parts := strings.Split(v, ":")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || !path.IsAbs(parts[1]) {
		return Volume{}, fmt.Errorf("invalid volume %q: want HOSTDIR:DIR[:ro], DIR absolute", v)
	}
	vol := Volume{Destination: path.Clean(parts[1])}
	if len(parts) == 3 {
		switch parts[2] {
		case "ro":
			vol.ReadOnly = true
		case "rw":
		default:
			return Volume{}, fmt.Errorf("invalid volume %q: unknown mode %q (want ro or rw)", v, parts[2])
		}
	}
	src, err := filepath.Abs(parts[0])
	if err != nil {
		return Volume{}, err
	}
	if err := os.MkdirAll(src, 0o755); err != nil {
		return Volume{}, fmt.Errorf("volume %q: %w", v, err)
	}
	vol.Source = src
	return vol, nil
}

// ContainerSummary is one row of Containers, with docker ps's fields.
type ContainerSummary struct {
	ID      string    `json:"Id"`
	Name    string    `json:"Name"`
	Image   string    `json:"Image"`
	ImageID string    `json:"ImageID"`
	Command []string  `json:"Command"`
	Created time.Time `json:"Created"`
	// State is the container's processes' state.
	State  ContainerState    `json:"State"`
	Labels map[string]string `json:"Labels"`
	// Mounted: the merged root is mounted on the host (builder mount).
	Mounted bool `json:"Mounted"`
}

// ContainerState is the state of a container's process.
type ContainerState struct {
	// Status is "created" (never started), "running", "paused" or "exited".
	Status     string    `json:"Status"`
	Pid        int       `json:"Pid"`
	ExitCode   int       `json:"ExitCode"`
	StartedAt  time.Time `json:"StartedAt"`
	FinishedAt time.Time `json:"FinishedAt"`
}

// Running reports whether the container's process is alive (paused or not).
func (s ContainerState) Running() bool { return s.Status == "running" || s.Status == "paused" }

// ContainersOptions select the rows of Containers, with docker ps's filters.
type ContainersOptions struct {
	// All includes containers that are not running.
	All bool
	// Filters are docker's "key=value" filters: id, name, status,
	// ancestor (an image reference or ID), label (k or k=v), exited (a
	// code). Several values of one key match any; keys must all match.
	Filters []string
}

// Containers lists containers, newest first.
func (b *Builder) Containers(ctx context.Context, opts ContainersOptions) ([]ContainerSummary, error) {
	f, err := parseContainerFilters(opts.Filters)
	if err != nil {
		return nil, err
	}
	recs, err := b.st.Containers()
	if err != nil {
		return nil, err
	}
	out := []ContainerSummary{}
	for _, rec := range recs {
		c, err := b.decodeContainer(rec)
		if err != nil {
			return nil, err
		}
		s, err := b.summary(c)
		if err != nil {
			return nil, err
		}
		if (opts.All || s.State.Running() || len(f["status"]) > 0) && f.match(b, s) {
			out = append(out, s)
		}
	}
	return out, nil
}

func (b *Builder) summary(c *container) (ContainerSummary, error) {
	st, err := b.containerState(c)
	if err != nil {
		return ContainerSummary{}, err
	}
	return ContainerSummary{
		ID: c.rec.ID, Name: c.name(), Image: c.spec.ImageRef, ImageID: c.rec.Image.String(),
		Command: c.command(), Created: c.rec.Created, State: st, Labels: c.spec.Config.Labels,
		Mounted: isMounted(c.dirs.Merged),
	}, nil
}

// containerFilters are parsed docker ps filters: key → accepted values.
type containerFilters map[string][]string

func parseContainerFilters(list []string) (containerFilters, error) {
	f := containerFilters{}
	for _, kv := range list {
		k, v, ok := strings.Cut(kv, "=")
		switch k {
		case "id", "name", "status", "ancestor", "label", "exited":
		default:
			return nil, fmt.Errorf("invalid filter %q (want id, name, status, ancestor, label or exited)", kv)
		}
		if !ok {
			return nil, fmt.Errorf("invalid filter %q: want KEY=VALUE", kv)
		}
		f[k] = append(f[k], v)
	}
	return f, nil
}

func (f containerFilters) match(b *Builder, s ContainerSummary) bool {
	anyOf := func(key string, ok func(v string) bool) bool {
		if len(f[key]) == 0 {
			return true
		}
		for _, v := range f[key] {
			if ok(v) {
				return true
			}
		}
		return false
	}
	return anyOf("id", func(v string) bool { return strings.HasPrefix(s.ID, v) }) &&
		anyOf("name", func(v string) bool { return strings.Contains(s.Name, strings.TrimPrefix(v, "/")) }) &&
		anyOf("status", func(v string) bool { return s.State.Status == v }) &&
		anyOf("exited", func(v string) bool { return s.State.Status == "exited" && fmt.Sprint(s.State.ExitCode) == v }) &&
		anyOf("label", func(v string) bool {
			k, val, hasV := strings.Cut(v, "=")
			got, ok := s.Labels[k]
			return ok && (!hasV || got == val)
		}) &&
		anyOf("ancestor", func(v string) bool {
			id, err := b.ResolveID(v)
			return s.Image == v || err == nil && id.String() == s.ImageID
		})
}

// RemoveContainers removes containers as docker rm does: their files,
// snapshot and record. A running container is refused unless force, which
// kills its processes first. It returns the references removed.
func (b *Builder) RemoveContainers(ctx context.Context, refs []string, force bool) ([]string, error) {
	var done []string
	var errs []error
	for _, ref := range refs {
		if err := b.removeContainer(ctx, ref, force); err != nil {
			errs = append(errs, err)
			continue
		}
		done = append(done, ref)
	}
	return done, errors.Join(errs...)
}

func (b *Builder) removeContainer(ctx context.Context, ref string, force bool) error {
	c, err := b.loadContainer(ref)
	if err != nil {
		return err
	}
	st, err := b.containerState(c)
	if err != nil {
		return err
	}
	if st.Running() && !force {
		return fmt.Errorf("%w: cannot remove container %s: container is %s: stop the container before removing or force remove", ErrConflict, ref, st.Status)
	}
	if err := b.unmountHost(c.dirs.Merged); err != nil {
		return err
	}
	// The processes go before the files: none outlives the container.
	if err := b.runtime(c).Remove(c.dirs.State); err != nil {
		return fmt.Errorf("removing container %s: %w", ref, err)
	}
	return b.st.RemoveContainer(c.rec.ID)
}

// containerImage reads the image a container was created from, even if
// it was removed since (the store keeps its data while the container
// lives).
func (b *Builder) containerImage(ctx context.Context, c *container) (*stored, error) {
	idx, err := b.st.View()
	if err != nil {
		return nil, err
	}
	rec, ok := idx.Image(c.rec.Image)
	if !ok {
		rec = store.Image{ID: c.rec.Image, Manifest: c.rec.Manifest}
	}
	return b.readImage(ctx, idx, rec)
}

// shortContainerID is the 12-character form docker prints.
func shortContainerID(id string) string { return store.ShortID(digest.Digest("sha256:" + id)) }

// addEnv applies docker's -e entries to env: KEY=VALUE, or KEY alone for
// the caller's value (nothing when the caller has none).
func addEnv(env, entries []string) []string {
	env = append([]string{}, env...)
	for _, kv := range entries {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			if v, ok = os.LookupEnv(k); !ok {
				continue
			}
		}
		env = setEnv(env, k, v)
	}
	return env
}
