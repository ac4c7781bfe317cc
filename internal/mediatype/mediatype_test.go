package mediatype

import (
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestKinds(t *testing.T) {
	if !IsManifest(DockerManifest) || !IsManifest(ocispec.MediaTypeImageManifest) || IsManifest(DockerManifestList) {
		t.Error("IsManifest")
	}
	if !IsIndex(DockerManifestList) || !IsIndex(ocispec.MediaTypeImageIndex) || IsIndex(DockerConfig) {
		t.Error("IsIndex")
	}
	if !IsConfig(DockerConfig) || !IsConfig(ocispec.MediaTypeImageConfig) || IsConfig(DockerManifest) {
		t.Error("IsConfig")
	}
	for doc, want := range map[string]string{
		`{"mediaType":"x"}`:         "x",
		`{"manifests":[]}`:          ocispec.MediaTypeImageIndex,
		`{"config":{},"layers":[]}`: ocispec.MediaTypeImageManifest,
		`{"layers":[]}`:             "",
		`not json`:                  "",
	} {
		if got := Sniff([]byte(doc)); got != want {
			t.Errorf("Sniff(%s) = %q, want %q", doc, got, want)
		}
	}
}
