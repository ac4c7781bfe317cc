package registry

import (
	"fmt"
	"strings"

	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
)

// dockerHub is Docker Hub's name in normalized references.
const dockerHub = "docker.io"

// imageRef is a reference read as docker reads it.
type imageRef struct {
	// domain is the registry: docker.io, host:port.
	domain string
	// path is the repository inside it: library/app.
	path string
	// tag is the tag; "latest" when the reference named neither tag nor digest.
	tag string
	// digest is the digest the reference names, if any.
	digest digest.Digest
}

// parseRef reads a user's image reference: "app" is
// docker.io/library/app:latest.
func parseRef(s string) (imageRef, error) {
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return imageRef{}, fmt.Errorf("invalid reference %q: %w", s, err)
	}
	named = reference.TagNameOnly(named)
	r := imageRef{domain: reference.Domain(named), path: reference.Path(named)}
	if d, ok := named.(reference.Digested); ok {
		r.digest = d.Digest()
	} else if t, ok := named.(reference.Tagged); ok {
		r.tag = t.Tag()
	}
	return r, nil
}

// parseRepo reads a repository name ("app", "host:5000/x"); a tag or digest
// in it is ignored.
func parseRepo(s string) (imageRef, error) {
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return imageRef{}, fmt.Errorf("invalid repository %q: %w", s, err)
	}
	return imageRef{domain: reference.Domain(named), path: reference.Path(named)}, nil
}

// repo is the normalized repository name: docker.io/library/app.
func (r imageRef) repo() string { return r.domain + "/" + r.path }

// String returns the normalized reference: docker.io/library/app:1 or
// docker.io/library/app@sha256:….
func (r imageRef) String() string {
	if r.digest != "" {
		return r.repo() + "@" + r.digest.String()
	}
	return r.repo() + ":" + r.tag
}

// familiar returns the reference as docker shows it: app:1.
func (r imageRef) familiar() string {
	named, err := reference.ParseNormalizedNamed(r.String())
	if err != nil {
		return r.String()
	}
	return reference.FamiliarString(named)
}

// identifier is what follows /manifests/ in a request: the digest, else the tag.
func (r imageRef) identifier() string {
	if r.digest != "" {
		return r.digest.String()
	}
	return r.tag
}

// withDigest returns the reference to d in the same repository.
func (r imageRef) withDigest(d digest.Digest) imageRef {
	return imageRef{domain: r.domain, path: r.path, digest: d}
}

// loginHost turns what a user gives builder login (a host, docker.io, a URL,
// or nothing) into the registry's host and the key of its credentials in the
// docker config: "https://index.docker.io/v1/" for Docker Hub, as docker
// writes it, else host[:port].
func loginHost(registry string) (host, key string) {
	h := strings.TrimPrefix(strings.TrimPrefix(registry, "https://"), "http://")
	if i := strings.Index(h, "/"); i >= 0 {
		h = h[:i]
	}
	if h = canonicalRegistry(h); h == "" || h == dockerHub {
		return dockerHub, "https://index.docker.io/v1/"
	}
	return h, h
}
