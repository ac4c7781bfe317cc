package cache

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// chainRecords are four steps of one stage: a layer, a config change, a
// second layer, and a step elsewhere that shares the first blob on another
// parent.
func chainRecords() ([]Record, map[digest.Digest]digest.Digest) {
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	d1, d2 := digest.FromString("diff1"), digest.FromString("diff2")
	c1 := identity.ChainID([]digest.Digest{digest.FromString("base"), d1})
	c2 := identity.ChainID([]digest.Digest{c1, d2})
	gz := func(s string) ocispec.Descriptor {
		return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromString(s), Size: 7}
	}
	k := func(s string) digest.Digest { return digest.FromString("key " + s) }
	recs := []Record{
		{Key: k("1"), Config: json.RawMessage(`{"architecture":"amd64"}`), CreatedBy: "RUN one", Created: created, Size: 100,
			Layer: &LayerRef{Desc: gz("blob1"), DiffID: d1, ChainID: c1}},
		{Key: k("2"), Config: json.RawMessage(`{"config":{"Env":["A=1"]}}`), CreatedBy: "ENV A=1", EmptyLayer: true, Created: created},
		{Key: k("3"), Config: json.RawMessage(`{}`), CreatedBy: "RUN three", Created: created, Size: 200,
			Layer: &LayerRef{Desc: gz("blob2"), DiffID: d2, ChainID: c2}},
		{Key: k("4"), Config: json.RawMessage(`{}`), CreatedBy: "COPY one", Created: created, Size: 100,
			Layer: &LayerRef{Desc: gz("blob1"), DiffID: d1, ChainID: d1}},
	}
	return recs, map[digest.Digest]digest.Digest{k("2"): k("1"), k("3"): k("2")}
}

