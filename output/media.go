package output

import (
	"encoding/json"
	"runtime"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Docker's media types, interchangeable with their OCI counterparts for our
// purposes: the JSON documents have the same shape.
const (
	mediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	mediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
)

// Annotation keys that name an image in an index.json.
const (
	// annotationContainerdName carries the full reference
	// (docker.io/library/busybox:latest), as containerd and docker 25 write it.
	annotationContainerdName = "io.containerd.image.name"
	// annotationRefName carries only the tag, as skopeo and umoci expect.
	annotationRefName = ocispec.AnnotationRefName
)

func isManifestType(mt string) bool {
	return mt == ocispec.MediaTypeImageManifest || mt == mediaTypeDockerManifest
}

func isIndexType(mt string) bool {
	return mt == ocispec.MediaTypeImageIndex || mt == mediaTypeDockerManifestList
}

func isConfigType(mt string) bool {
	return mt == ocispec.MediaTypeImageConfig || mt == mediaTypeDockerConfig
}

// sniffMediaType returns the media type of a manifest or index document:
// its mediaType field, else a guess from the fields it has.
func sniffMediaType(data []byte) string {
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

// pickPlatform returns the entry of an index that suits the host
// (runtime.GOOS/GOARCH), preferring an exact variant match on arm64.
func pickPlatform(idx ocispec.Index) (ocispec.Descriptor, bool) {
	var found *ocispec.Descriptor
	for i := range idx.Manifests {
		d := &idx.Manifests[i]
		p := d.Platform
		if p == nil || p.OS != runtime.GOOS || p.Architecture != runtime.GOARCH {
			continue
		}
		if !isManifestType(d.MediaType) && d.MediaType != "" {
			continue
		}
		if found == nil {
			found = d
		}
		if runtime.GOARCH == "arm64" && (p.Variant == "" || p.Variant == "v8") {
			return *d, true
		}
	}
	if found == nil {
		return ocispec.Descriptor{}, false
	}
	return *found, true
}

// tagOf returns the tag of a normalized reference, or "" when it has none
// (a digest reference).
func tagOf(ref string) string {
	if strings.Contains(ref, "@") {
		return ""
	}
	i := strings.LastIndex(ref, ":")
	if i < 0 || i < strings.LastIndex(ref, "/") {
		return ""
	}
	return ref[i+1:]
}

// blobName is where a blob lives in an OCI image layout.
func blobName(d ocispec.Descriptor) string {
	return "blobs/" + d.Digest.Algorithm().String() + "/" + d.Digest.Encoded()
}
