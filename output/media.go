package output

import (
	"runtime"
	"strings"

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

// hostPlatform is the platform an index is resolved to on load: this
// host's OS and architecture, any variant (an exact arm64/v8 preferred).
var hostPlatform = ocispec.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}
