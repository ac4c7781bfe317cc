package store

import (
	"fmt"

	"github.com/distribution/reference"
)

// NormalizeRef turns a user's reference into its full form, as docker does:
// "busybox" → "docker.io/library/busybox:latest", "host:5000/a/b" →
// "host:5000/a/b:latest"; a digest reference keeps its digest and gets no tag.
func NormalizeRef(ref string) (string, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", fmt.Errorf("invalid reference %q: %w", ref, err)
	}
	return reference.TagNameOnly(named).String(), nil
}

// FamiliarRef shortens a normalized reference for display
// ("docker.io/library/busybox:latest" → "busybox:latest").
func FamiliarRef(full string) string {
	named, err := reference.ParseNormalizedNamed(full)
	if err != nil {
		return full
	}
	return reference.FamiliarString(named)
}

// SplitRef splits a normalized reference into repository and tag
// ("<none>" when it has none).
func SplitRef(full string) (repo, tag string) {
	named, err := reference.ParseNormalizedNamed(full)
	if err != nil {
		return full, "<none>"
	}
	repo = reference.FamiliarName(named)
	if t, ok := named.(reference.Tagged); ok {
		return repo, t.Tag()
	}
	return repo, "<none>"
}