func TestImageManifestRoundTrip(t *testing.T) {
	recs, parents := chainRecords()
	a, err := NewImageManifest(recs, parents)
	if err != nil {
		t.Fatal(err)
	}
	var mf ocispec.Manifest
	if err := json.Unmarshal(a.Manifest, &mf); err != nil {
		t.Fatal(err)
	}
	if mf.MediaType != ocispec.MediaTypeImageManifest || mf.Config.MediaType != MediaTypeCacheConfig || mf.ArtifactType != "" {
		t.Errorf("manifest %s, config %s, artifactType %q", mf.MediaType, mf.Config.MediaType, mf.ArtifactType)
	}
	if len(mf.Layers) != 2 {
		t.Fatalf("%d manifest layers, want the two blobs once each", len(mf.Layers))
	}
	for _, l := range mf.Layers {
		if l.MediaType != ocispec.MediaTypeImageLayerGzip || l.Annotations[AnnotationUncompressed] == "" {
			t.Errorf("layer %+v: want its own media type and a diffID annotation", l)
		}
	}
	// The config is BuildKit's structure: layer entries with parents,
	// records with results and inputs.
	var cfg cacheConfig
	if err := json.Unmarshal(a.Blobs[mf.Config.Digest], &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Layers) != 3 || len(cfg.Records) != 4 {
		t.Fatalf("config has %d layer entries and %d records, want 3 (blob1 twice, on two parents) and 4", len(cfg.Layers), len(cfg.Records))
	}
	byKey := map[digest.Digest]cacheRecord{}
	for _, r := range cfg.Records {
		byKey[r.Digest] = r
	}
	r3 := byKey[recs[2].Key]
	if len(r3.Inputs) != 1 || cfg.Records[r3.Inputs[0][0].LinkIndex].Digest != recs[1].Key {
		t.Errorf("record 3 inputs %+v, want a link to record 2", r3.Inputs)
	}
	e3 := cfg.Layers[r3.Results[0].LayerIndex]
	if e3.Blob != recs[2].Layer.Desc.Digest || e3.ParentIndex < 0 || cfg.Layers[e3.ParentIndex].Blob != recs[0].Layer.Desc.Digest {
		t.Errorf("layer entry of record 3: %+v, want blob2 on blob1", e3)
	}
	if e4 := cfg.Layers[byKey[recs[3].Key].Results[0].LayerIndex]; e4.ParentIndex != -1 {
		t.Errorf("layer entry of record 4 has parent %d, want -1", e4.ParentIndex)
	}
	raw := string(a.Blobs[mf.Config.Digest])
	for _, want := range []string{`"parent":-1`, `"layers":[{"layer":`, `"inputs":[[{"link":`} {
		if !strings.Contains(raw, want) {
			t.Errorf("config lacks %s:\n%s", want, raw)
		}
	}

	again, _ := NewImageManifest([]Record{recs[3], recs[1], recs[0], recs[2]}, parents)
	if again.Desc.Digest != a.Desc.Digest {
		t.Error("the manifest depends on the order of the records")
	}
	got, layers, err := ReadImageManifest(context.Background(), a.Desc, fetcher(a, nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 2 {
		t.Errorf("read %d layers, want 2", len(layers))
	}
	for _, want := range recs {
		if g := got[want.Key]; !reflect.DeepEqual(g, want) {
			t.Errorf("record %s read back as\n%+v\nwant\n%+v", want.Key, g, want)
		}
	}

	// A cache without layers is still a valid image manifest.
	empty, err := NewImageManifest([]Record{recs[1]}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, _, err := ReadImageManifest(context.Background(), empty.Desc, fetcher(empty, nil)); err != nil || len(got) != 1 {
		t.Errorf("cache without layers: %v, %v", got, err)
	}
	// The artifact form reads through the same entry point.
	art, _ := NewArtifact(recs)
	if got, _, err := ReadImageManifest(context.Background(), art.Desc, fetcher(art, nil)); err != nil || len(got) != 4 {
		t.Errorf("artifact form: %d records, %v", len(got), err)
	}
}

func TestImageManifestRejectsDamage(t *testing.T) {
	recs, parents := chainRecords()
	a, _ := NewImageManifest(recs, parents)
	var mf0 ocispec.Manifest
	json.Unmarshal(a.Manifest, &mf0)
	cfgDigest := mf0.Config.Digest
	manifest := func(fn func(*ocispec.Manifest)) func(digest.Digest, []byte) []byte {
		return rewriteJSON(a.Desc.Digest, fn)
	}
	config := func(fn func(*cacheConfig)) func(digest.Digest, []byte) []byte { return rewriteJSON(cfgDigest, fn) }
	for name, tc := range map[string]struct {
		tamper func(digest.Digest, []byte) []byte
		want   string
	}{
		"manifest not JSON": {func(d digest.Digest, data []byte) []byte {
			if d == a.Desc.Digest {
				return []byte("{")
			}
			return data
		}, "decoding cache manifest"},
		"image, not cache": {manifest(func(mf *ocispec.Manifest) { mf.Config.MediaType = ocispec.MediaTypeImageConfig }), "not a build cache manifest"},
		"index":            {manifest(func(mf *ocispec.Manifest) { mf.MediaType = ocispec.MediaTypeImageIndex }), "not a build cache manifest"},
		"no diffID":        {manifest(func(mf *ocispec.Manifest) { mf.Layers[0].Annotations = nil }), AnnotationUncompressed},
		"zero size":        {manifest(func(mf *ocispec.Manifest) { mf.Layers[0].Size = 0 }), "has size 0"},
		"config too big":   {manifest(func(mf *ocispec.Manifest) { mf.Config.Size = MaxConfigSize + 1 }), "more than"},
		"config not JSON": {func(d digest.Digest, data []byte) []byte {
			if d == cfgDigest {
				return []byte("[1,2")
			}
			return data
		}, "decoding cache config"},
		"blob not in manifest": {manifest(func(mf *ocispec.Manifest) { mf.Layers = mf.Layers[:1] }), "is not in the manifest"},
		"unnamed layer": {manifest(func(mf *ocispec.Manifest) {
			mf.Layers = append(mf.Layers, ocispec.Descriptor{MediaType: "x", Digest: digest.FromString("x"), Size: 1,
				Annotations: map[string]string{AnnotationUncompressed: digest.FromString("y").String()}})
		}), "no layer entry names it"},
		"parent out of range": {config(func(c *cacheConfig) { c.Layers[0].ParentIndex = 99 }), "parent 99 out of range"},
		"result out of range": {config(func(c *cacheConfig) {
			for i := range c.Records {
				if len(c.Records[i].Results) > 0 {
					c.Records[i].Results[0].LayerIndex = 99
				}
			}
		}), "layer 99 out of range"},
		"link out of range": {config(func(c *cacheConfig) { c.Records[0].Inputs = [][]cacheInput{{{LinkIndex: -2}}} }), "input link -2 out of range"},
		"wrong diffID":      {config(func(c *cacheConfig) { c.Layers[0].Annotations.DiffID = digest.FromString("other") }), "but the manifest annotates"},
		"bad record":        {config(func(c *cacheConfig) { c.Records[0].Builder.Config = json.RawMessage(`"x"`) }), "invalid image config"},
		"bad key":           {config(func(c *cacheConfig) { c.Records[0].Digest = "sha256:nope" }), "record \"sha256:nope\""},
		"twice":             {config(func(c *cacheConfig) { c.Records = append(c.Records, c.Records[0]) }), "listed twice"},
		"BuildKit only": {config(func(c *cacheConfig) {
			for i := range c.Records {
				c.Records[i].Builder = nil
			}
		}), "a BuildKit cache?"},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := ReadImageManifest(context.Background(), a.Desc, fetcher(a, tc.tamper))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// TestImageManifestBoundedReads checks that each blob is fetched with its
// bound, and that a fetcher enforcing the bound stops an oversized one.
func TestImageManifestBoundedReads(t *testing.T) {
	recs, parents := chainRecords()
	a, _ := NewImageManifest(recs, parents)
	limits := map[digest.Digest]int64{}
	inner := fetcher(a, nil)
	_, _, err := ReadImageManifest(context.Background(), a.Desc, func(ctx context.Context, d ocispec.Descriptor, limit int64) ([]byte, error) {
		limits[d.Digest] = limit
		return inner(ctx, d, limit)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(limits) != 2 || limits[a.Desc.Digest] != MaxManifestSize {
		t.Errorf("fetched %v, want the manifest (bound %d) and the config only", limits, MaxManifestSize)
	}
	for d, l := range limits {
		if d != a.Desc.Digest && l != MaxConfigSize {
			t.Errorf("config fetched with bound %d, want %d", l, MaxConfigSize)
		}
	}
	huge := fetcher(a, func(d digest.Digest, data []byte) []byte {
		if d != a.Desc.Digest {
			return data
		}
		return append(data, make([]byte, MaxManifestSize)...)
	})
	if _, _, err := ReadImageManifest(context.Background(), a.Desc, huge); err == nil || !strings.Contains(err.Error(), "over limit") {
		t.Errorf("oversized manifest: %v", err)
	}
	if _, err := NewImageManifest(append(recs, recs[0]), nil); err == nil {
		t.Error("a record given twice was encoded")
	}
	bad := recs[0]
	bad.Layer = &LayerRef{Desc: bad.Layer.Desc, DiffID: "nope", ChainID: bad.Layer.ChainID}
	if _, err := NewImageManifest([]Record{bad}, nil); err == nil {
		t.Errorf("a record with an invalid diffID was encoded: %+v", bad.Layer)
	}
}

// rewriteJSON returns a tamper function that decodes the blob target as a
// T, lets fn change it and encodes it again, leaving other blobs alone.
func rewriteJSON[T any](target digest.Digest, fn func(*T)) func(digest.Digest, []byte) []byte {
	return func(d digest.Digest, data []byte) []byte {
		if d != target {
			return data
		}
		var v T
		json.Unmarshal(data, &v)
		fn(&v)
		out, _ := json.Marshal(v)
		return out
	}
}
