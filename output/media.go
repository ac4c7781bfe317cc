package output

import (
	"runtime"
	"strings"

	"github.com/builder-project/builder/internal/mediatype"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Annotation keys that name an image in an index.json.
const (
	// annotationContainerdName carries the full reference
	// (docker.io/library/busybox:latest), as containerd and docker 25 write it.
	annotationContainerdName = "io.containerd.image.name"
	// annotationRefName carries only the tag, as skopeo and umoci expect.
	annotationRefName = ocispec.AnnotationRefName
)

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
		if !mediatype.IsManifest(d.MediaType) && d.MediaType != "" {
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
