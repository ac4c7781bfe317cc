package builder

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/builder-project/builder/internal/store"
)

// ImageSummary is one row of Images.
type ImageSummary struct {
	ID          string            `json:"Id"`
	RepoTags    []string          `json:"RepoTags"`
	RepoDigests []string          `json:"RepoDigests"`
	Created     time.Time         `json:"Created"`
	Size        int64             `json:"Size"`
	Labels      map[string]string `json:"Labels"`
	// Dangling: the image has no tag.
	Dangling bool `json:"Dangling"`
}

// ImagesOptions filter Images, with docker's filters.
type ImagesOptions struct {
	// All lists intermediate images too: untagged ones that other images
	// are built on, which docker images hides without -a.
	All bool
	// Dangling, when non-nil, keeps only images that are (or are not) dangling.
	Dangling *bool
	// Labels keep images having each label ("k" or "k=v").
	Labels []string
	// References keep images with a tag matching one of these patterns
	// (path.Match against the familiar name, with or without tag, as
	// docker), and of their tags only the matching ones, in RepoTags.
	References []string
	// Before keeps images created before the image this names; Since,
	// images created after it (docker's before= and since= filters).
	Before, Since string
}

// Images lists stored images, newest first.
func (b *Builder) Images(ctx context.Context, opts ImagesOptions) ([]ImageSummary, error) {
	idx, err := b.st.View()
	if err != nil {
		return nil, err
	}
	before, since, err := b.timeBounds(ctx, idx, opts)
	if err != nil {
		return nil, err
	}
	var out []ImageSummary
	for _, rec := range idx.Images() {
		img, err := b.readImage(ctx, idx, rec)
		if err != nil {
			return nil, err
		}
		s := ImageSummary{ID: rec.ID.String(), RepoDigests: append([]string{}, rec.RepoDigests...), Labels: img.config.Config.Labels, Size: img.size()}
		for _, t := range idx.TagsOf(rec.ID) {
			s.RepoTags = append(s.RepoTags, store.FamiliarRef(t))
		}
		if s.RepoTags == nil {
			s.RepoTags = []string{}
		}
		s.Dangling = len(s.RepoTags) == 0
		if s.Dangling && !opts.All && idx.HasChildren(rec.ID) {
			continue
		}
		s.Created = img.created()
		if !opts.keep(&s) || !before.IsZero() && !s.Created.Before(before) || !since.IsZero() && !s.Created.After(since) {
			continue
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.After(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// timeBounds returns the creation times of the images opts.Before and
// opts.Since name (zero when not set).
func (b *Builder) timeBounds(ctx context.Context, idx *store.Index, opts ImagesOptions) (before, since time.Time, err error) {
	created := func(filter, ref string) (time.Time, error) {
		if ref == "" {
			return time.Time{}, nil
		}
		rec, err := idx.Resolve(ref)
		if err != nil {
			return time.Time{}, fmt.Errorf("filter %s=%s: %w", filter, ref, err)
		}
		img, err := b.readImage(ctx, idx, rec)
		if err != nil {
			return time.Time{}, err
		}
		return img.created(), nil
	}
	if before, err = created("before", opts.Before); err != nil {
		return
	}
	since, err = created("since", opts.Since)
	return
}

// keep reports whether s passes the filters, and leaves in s.RepoTags only
// the tags the reference filters match.
func (o ImagesOptions) keep(s *ImageSummary) bool {
	if o.Dangling != nil && *o.Dangling != s.Dangling {
		return false
	}
	for _, l := range o.Labels {
		k, v, hasV := strings.Cut(l, "=")
		got, ok := s.Labels[k]
		if !ok || hasV && got != v {
			return false
		}
	}
	if len(o.References) == 0 {
		return true
	}
	var tags []string
	for _, t := range s.RepoTags {
		name := t
		if i := strings.LastIndex(t, ":"); i > strings.LastIndex(t, "/") {
			name = t[:i]
		}
		if slices.ContainsFunc(o.References, func(pat string) bool {
			m1, _ := path.Match(pat, t)
			m2, _ := path.Match(pat, name)
			return m1 || m2
		}) {
			tags = append(tags, t)
		}
	}
	s.RepoTags = tags
	return len(tags) > 0
}

// Tag points the reference dst at the image src names.
func (b *Builder) Tag(ctx context.Context, src, dst string) error {
	tags, err := normalizeTags([]string{dst})
	if err != nil {
		return err
	}
	return b.st.Tag(src, tags[0])
}

// RemoveResult reports what Remove did, in docker's words: each entry is
// "Untagged: <ref>" or "Deleted: <id>".
type RemoveResult struct {
	Untagged []string
	Deleted  []string
}

// Remove removes images as docker rmi does: a tag is untagged, and the image
// is deleted when its last tag goes. An image ID with several tags needs
// force, which untags them all; so does an image a container was created
// from, which keeps working, and one a running container uses cannot be
// removed at all. Nor can an image other images name as their Parent:
// removing its last tag only untags it. Unreferenced blobs and snapshots are then collected.
func (b *Builder) Remove(ctx context.Context, refs []string, force bool) (RemoveResult, error) {
	var res RemoveResult
	var errs []error
	for _, ref := range refs {
		if err := b.checkNotRunningImage(ref, force); err != nil {
			errs = append(errs, fmt.Errorf("removing %s: %w", ref, err))
			continue
		}
		r, err := b.st.Remove(ref, force)
		if err != nil {
			errs = append(errs, fmt.Errorf("removing %s: %w", ref, err))
			continue
		}
		res.Untagged = append(res.Untagged, r.Untagged...)
		for _, id := range r.Deleted {
			res.Deleted = append(res.Deleted, id.String())
		}
	}
	if len(res.Deleted) > 0 {
		if _, err := b.collect(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return res, errors.Join(errs...)
}

// checkNotRunningImage is docker's hard conflict of rmi -f: the image ref
// names is used by a running container. Without force, the store refuses
// any image a container uses.
func (b *Builder) checkNotRunningImage(ref string, force bool) error {
	if !force {
		return nil
	}
	id, err := b.ResolveID(ref)
	if err != nil {
		return nil // the store reports it
	}
	recs, err := b.st.Containers()
	if err != nil {
		return err
	}
	for _, rec := range recs {
		if rec.Image != id {
			continue
		}
		c, err := b.decodeContainer(rec)
		if err != nil {
			return err
		}
		if st, err := b.containerState(c); err == nil && st.Running() {
			return fmt.Errorf("%w: unable to delete %s (cannot be forced) - image is being used by running container %s", ErrConflict, store.ShortID(id), shortContainerID(rec.ID))
		}
	}
	return nil
}
