// Package mediatype knows the media types of image documents, OCI's and
// Docker's alike (their JSON has the same shape), and tells a manifest
// from an index by its content when no media type says.
package mediatype

import (
	"encoding/json"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Docker's media types of the documents OCI also defines.
const (
	// DockerManifest is Docker's image manifest (schema 2).
	DockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	// DockerManifestList is Docker's index of platform manifests.
	DockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	// DockerConfig is Docker's image config.
	DockerConfig = "application/vnd.docker.container.image.v1+json"
)

// IsManifest reports whether mt is an image manifest's media type.
func IsManifest(mt string) bool {
	return mt == ocispec.MediaTypeImageManifest || mt == DockerManifest
}

// IsIndex reports whether mt is an index's (manifest list's) media type.
func IsIndex(mt string) bool {
	return mt == ocispec.MediaTypeImageIndex || mt == DockerManifestList
}

// IsConfig reports whether mt is an image config's media type.
func IsConfig(mt string) bool {
	return mt == ocispec.MediaTypeImageConfig || mt == DockerConfig
}

// Sniff returns the media type of a manifest or index document: its
// mediaType field, else a guess from the fields it has; "" when it is
// neither.
func Sniff(data []byte) string {
	var probe struct {
		MediaType string          `json:"mediaType"`
		Manifests json.RawMessage `json:"manifests"`
		Config    json.RawMessage `json:"config"`
	}
	if json.Unmarshal(data, &probe) != nil {
		return ""
	}
	switch {
	case probe.MediaType != "":
		return probe.MediaType
	case probe.Manifests != nil:
		return ocispec.MediaTypeImageIndex
	case probe.Config != nil:
		return ocispec.MediaTypeImageManifest
	}
	return ""
}
