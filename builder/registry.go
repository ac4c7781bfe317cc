package builder

import (
	"context"

	"github.com/builder-project/builder/internal/platform"
	"github.com/builder-project/builder/internal/registry"
	"github.com/builder-project/builder/internal/store"
)

// ErrUnauthorized: a registry refused the credentials, or asked for some.
var ErrUnauthorized = registry.ErrUnauthorized

// RegistryOptions are the registry settings of one command.
type RegistryOptions struct {
	// Insecure allows plain HTTP and unverified TLS for every registry
	// (--tls-verify=false). Loopback registries (localhost, 127.0.0.0/8)
	// speak plain HTTP without it, as in docker, and so do the registries
	// the config file lists as insecure.
	Insecure bool
	// ConfigFile is builder's config.toml (insecure registries, pull
	// mirrors); "" reads /etc/builder/config.toml, then
	// $XDG_CONFIG_HOME/builder/config.toml, when they exist.
	ConfigFile string
}

// client returns a registry client whose transfers are reported as
// Transfer events.
func (o RegistryOptions) client(progress func(Event)) (*registry.Client, error) {
	opts := registry.Options{Insecure: o.Insecure, ConfigFile: o.ConfigFile}
	if progress != nil {
		opts.Progress = func(p registry.Progress) {
			progress(Event{Kind: Transfer, ID: p.ID, Message: p.Status, Current: p.Current, Total: p.Total})
		}
	}
	return registry.New(opts)
}

// PullOptions configure Pull.
type PullOptions struct {
	RegistryOptions
	// Platform ("os/arch[/variant]") picks the image of a multi-platform
	// index; default the host's.
	Platform string
	// AllTags pulls every tag of the repository.
	AllTags bool
	// Progress receives Transfer events; nil discards them.
	Progress func(Event)
}

// PullResult is one image Pull stored.
type PullResult struct {
	// Ref is the familiar reference pulled ("app:1").
	Ref string
	// ID is the image ID.
	ID string
	// RepoDigest is repository@digest of what the reference named.
	RepoDigest string
	// Fresh is false when the store already held everything.
	Fresh bool
}

// Pull fetches an image (every tag with AllTags) from its registry into the
// store, as docker pull does. Only missing blobs are fetched, each
// verified while it streams into the store; a multi-platform index
// resolves to the host's platform or opts.Platform. Layers are kept as the
// registry sent them, so a push elsewhere gives the same manifest digest.
func (b *Builder) Pull(ctx context.Context, ref string, opts PullOptions) ([]PullResult, error) {
	c, err := opts.client(opts.Progress)
	if err != nil {
		return nil, err
	}
	po := registry.PullOptions{AllTags: opts.AllTags}
	if opts.Platform != "" {
		p, err := platform.Parse(opts.Platform)
		if err != nil {
			return nil, err
		}
		po.Platform = &p
	}
	lease, err := b.st.Lease()
	if err != nil {
		return nil, err
	}
	defer lease.Release()
	pulled, err := c.Pull(ctx, b.st, ref, po)
	if err != nil {
		return nil, err
	}
	out := make([]PullResult, len(pulled))
	for i, p := range pulled {
		out[i] = PullResult{Ref: store.FamiliarRef(p.Ref), ID: p.ID.String(), RepoDigest: p.RepoDigest, Fresh: p.Fresh}
	}
	return out, nil
}

// Login checks the credentials against registry and stores them in the
// docker config ($DOCKER_CONFIG/config.json, else ~/.docker/config.json),
// through its credential helper when one is configured.
func (b *Builder) Login(ctx context.Context, registryHost, user, password string, opts RegistryOptions) error {
	c, err := opts.client(nil)
	if err != nil {
		return err
	}
	return c.Login(ctx, registryHost, user, password)
}

// Logout removes the credentials stored for registry.
func Logout(registryHost string) error { return registry.Logout(registryHost) }

// SearchOptions configure Search.
type SearchOptions struct {
	RegistryOptions
	// Limit bounds the number of results; 0 means the registry's default.
	Limit int
}

// SearchResult is one repository Search found.
type SearchResult = registry.SearchResult

// Search lists the repositories of a registry whose name contains a term
// ("REGISTRY/TERM", or a term alone for Docker Hub): any registry through
// its catalog, Docker Hub through its search API.
func (b *Builder) Search(ctx context.Context, term string, opts SearchOptions) ([]SearchResult, error) {
	c, err := opts.client(nil)
	if err != nil {
		return nil, err
	}
	return c.Search(ctx, term, registry.SearchOptions{Limit: opts.Limit})
}

// ListTags lists the tags of a repository in its registry.
func (b *Builder) ListTags(ctx context.Context, repo string, opts RegistryOptions) ([]string, error) {
	c, err := opts.client(nil)
	if err != nil {
		return nil, err
	}
	return c.ListTags(ctx, repo)
}
