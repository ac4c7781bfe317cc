package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Layer is one layer as the store records it: the diffID of its
// uncompressed tar and the stored blob holding it.
type Layer struct {
	// DiffID is the digest of the uncompressed tar.
	DiffID digest.Digest `json:"diffID"`
	// Blob describes the stored blob (compressed or not) whose content is the layer.
	Blob ocispec.Descriptor `json:"blob"`
	// Size is the uncompressed size in bytes, 0 when unknown.
	Size int64 `json:"size,omitempty"`
}

// NewImage describes an image whose blobs (manifest, config, layers) are
// already in the store, for PutImage.
type NewImage struct {
	// ID is the digest of the image config.
	ID digest.Digest
	// Manifest describes the manifest (or index) blob.
	Manifest ocispec.Descriptor
	// Parent is the image it was built from; empty when unknown.
	Parent digest.Digest
	// Layers are the image's layers, recorded as by RecordLayers.
	Layers []Layer
}

// RemoveResult says what Remove or Prune did, in docker's words.
type RemoveResult struct {
	// Untagged are the familiar references removed: tags, and the repo
	// digests of each deleted image.
	Untagged []string
	// Deleted are the IDs of the deleted images.
	Deleted []digest.Digest
}

// PutImage records an image and points each of tags at it, in one atomic
// update: its layers are recorded as by RecordLayers, the image record is
// created unless it exists (Created now), a tag that pointed at another
// image moves, and LastTagTime is set when tags are given. Tags must be
// normalized references without a digest (see NormalizeRef).
func (s *Store) PutImage(ctx context.Context, img NewImage, tags []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkTags(tags); err != nil {
		return fmt.Errorf("recording image %s: %w", img.ID, err)
	}
	if err := img.ID.Validate(); err != nil {
		return fmt.Errorf("recording image %q: %w", img.ID, err)
	}
	now := time.Now().UTC()
	err := s.update(func(idx *Index) error {
		idx.addLayers(img.Layers)
		rec := idx.images[img.ID]
		if rec == nil {
			rec = &Image{ID: img.ID, Manifest: img.Manifest, Created: now, Parent: img.Parent}
			idx.images[img.ID] = rec
		}
		idx.tag(rec, now, tags)
		return nil
	})
	if err != nil {
		return fmt.Errorf("recording image %s: %w", img.ID, err)
	}
	return nil
}

// RecordLayers records stored blobs as forms of their layers, with no image:
// for a build that is exported but not stored, or imported build cache.
// Later exports and pushes reuse these blobs instead of compressing again.
func (s *Store) RecordLayers(layers ...Layer) error {
	if err := s.update(func(idx *Index) error {
		idx.addLayers(layers)
		return nil
	}); err != nil {
		return fmt.Errorf("recording layers: %w", err)
	}
	return nil
}

// Tag points tag, a normalized reference without a digest, at the image src
// names (see Index.Resolve), moving it if it pointed elsewhere.
func (s *Store) Tag(src, tag string) error {
	if err := checkTags([]string{tag}); err != nil {
		return err
	}
	return s.update(func(idx *Index) error {
		rec, err := idx.resolve(src)
		if err != nil {
			return err
		}
		idx.tag(rec, time.Now().UTC(), []string{tag})
		return nil
	})
}

// Remove removes what ref names as docker rmi does. A tag is untagged, and
// its image deleted when that was its last tag. Any other reference (an ID,
// name@digest) deletes the image with all its tags, but an image with
// several tags is only deleted with force, else the error wraps ErrConflict.
// So is an image a container was created from, unless forced; its
// container keeps working, as Collect keeps what it needs. The repo
// digests of a deleted image are reported as untagged. An image other images
// name as their Parent is never deleted, as in docker: removing its last
// tag only untags it, and removing it by ID is a conflict even with force.
// Blobs and snapshots stay until Collect.
func (s *Store) Remove(ref string, force bool) (RemoveResult, error) {
	var res RemoveResult
	err := s.update(func(idx *Index) error {
		res = RemoveResult{}
		rec, err := idx.resolve(ref)
		if err != nil {
			return err
		}
		tags := idx.TagsOf(rec.ID)
		if n, err := NormalizeRef(ref); err == nil && idx.tags[n] == rec.ID {
			if len(tags) <= 1 {
				if err := s.checkInUse(rec, ref, force); err != nil {
					return err
				}
			}
			delete(idx.tags, n)
			res.Untagged = append(res.Untagged, FamiliarRef(n))
			if len(tags) > 1 || idx.HasChildren(rec.ID) {
				return nil
			}
		} else if idx.HasChildren(rec.ID) {
			return fmt.Errorf("%w: unable to delete %s (cannot be forced) - image has dependent child images", ErrConflict, ShortID(rec.ID))
		} else if len(tags) > 1 && !force {
			return fmt.Errorf("%w: unable to delete %s (must be forced) - image is referenced in multiple repositories", ErrConflict, ShortID(rec.ID))
		} else if err := s.checkInUse(rec, "", force); err != nil {
			return err
		}
		idx.deleteImage(rec.ID, &res)
		return nil
	})
	if err != nil {
		return RemoveResult{}, err
	}
	return res, nil
}

