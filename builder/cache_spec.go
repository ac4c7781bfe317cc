package builder

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/distribution/reference"
)

// Types of build cache a build imports (--cache-from) and exports
// (--cache-to), as BuildKit names them.
const (
	// CacheLocal is an OCI image layout directory holding the cache as an
	// artifact (see ExportCache).
	CacheLocal = "local"
	// CacheRegistry is a registry holding the cache as one image manifest
	// (BuildKit's image-manifest=true form, see cache.NewImageManifest).
	CacheRegistry = "registry"
)

// Modes of a registry cache export (CacheDest.Mode).
const (
	// CacheModeMin exports the records of the steps of the final image's
	// stages: the target stage and the stages it is built FROM.
	CacheModeMin = "min"
	// CacheModeMax exports the records of every step of every stage the
	// build ran.
	CacheModeMax = "max"
)

// CacheSource is one build cache a build imports before it runs
// (--cache-from). As in docker, a source that cannot be used (missing,
// unreachable, damaged) is reported as a Warning event and the build goes
// on without it.
type CacheSource struct {
	// Type is CacheLocal or CacheRegistry; "" means the one whose location
	// (Dir or Ref) is set.
	Type string
	// Dir is the layout directory of a CacheLocal source. Its records
	// and layers are copied into the store before the build.
	Dir string
	// Ref names the cache manifest of a CacheRegistry source
	// (REGISTRY/REPOSITORY:TAG or @DIGEST). Only its manifest and config
	// are fetched before the build; a layer is downloaded when a step
	// that is not cached, or the final image, needs it.
	Ref string
	// Registry, when not nil, replaces BuildOptions.Registry for this
	// source.
	Registry *RegistryOptions
}

// CacheDest is one place a build exports its cache to after it ran
// (--cache-to). A failed export fails the build, unless IgnoreError.
type CacheDest struct {
	// Type is CacheLocal or CacheRegistry; "" means the one whose location
	// (Dir or Ref) is set.
	Type string
	// Dir is the layout directory of a CacheLocal destination. It receives
	// every record of the local cache whatever Mode says (see
	// ExportCache), as before registry caches existed.
	Dir string
	// Ref is where a CacheRegistry destination's manifest is pushed
	// (REGISTRY/REPOSITORY:TAG).
	Ref string
	// Mode selects the records a CacheRegistry destination receives:
	// CacheModeMin (the default) or CacheModeMax.
	Mode string
	// CompressionOptions say how the layers pushed to a CacheRegistry
	// destination are compressed, as for a push (PushOptions): the zero
	// value pushes compressed layers as they are stored and uncompressed
	// ones (built layers) gzip-compressed, so that the cache and an image
	// pushed by the same build share their blobs. A layer compressed for
	// a push or an export is compressed once, and the blob kept in the
	// store as a form of the layer. A layer the build only knows from a
	// registry cache it imported is copied as it is there. A CacheLocal
	// destination ignores them.
	CompressionOptions
	// IgnoreError turns a failed export into a Warning event.
	IgnoreError bool
	// Registry, when not nil, replaces BuildOptions.Registry for this
	// destination.
	Registry *RegistryOptions
}

// ParseCacheFrom parses a --cache-from value: "type=local,src=DIR",
// "type=registry,ref=REF", or a bare REF, which means type=registry.
// BuildKit's export options (mode, compression, oci-mediatypes,
// image-manifest, ignore-error) are accepted and mean nothing here.
func ParseCacheFrom(s string) (CacheSource, error) {
	opts, err := cacheOptions(s, "src")
	if err != nil {
		return CacheSource{}, err
	}
	src := CacheSource{Type: opts["type"], Dir: opts["src"], Ref: opts["ref"]}
	src.Type = src.kind()
	return src, src.check()
}

