package builder

import (
	"context"
	"time"

	"github.com/builder-project/builder/internal/store"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	digest "github.com/opencontainers/go-digest"
)

// InspectResult has docker's image-inspect fields.
type InspectResult struct {
	ID           string                          `json:"Id"`
	RepoTags     []string                        `json:"RepoTags"`
	RepoDigests  []string                        `json:"RepoDigests"`
	Parent       string                          `json:"Parent"`
	Comment      string                          `json:"Comment"`
	Created      string                          `json:"Created"`
	Author       string                          `json:"Author"`
	Config       dockerspec.DockerOCIImageConfig `json:"Config"`
	Architecture string                          `json:"Architecture"`
	Variant      string                          `json:"Variant,omitempty"`
	Os           string                          `json:"Os"`
	Size         int64                           `json:"Size"`
	RootFS       InspectRootFS                   `json:"RootFS"`
	Metadata     InspectMetadata                 `json:"Metadata"`
	ManifestDesc InspectDescriptor               `json:"Descriptor"`
	// GraphDriver names the image's snapshot directories, as docker's
	// overlay2 does: UpperDir is the top layer's, LowerDir the others'.
	GraphDriver GraphDriver `json:"GraphDriver"`
}

// InspectRootFS lists an image's layers by diffID.
type InspectRootFS struct {
	Type   string   `json:"Type"`
	Layers []string `json:"Layers"`
}

// InspectMetadata holds store metadata of an image.
type InspectMetadata struct {
	LastTagTime string `json:"LastTagTime"`
}

// InspectDescriptor describes the image's manifest, as docker ≥ 25 shows it.
type InspectDescriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
}

// Inspect returns details of the images refs name, in order.
func (b *Builder) Inspect(ctx context.Context, refs []string) ([]InspectResult, error) {
	idx, err := b.st.View()
	if err != nil {
		return nil, err
	}
	var out []InspectResult
	for _, ref := range refs {
		rec, err := idx.Resolve(ref)
		if err != nil {
			return nil, err
		}
		img, err := b.readImage(ctx, idx, rec)
		if err != nil {
			return nil, err
		}
		c := img.config
		r := InspectResult{
			ID:           rec.ID.String(),
			RepoTags:     []string{},
			RepoDigests:  append([]string{}, rec.RepoDigests...),
			Parent:       string(rec.Parent),
			Author:       c.Author,
			Config:       c.Config,
			Architecture: c.Architecture,
			Variant:      c.Variant,
			Os:           c.OS,
			RootFS:       InspectRootFS{Type: "layers", Layers: []string{}},
			ManifestDesc: InspectDescriptor{MediaType: rec.Manifest.MediaType, Digest: rec.Manifest.Digest.String(), Size: rec.Manifest.Size},
		}
		for _, t := range idx.TagsOf(rec.ID) {
			r.RepoTags = append(r.RepoTags, store.FamiliarRef(t))
		}
		if c.Created != nil {
			r.Created = c.Created.Format(time.RFC3339Nano)
		}
		if n := len(c.History); n > 0 {
			r.Comment = c.History[n-1].Comment
		}
		for _, d := range c.RootFS.DiffIDs {
			r.RootFS.Layers = append(r.RootFS.Layers, d.String())
		}
		r.Size = img.size()
		r.GraphDriver = b.imageGraphDriver(img.layers)
		if !rec.LastTagTime.IsZero() {
			r.Metadata.LastTagTime = rec.LastTagTime.Format(time.RFC3339Nano)
		}
		out = append(out, r)
	}
	return out, nil
}

// HistoryEntry is one row of History, newest first.
type HistoryEntry struct {
	// ID is the image ID on the top row and "<missing>" below, as docker shows.
	ID         string    `json:"Id"`
	Created    time.Time `json:"Created"`
	CreatedBy  string    `json:"CreatedBy"`
	Size       int64     `json:"Size"`
	Comment    string    `json:"Comment"`
	EmptyLayer bool      `json:"EmptyLayer"`
}

// History returns the history of the image ref names, newest first, with
// the size of each entry's layer (0 for empty layers).
func (b *Builder) History(ctx context.Context, ref string) ([]HistoryEntry, error) {
	idx, err := b.st.View()
	if err != nil {
		return nil, err
	}
	rec, err := idx.Resolve(ref)
	if err != nil {
		return nil, err
	}
	img, err := b.readImage(ctx, idx, rec)
	if err != nil {
		return nil, err
	}
	var out []HistoryEntry
	li := 0
	for _, h := range img.config.History {
		e := HistoryEntry{ID: "<missing>", CreatedBy: h.CreatedBy, Comment: h.Comment, EmptyLayer: h.EmptyLayer}
		if h.Created != nil {
			e.Created = *h.Created
		}
		if !h.EmptyLayer && li < len(img.manifest.Layers) {
			e.Size = img.layers[li].Size
			li++
		}
		out = append(out, e)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	if len(out) > 0 {
		out[0].ID = rec.ID.String()
	}
	return out, nil
}

// ResolveID returns the image ID a reference names.
func (b *Builder) ResolveID(ref string) (digest.Digest, error) {
	idx, err := b.st.View()
	if err != nil {
		return "", err
	}
	rec, err := idx.Resolve(ref)
	if err != nil {
		return "", err
	}
	return rec.ID, nil
}