// Prune deletes every dangling (untagged) image, or with all every image,
// with its tags, but never an image a container was created from, nor one
// another image that stays names as its Parent. Blobs and snapshots stay
// until Collect.
func (s *Store) Prune(all bool) (RemoveResult, error) {
	var res RemoveResult
	err := s.update(func(idx *Index) error {
		res = RemoveResult{}
		used, err := s.imagesInUse()
		if err != nil {
			return err
		}
		// Children go first; their parents follow in the next round.
		for {
			var ids []digest.Digest
			for id := range idx.images {
				if !used[id] && (all || len(idx.TagsOf(id)) == 0) && !idx.HasChildren(id) {
					ids = append(ids, id)
				}
			}
			if len(ids) == 0 {
				return nil
			}
			slices.Sort(ids)
			for _, id := range ids {
				idx.deleteImage(id, &res)
			}
		}
	})
	if err != nil {
		return RemoveResult{}, fmt.Errorf("pruning images: %w", err)
	}
	return res, nil
}

// SetRepoDigests adds name@digest references (as pulled or pushed) to the
// image id. Each is normalized; one already there is not added twice.
func (s *Store) SetRepoDigests(id digest.Digest, refs ...string) error {
	norm := make([]string, 0, len(refs))
	for _, r := range refs {
		n, err := NormalizeRef(r)
		if err != nil {
			return err
		}
		if !strings.Contains(n, "@") {
			return fmt.Errorf("invalid repo digest %q: no digest", r)
		}
		norm = append(norm, n)
	}
	return s.update(func(idx *Index) error {
		rec := idx.images[id]
		if rec == nil {
			return fmt.Errorf("image %s: %w", id, ErrNotFound)
		}
		for _, n := range norm {
			if !slices.Contains(rec.RepoDigests, n) {
				rec.RepoDigests = append(rec.RepoDigests, n)
			}
		}
		return nil
	})
}

// addLayers records each layer's blob as a form of its diffID, and its
// uncompressed size when known.
func (idx *Index) addLayers(layers []Layer) {
	for _, l := range layers {
		li := idx.layers[l.DiffID]
		if li == nil {
			li = &LayerInfo{DiffID: l.DiffID}
			idx.layers[l.DiffID] = li
		}
		if l.Size > 0 {
			li.Size = l.Size
		}
		if l.Blob.Digest != "" && !slices.ContainsFunc(li.Blobs, func(b ocispec.Descriptor) bool { return b.Digest == l.Blob.Digest }) {
			li.Blobs = append(li.Blobs, ocispec.Descriptor{MediaType: l.Blob.MediaType, Digest: l.Blob.Digest, Size: l.Blob.Size})
		}
	}
}

// tag points each of tags at rec.
func (idx *Index) tag(rec *Image, now time.Time, tags []string) {
	for _, t := range tags {
		idx.tags[t] = rec.ID
		rec.LastTagTime = now
	}
}

// deleteImage deletes the image id and the tags pointing at it, and reports
// them (repo digests included) in res.
func (idx *Index) deleteImage(id digest.Digest, res *RemoveResult) {
	for _, t := range idx.TagsOf(id) {
		delete(idx.tags, t)
		res.Untagged = append(res.Untagged, FamiliarRef(t))
	}
	for _, rd := range idx.images[id].RepoDigests {
		res.Untagged = append(res.Untagged, FamiliarRef(rd))
	}
	delete(idx.images, id)
	res.Deleted = append(res.Deleted, id)
}

// HasChildren reports whether an image names id as its Parent.
func (idx *Index) HasChildren(id digest.Digest) bool {
	for _, rec := range idx.images {
		if rec.Parent == id {
			return true
		}
	}
	return false
}

// checkTags makes sure each tag is a normalized reference without a digest.
func checkTags(tags []string) error {
	for _, t := range tags {
		if n, err := NormalizeRef(t); err != nil || n != t || strings.Contains(t, "@") {
			return fmt.Errorf("invalid tag %q: not a normalized name:tag reference", t)
		}
	}
	return nil
}

// ShortID returns the 12-character form docker shows of an ID: the first 12
// characters of its encoded part (all of it when shorter).
func ShortID(id digest.Digest) string {
	e := id.Encoded()
	if len(e) > 12 {
		return e[:12]
	}
	return e
}
