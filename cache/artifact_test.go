package cache

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func artifactRecords() []Record {
	layer := &LayerRef{
		Desc:   ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromString("layer"), Size: 5},
		DiffID: digest.FromString("layer"), ChainID: digest.FromString("chain"),
	}
	return []Record{
		{Key: digest.FromString("b"), Config: json.RawMessage(`{}`), EmptyLayer: true},
		{Key: digest.FromString("a"), Config: json.RawMessage(`{"architecture":"amd64"}`), Layer: layer, Size: 10},
		{Key: digest.FromString("c"), Config: json.RawMessage(`{}`), Layer: layer, Size: 10},
	}
}

// fetcher serves the artifact's small blobs, after tamper has had its way.
func fetcher(a *Artifact, tamper func(d digest.Digest, data []byte) []byte) Fetcher {
	return func(_ context.Context, d ocispec.Descriptor, limit int64) ([]byte, error) {
		data := a.Blobs[d.Digest]
		if d.Digest == a.Desc.Digest {
			data = a.Manifest
		}
		if data == nil {
			return nil, fmt.Errorf("blob %s not found", d.Digest)
		}
		if tamper != nil {
			data = tamper(d.Digest, data)
		}
		if int64(len(data)) > limit {
			return nil, fmt.Errorf("blob %s over limit", d.Digest)
		}
		return data, nil
	}
}

func TestArtifactRoundTrip(t *testing.T) {
	recs := artifactRecords()
	a, err := NewArtifact(recs)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Layers) != 1 {
		t.Fatalf("%d layers, want the shared one once", len(a.Layers))
	}
	again, _ := NewArtifact([]Record{recs[2], recs[0], recs[1]})
	if again.Desc.Digest != a.Desc.Digest {
		t.Error("the manifest depends on the order of the records")
	}
	got, layers, err := ReadArtifact(context.Background(), a.Desc, fetcher(a, nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || len(layers) != 1 || got[recs[1].Key].Layer.DiffID != recs[1].Layer.DiffID {
		t.Errorf("read back %d records, %d layers", len(got), len(layers))
	}
	empty, _ := NewArtifact(nil)
	if got, _, err := ReadArtifact(context.Background(), empty.Desc, fetcher(empty, nil)); err != nil || len(got) != 0 {
		t.Errorf("empty artifact: %v, %v", got, err)
	}
}

func TestArtifactRejectsDamage(t *testing.T) {
	recs := artifactRecords()
	a, _ := NewArtifact(recs)
	rewrite := func(fn func(*ocispec.Manifest)) func(digest.Digest, []byte) []byte {
		return func(d digest.Digest, data []byte) []byte {
			if d != a.Desc.Digest {
				return data
			}
			var mf ocispec.Manifest
			json.Unmarshal(data, &mf)
			fn(&mf)
			out, _ := json.Marshal(mf)
			return out
		}
	}
	for name, tc := range map[string]struct {
		tamper func(digest.Digest, []byte) []byte
		want   string
	}{
		"layer not listed": {rewrite(func(mf *ocispec.Manifest) { mf.Layers = mf.Layers[:3] }), "does not list"},
		"unused layer": {rewrite(func(mf *ocispec.Manifest) {
			mf.Layers = append(mf.Layers, ocispec.Descriptor{MediaType: "x", Digest: digest.FromString("x"), Size: 1})
		}), "no record uses it"},
		"wrong diffID": {rewrite(func(mf *ocispec.Manifest) {
			mf.Layers[3].Annotations[AnnotationDiffID] = digest.FromString("other").String()
		}), "annotated with diffID"},
		"not a cache": {rewrite(func(mf *ocispec.Manifest) { mf.ArtifactType = "other" }), "not a build cache manifest"},
		"bad record": {func(d digest.Digest, data []byte) []byte {
			if strings.Contains(string(data), `"key"`) {
				return []byte(`{"key":"nope"}`)
			}
			return data
		}, "invalid key"},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := ReadArtifact(context.Background(), a.Desc, fetcher(a, tc.tamper))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}
