package builder

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/builder-project/builder/cache"
	"github.com/builder-project/builder/executor"
	"github.com/builder-project/builder/internal/copier"
	"github.com/builder-project/builder/internal/store"
	digest "github.com/opencontainers/go-digest"
)

// Sentinel errors of the library, checked with errors.Is. They are the
// internal packages' own values, so errors from any layer match them.
var (
	// ErrNotFound: no image, blob or cache record matches.
	ErrNotFound = store.ErrNotFound
	// ErrAmbiguous: a short ID matches several images.
	ErrAmbiguous = store.ErrAmbiguous
	// ErrInvalidDigest: content does not match its digest or size (a
	// damaged blob, archive or cache layout).
	ErrInvalidDigest = store.ErrInvalidDigest
	// ErrConflict: the operation would break another image or needs -f.
	ErrConflict = store.ErrConflict
	// ErrSourceNotFound: a COPY or ADD source is not in the build context
	// (or .dockerignore excludes it).
	ErrSourceNotFound = copier.ErrNotFound
	// ErrOffline: the step needs the network (ADD of a URL or a Git
	// repository), which builds do not have.
	ErrOffline = copier.ErrOffline
)

// Cache is the build cache a Builder consults and fills: a persistent table
// of step records by cache key. *cache.Cache satisfies it; WithCache
// replaces the one kept in the store.
type Cache interface {
	Lookup(ctx context.Context, key digest.Digest) (cache.Record, bool, error)
	Put(ctx context.Context, rec cache.Record) error
	List(ctx context.Context) ([]cache.Record, error)
	Delete(ctx context.Context, key digest.Digest) error
	Prune(ctx context.Context, opts cache.PruneOptions) ([]cache.Record, error)
}

var _ Cache = (*cache.Cache)(nil)

// Builder is an open builder store.
type Builder struct {
	st     *store.Store
	exec   executor.Executor // nil: executor.New(Runtime) per call
	cache  Cache
	hasher *cache.Hasher
}

// Option configures Open.
type Option func(*Builder)

// WithExecutor makes builds use e for RUN steps and root filesystems
// (containers' file work included), and containers on an OCI runtime for
// their attached processes, instead of the runtime that
// BuildOptions.Runtime and CreateOptions.Runtime select.
// executortest.Fake is an in-process one. The processes of containers on
// the built-in runtime run as the executor's long-lived containers.
func WithExecutor(e executor.Executor) Option { return func(b *Builder) { b.exec = e } }

// WithCache makes builds look up and record steps in c instead of the
// build cache kept in the store; prune and cache export use it too.
func WithCache(c Cache) Option { return func(b *Builder) { b.cache = c } }

// DefaultRoot returns the store root used when none is given:
// $BUILDER_ROOT, else /var/lib/builder for root, else $XDG_DATA_HOME/builder.
func DefaultRoot() string { return store.DefaultRoot() }

// Open opens (creating if needed) the store at root.
func Open(root string, opts ...Option) (*Builder, error) {
	// Runs a killed builder left behind go first: their runc state names
	// processes that may still use upperdirs the store is about to clean.
	_ = executor.SweepTemp()
	st, err := store.Open(root)
	if err != nil {
		return nil, err
	}
	b := &Builder{st: st}
	for _, o := range opts {
		o(b)
	}
	dir := st.CacheDir()
	if b.cache == nil {
		c, err := cache.Open(dir)
		if err != nil {
			return nil, fmt.Errorf("opening build cache: %w", err)
		}
		b.cache = c
	}
	if b.hasher, err = cache.OpenHasher(filepath.Join(dir, "context")); err != nil {
		return nil, fmt.Errorf("opening context index: %w", err)
	}
	return b, nil
}

// Root returns the store root directory.
func (b *Builder) Root() string { return b.st.Root() }

// executor returns the injected executor, or a new one for runtime.
func (b *Builder) executor(runtime string) (executor.Executor, error) {
	if b.exec != nil {
		return b.exec, nil
	}
	return executor.New(runtime)
}

// NormalizeRef returns the full form of a user's image reference
// ("app:1" → "docker.io/library/app:1").
func NormalizeRef(ref string) (string, error) { return store.NormalizeRef(ref) }

// FamiliarRef returns the short display form of a normalized reference.
func FamiliarRef(ref string) string { return store.FamiliarRef(ref) }

func normalizeTags(refs []string) ([]string, error) {
	out := make([]string, 0, len(refs))
	for _, r := range refs {
		n, err := store.NormalizeRef(r)
		if err != nil {
			return nil, err
		}
		if strings.Contains(n, "@") {
			return nil, fmt.Errorf("invalid tag %q: a tag cannot contain a digest", r)
		}
		out = append(out, n)
	}
	return out, nil
}
