package builder

import (
	"context"
	"errors"
	"fmt"

	"github.com/builder-project/builder/dockerfile"
	"github.com/builder-project/builder/internal/platform"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Pull policies of a build (BuildOptions.Pull), as docker's --pull.
const (
	// PullMissing pulls an image a build needs only when the store lacks
	// it (for the build's platform). It is the default.
	PullMissing = "missing"
	// PullAlways pulls every image reference a build names again, so that
	// a moved tag is followed (build --pull).
	PullAlways = "always"
	// PullNever never contacts a registry (build --pull=false).
	PullNever = "never"
)

// image returns the image a FROM, COPY --from or RUN --mount from= names,
// for platform: from the store, or pulled from its registry as the build's
// pull policy allows. Stages that name the same image pull it once.
func (bd *build) image(ctx context.Context, ref string, platform ocispec.Platform) (*stored, error) {
	img, _, err := bd.imagePulling(ctx, ref, platform, nil)
	return img, err
}

// imagePulling is image that also says whether the image came from a
// registry (pulled), and calls pulling, if not nil, before it contacts one.
func (bd *build) imagePulling(ctx context.Context, ref string, platform ocispec.Platform, pulling func()) (img *stored, pulled bool, err error) {
	policy := bd.opts.Pull
	if policy == "" {
		policy = PullMissing
	}
	if policy != PullAlways {
		img, err := bd.b.resolve(ctx, ref)
		switch {
		case err == nil && (isIDRef(ref, img.rec) || samePlatform(img.config.Platform, platform)):
			return img, false, nil
		case err == nil && policy == PullNever:
			return nil, false, fmt.Errorf("image %s is %s, not %s (and --pull=never)", ref, dockerfile.FormatPlatform(img.config.Platform), dockerfile.FormatPlatform(platform))
		case err != nil && (policy == PullNever || !errors.Is(err, ErrNotFound)):
			return nil, false, err
		}
	}
	if pulling != nil {
		pulling()
	}
	key := ref + " " + dockerfile.FormatPlatform(platform)
	_, err, _ = bd.pulls.Do(key, func() (any, error) {
		opts := PullOptions{RegistryOptions: bd.opts.Registry, Platform: dockerfile.FormatPlatform(platform), Progress: bd.ev.emit}
		_, err := bd.b.Pull(ctx, ref, opts)
		return nil, err
	})
	if err != nil {
		return nil, true, fmt.Errorf("pulling %s: %w", ref, err)
	}
	img, err = bd.b.resolve(ctx, ref)
	return img, true, err
}

// samePlatform reports whether an image's platform is the wanted one. An
// image that says nothing about its platform matches any.
func samePlatform(have, want ocispec.Platform) bool {
	if have.OS == "" && have.Architecture == "" {
		return true
	}
	return have.OS == want.OS && have.Architecture == want.Architecture &&
		(have.Variant == "" || want.Variant == "" || have.Variant == want.Variant)
}

// canRun reports whether steps of a stage built for p can run here: builder
// runs processes natively and has no emulation.
func canRun(p ocispec.Platform) error {
	h := platform.Host()
	if p.OS == h.OS && p.Architecture == h.Architecture {
		return nil
	}
	return fmt.Errorf("RUN on %s needs emulation, which builder does not have: it runs steps natively on %s (COPY and metadata steps work for any platform)",
		dockerfile.FormatPlatform(p), dockerfile.FormatPlatform(h))
}
