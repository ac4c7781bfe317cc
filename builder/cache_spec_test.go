package builder

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseCacheFromTo(t *testing.T) {
	nine := 9
	for _, tc := range []struct {
		in   string
		from CacheSource
		to   CacheDest
	}{
		{"type=local,src=/c", CacheSource{Type: CacheLocal, Dir: "/c"}, CacheDest{}},
		{"src=/c", CacheSource{Type: CacheLocal, Dir: "/c"}, CacheDest{}},
		{"type=local,dest=/c,mode=max,compression=zstd,oci-mediatypes=true,ignore-error=true", CacheSource{},
			CacheDest{Type: CacheLocal, Dir: "/c", Mode: CacheModeMax, CompressionOptions: CompressionOptions{Compression: "zstd"}, IgnoreError: true}},
		{"type=registry,ref=reg:5000/cache:1", CacheSource{Type: CacheRegistry, Ref: "reg:5000/cache:1"}, CacheDest{Type: CacheRegistry, Ref: "reg:5000/cache:1"}},
		{"reg:5000/cache:1", CacheSource{Type: CacheRegistry, Ref: "reg:5000/cache:1"}, CacheDest{Type: CacheRegistry, Ref: "reg:5000/cache:1"}},
		{"type=registry,ref=reg/c:1,mode=max,compression=gzip,image-manifest=true,oci-mediatypes=true,ignore-error=false", CacheSource{Type: CacheRegistry, Ref: "reg/c:1"},
			CacheDest{Type: CacheRegistry, Ref: "reg/c:1", Mode: CacheModeMax, CompressionOptions: CompressionOptions{Compression: "gzip"}}},
		{"type=registry,ref=reg/c:1,compression=zstd,compression-level=9,force-compression=true", CacheSource{Type: CacheRegistry, Ref: "reg/c:1"},
			CacheDest{Type: CacheRegistry, Ref: "reg/c:1", CompressionOptions: CompressionOptions{Compression: "zstd", CompressionLevel: &nine, ForceCompression: true}}},
	} {
		if tc.from.Type != "" {
			if got, err := ParseCacheFrom(tc.in); err != nil || !reflect.DeepEqual(got, tc.from) {
				t.Errorf("ParseCacheFrom(%q) = %+v, %v; want %+v", tc.in, got, err, tc.from)
			}
		}
		if tc.to.Type != "" {
			if got, err := ParseCacheTo(tc.in); err != nil || !reflect.DeepEqual(got, tc.to) {
				t.Errorf("ParseCacheTo(%q) = %+v, %v; want %+v", tc.in, got, err, tc.to)
			}
		}
	}
	from := func(s string) error { _, err := ParseCacheFrom(s); return err }
	to := func(s string) error { _, err := ParseCacheTo(s); return err }
	for _, tc := range []struct {
		parse    func(string) error
		in, want string
	}{
		{from, "type=local", "src=DIR is required"},
		{from, "ref=r/c:1,src=/c", "cache type \"\""},
		{from, "type=registry", "ref=REGISTRY/REPOSITORY:TAG is required"},
		{from, "type=registry,ref=r/UP:1", "ref \"r/UP:1\""},
		{from, "type=gha", "want type=local"},
		{from, "type=registry,ref=r/c:1,nope=1", "unknown key \"nope\""},
		{to, "type=registry,ref=r/c:1,mode=all", "cache mode \"all\""},
		{to, "type=registry,ref=r/c:1,compression=lz4", "want gzip, zstd or uncompressed"},
		{to, "type=registry,ref=r/c:1,image-manifest=false", "image-manifest=false is not supported"},
		{to, "type=registry,ref=r/c:1,oci-mediatypes=false", "oci-mediatypes=false is not supported"},
		{to, "type=registry,ref=r/c:1,ignore-error=maybe", "want true or false"},
		{to, "type=local,src=/c", "unknown key \"src\""},
		{to, "type=registry,ref=r/c:1,compression-level=x", "is not a number"},
		{to, "type=registry,ref=r/c:1,compression-level=3", "needs a compression"},
	} {
		if err := tc.parse(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parsing %q: %v, want %q", tc.in, err, tc.want)
		}
	}
}
