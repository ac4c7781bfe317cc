package platform

import (
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]string{
		"linux/amd64": "linux/amd64", "Linux/x86_64": "linux/amd64", "linux/aarch64/v8": "linux/arm64/v8", "linux/arm/v7": "linux/arm/v7",
	} {
		p, err := Parse(in)
		if err != nil || Format(p) != want {
			t.Errorf("Parse(%q) = %s, %v; want %s", in, Format(p), err, want)
		}
	}
	for _, bad := range []string{"linux", "linux/", "/amd64", "a/b/c/d", ""} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) succeeded", bad)
		}
	}
}

func TestPick(t *testing.T) {
	entry := func(arch, variant string) ocispec.Descriptor {
		return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString(arch + variant),
			Platform: &ocispec.Platform{OS: "linux", Architecture: arch, Variant: variant}}
	}
	attestation := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("att"), Platform: &ocispec.Platform{OS: "unknown", Architecture: "unknown"}}
	idx := ocispec.Index{Manifests: []ocispec.Descriptor{attestation, entry("arm", "v6"), entry("arm", "v7"), entry("arm64", ""), entry("amd64", "")}}
	for _, tc := range []struct {
		want          ocispec.Platform
		arch, variant string
	}{
		{ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, "arm64", ""},
		{ocispec.Platform{OS: "linux", Architecture: "arm64"}, "arm64", ""},
		{ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, "arm", "v7"},
		{ocispec.Platform{OS: "linux", Architecture: "arm"}, "arm", "v6"},
		{ocispec.Platform{OS: "linux", Architecture: "amd64"}, "amd64", ""},
	} {
		d, err := Pick(idx, tc.want)
		if err != nil || d.Platform.Architecture != tc.arch || d.Platform.Variant != tc.variant {
			t.Errorf("Pick(%s) = %+v, %v", Format(tc.want), d.Platform, err)
		}
	}
	if _, err := Pick(idx, ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v5"}); err == nil ||
		!strings.Contains(err.Error(), "available: linux/amd64, linux/arm/v6, linux/arm/v7, linux/arm64") {
		t.Errorf("no match: %v", err)
	}
}
