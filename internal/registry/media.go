package registry

import (
	"fmt"
	"runtime"
	"sort"
	"strings"

	"github.com/builder-project/builder/internal/mediatype"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Docker's schema 1 media types, which pulls refuse.
const (
	mediaTypeDockerSchema1       = "application/vnd.docker.distribution.manifest.v1+json"
	mediaTypeDockerSchema1Signed = "application/vnd.docker.distribution.manifest.v1+prettyjws"
)

// maxManifestSize bounds the manifests, indexes and configs read whole.
const maxManifestSize = 8 << 20

// isNondistributable reports whether a layer may not be pushed (Windows
// base layers): registries expect it to stay where its URLs point.
func isNondistributable(mt string) bool {
	return strings.Contains(mt, "nondistributable") || strings.Contains(mt, "foreign")
}

// checkManifestType explains why a document of media type mt is not an
// image manifest.
func checkManifestType(mt string) error {
	switch {
	case mediatype.IsManifest(mt):
		return nil
	case mt == mediaTypeDockerSchema1 || mt == mediaTypeDockerSchema1Signed:
		return fmt.Errorf("docker schema 1 manifests are not supported (%s): push the image again with a current client", mt)
	}
	return fmt.Errorf("unsupported manifest media type %q", mt)
}

// hostPlatform is the platform pulled when none is asked for:
// linux/GOARCH, with arm64's variant v8 and 32-bit arm's v7.
func hostPlatform() ocispec.Platform {
	p := ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}
	switch p.Architecture {
	case "arm64":
		p.Variant = "v8"
	case "arm":
		p.Variant = "v7"
	}
	return p
}

// platformString formats p as docker does: linux/arm64/v8.
func platformString(p ocispec.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// normVariant treats arm64 without a variant as arm64/v8.
func normVariant(p ocispec.Platform) string {
	if p.Architecture == "arm64" && p.Variant == "" {
		return "v8"
	}
	return p.Variant
}

// pickManifest returns the entry of idx for want: same OS and architecture,
// and the same variant when want names one, an exact variant preferred.
// With none, the error lists the platforms idx offers.
func pickManifest(idx ocispec.Index, want ocispec.Platform) (ocispec.Descriptor, error) {
	var found *ocispec.Descriptor
	var avail []string
	for i := range idx.Manifests {
		d := &idx.Manifests[i]
		p := d.Platform
		if p == nil || (!mediatype.IsManifest(d.MediaType) && d.MediaType != "") || p.OS == "unknown" {
			continue // attestations and other artifacts
		}
		avail = append(avail, platformString(*p))
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
	return ocispec.Descriptor{}, fmt.Errorf("no matching manifest for %s in the manifest list entries (available: %s)", platformString(want), strings.Join(avail, ", "))
}
