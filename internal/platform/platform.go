// Package platform handles image platforms ("os/arch[/variant]") the way
// docker does: parsing and formatting them, the platform of this host, and
// picking the manifest of a platform from a multi-platform index.
package platform

import (
	"fmt"
	"runtime"
	"sort"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-project/builder/internal/mediatype"
)

// Host is the platform of this machine: linux on its CPU, with 32-bit
// arm's variant v7, as BuildKit names the default build platform.
func Host() ocispec.Platform {
	p := ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}
	if runtime.GOARCH == "arm" {
		p.Variant = "v7"
	}
	return p
}

// Format renders p as "os/arch[/variant]", the form of --platform and
// TARGETPLATFORM.
func Format(p ocispec.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// Parse parses "os/arch[/variant]", case-insensitively, accepting the
// kernel's names of architectures (x86_64, aarch64) for Go's.
func Parse(s string) (ocispec.Platform, error) {
	parts := strings.Split(strings.ToLower(s), "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return ocispec.Platform{}, fmt.Errorf("invalid platform %q: want os/arch[/variant]", s)
	}
	p := ocispec.Platform{OS: parts[0], Architecture: normalizeArch(parts[1])}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

// normalizeArch maps the kernel's names of architectures to Go's.
func normalizeArch(a string) string {
	switch a {
	case "x86_64", "x86-64":
		return "amd64"
	case "aarch64":
		return "arm64"
	}
	return a
}

// normVariant treats arm64 without a variant as arm64/v8.
func normVariant(p ocispec.Platform) string {
	if p.Architecture == "arm64" && p.Variant == "" {
		return "v8"
	}
	return p.Variant
}

// Pick returns the image manifest of idx for want: same OS and
// architecture, and the same variant when want names one, an exact variant
// preferred. Entries that are not image manifests (attestations and other
// artifacts) are passed over. With none, the error lists the platforms idx
// offers.
func Pick(idx ocispec.Index, want ocispec.Platform) (ocispec.Descriptor, error) {
	var found *ocispec.Descriptor
	var avail []string
	for i := range idx.Manifests {
		d := &idx.Manifests[i]
		p := d.Platform
		if p == nil || (!mediatype.IsManifest(d.MediaType) && d.MediaType != "") || p.OS == "unknown" {
			continue
		}
		avail = append(avail, Format(*p))
		if p.OS != want.OS || p.Architecture != want.Architecture {
			continue
		}
		if normVariant(*p) == normVariant(want) {
			return *d, nil
		}
		if want.Variant == "" && found == nil {
			found = d
		}
	}
	if found != nil {
		return *found, nil
	}
	sort.Strings(avail)
	return ocispec.Descriptor{}, fmt.Errorf("no matching manifest for %s in the manifest list entries (available: %s)", Format(want), strings.Join(avail, ", "))
}
