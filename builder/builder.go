package builder

import (
	"errors"
	"fmt"
	"strings"

	"github.com/builder-project/builder/internal/store"
)

// Sentinel errors of the library, re-exported from the store so callers need
// not import internal packages.
var (
	// ErrNotFound: no image matches a reference.
	ErrNotFound = store.ErrNotFound
	// ErrAmbiguous: a short ID matches several images.
	ErrAmbiguous = store.ErrAmbiguous
	// ErrConflict: the operation would break another image or needs -f.
	ErrConflict = errors.New("conflict")
)

// Builder is an open builder store.
type Builder struct {
	st *store.Store
}

// DefaultRoot returns the store root used when none is given:
// $BUILDER_ROOT, else /var/lib/builder for root, else $XDG_DATA_HOME/builder.
func DefaultRoot() string { return store.DefaultRoot() }

// Open opens (creating if needed) the store at root.
func Open(root string) (*Builder, error) {
	st, err := store.Open(root)
	if err != nil {
		return nil, err
	}
	return &Builder{st: st}, nil
}

// Root returns the store root directory.
func (b *Builder) Root() string { return b.st.Root() }

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