// ParseCacheTo parses a --cache-to value: "type=local,dest=DIR", or
// "type=registry,ref=REF[,mode=min|max][,compression=gzip|zstd|uncompressed]
// [,compression-level=N][,force-compression=true][,image-manifest=true]
// [,oci-mediatypes=true][,ignore-error=true|false]",
// or a bare REF, which means type=registry. The registry cache is always
// written in the image-manifest form with OCI media types, so
// image-manifest=false and oci-mediatypes=false are refused. mode and the
// compression keys are accepted for type=local and mean nothing there.
func ParseCacheTo(s string) (CacheDest, error) {
	opts, err := cacheOptions(s, "dest")
	if err != nil {
		return CacheDest{}, err
	}
	dest := CacheDest{Type: opts["type"], Dir: opts["dest"], Ref: opts["ref"], Mode: opts["mode"]}
	dest.Type = dest.kind()
	dest.Compression = opts["compression"]
	if v, ok := opts["compression-level"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return CacheDest{}, fmt.Errorf("%q: compression-level=%s is not a number", s, v)
		}
		dest.CompressionLevel = &n
	}
	if v, ok := opts["force-compression"]; ok {
		if dest.ForceCompression, err = strconv.ParseBool(v); err != nil {
			return CacheDest{}, fmt.Errorf("%q: force-compression=%s: want true or false", s, v)
		}
	}
	for _, k := range []string{"image-manifest", "oci-mediatypes"} {
		if v, ok := opts[k]; ok && dest.Type == CacheRegistry {
			if b, err := strconv.ParseBool(v); err != nil || !b {
				return CacheDest{}, fmt.Errorf("%q: %s=%s is not supported: a registry cache is one image manifest with OCI media types", s, k, v)
			}
		}
	}
	if v, ok := opts["ignore-error"]; ok {
		if dest.IgnoreError, err = strconv.ParseBool(v); err != nil {
			return CacheDest{}, fmt.Errorf("%q: ignore-error=%s: want true or false", s, v)
		}
	}
	return dest, dest.check()
}

// cacheOptions splits a --cache-from or --cache-to value into its keys;
// dir is the key naming a local directory (src or dest). A value without
// "=" is a registry reference.
func cacheOptions(s, dir string) (map[string]string, error) {
	if !strings.Contains(s, "=") {
		return map[string]string{"type": CacheRegistry, "ref": s}, nil
	}
	opts := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(kv, "=")
		k = strings.TrimSpace(k)
		switch k {
		case "type", dir, "ref", "mode", "compression", "compression-level", "force-compression", "oci-mediatypes", "image-manifest", "ignore-error":
			opts[k] = v
		default:
			return nil, fmt.Errorf("%q: unknown key %q", s, k)
		}
	}
	return opts, nil
}

// kind is the source's type, inferred when Type is empty.
func (c CacheSource) kind() string { return cacheType(c.Type, c.Dir, c.Ref) }

// kind is the destination's type, inferred when Type is empty.
func (c CacheDest) kind() string { return cacheType(c.Type, c.Dir, c.Ref) }

// cacheType returns typ, or when it is empty the type of the one location
// given.
func cacheType(typ, dir, ref string) string {
	switch {
	case typ != "":
		return typ
	case dir != "" && ref == "":
		return CacheLocal
	case ref != "" && dir == "":
		return CacheRegistry
	}
	return ""
}

// check reports a source Build cannot import.
func (c CacheSource) check() error {
	return checkCacheTarget(c.kind(), c.Dir, c.Ref, "src")
}

// check reports a destination Build cannot export to. A local one takes
// any mode and compression, which it ignores, as before registry caches.
func (c CacheDest) check() error {
	if err := checkCacheTarget(c.kind(), c.Dir, c.Ref, "dest"); err != nil || c.kind() == CacheLocal {
		return err
	}
	switch c.Mode {
	case "", CacheModeMin, CacheModeMax:
	default:
		return fmt.Errorf("cache mode %q: want min or max", c.Mode)
	}
	if err := c.CompressionOptions.check(); err != nil {
		return fmt.Errorf("cache compression: %w", err)
	}
	return nil
}

// checkCacheTarget checks the type and location of a cache source or
// destination; dirKey names the directory's key in messages.
func checkCacheTarget(typ, dir, ref, dirKey string) error {
	switch typ {
	case CacheLocal:
		if dir == "" {
			return fmt.Errorf("type=local: %s=DIR is required", dirKey)
		}
	case CacheRegistry:
		if ref == "" {
			return fmt.Errorf("type=registry: ref=REGISTRY/REPOSITORY:TAG is required")
		}
		if _, err := reference.ParseNormalizedNamed(ref); err != nil {
			return fmt.Errorf("type=registry: ref %q: %w", ref, err)
		}
	default:
		return fmt.Errorf("cache type %q: want type=local,%s=DIR or type=registry,ref=REF", typ, dirKey)
	}
	return nil
}

// repository returns the repository of a registry reference
// (127.0.0.1:5000/cache:1 → 127.0.0.1:5000/cache), or "" when it has none.
func repository(ref string) string {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return ""
	}
	return reference.TrimNamed(named).String()
}
