package registry

import (
	"fmt"
	"strings"

	"github.com/builder-project/builder/internal/mediatype"
	"github.com/builder-project/builder/internal/platform"
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

// hostPlatform is the platform pulled when none is asked for: platform.Host
// (linux/GOARCH, 32-bit arm's variant v7), with arm64's variant v8.
func hostPlatform() ocispec.Platform {
	p := platform.Host()
	if p.Architecture == "arm64" {
		p.Variant = "v8"
	}
	return p
}
