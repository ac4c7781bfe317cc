package registry

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/builder-project/builder/internal/registry/registrytest"
)

// deadAddress returns a loopback address nothing listens on.
func deadAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// mirrorConfig is a config file giving registry the mirrors, in order.
func mirrorConfig(t *testing.T, registry string, mirrors ...string) string {
	t.Helper()
	return writeConfig(t, fmt.Sprintf("[registry-mirrors]\n%q = [\"%s\"]\n", registry, strings.Join(mirrors, `", "`)))
}

func TestPullMirrors(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t)
	src := newStore(t)
	img := makeImage(t, src, twoLayers("mirrors"))
	pushImage(t, newClient(t, Options{}, nil), src, img, reg.Host+"/library/app:1")

	t.Run("failing mirrors fall back to the registry", func(t *testing.T) {
		origin := startProxy(t, reg.Host)
		notFound, broken := startProxy(t, reg.Host), startProxy(t, reg.Host)
		notFound.inject(&fault{match: manifestGet, times: -1, status: http.StatusNotFound})
		broken.inject(&fault{match: method(http.MethodGet), times: -1, status: http.StatusInternalServerError})
		cfg := mirrorConfig(t, origin.Host, "http://"+deadAddress(t), "http://"+notFound.Host, "http://"+broken.Host)
		c := newClient(t, Options{ConfigFile: cfg}, nil)
		dst := newStore(t)
		p := pullOne(t, c, dst, origin.Host+"/library/app:1", PullOptions{})
		checkPulled(t, dst, p, img)
		if n := notFound.count("GET", "/manifests/1"); n != 1 {
			t.Errorf("the mirror without the manifest was asked %d times, want once", n)
		}
		if n := broken.count("GET", "/v2/"); n != 1 {
			t.Errorf("the broken mirror was asked %d times, want once (no retries)", n)
		}
		if n := origin.count("GET", "/manifests/1"); n != 1 {
			t.Errorf("the registry served the manifest %d times, want once", n)
		}
	})

	t.Run("a working mirror serves everything", func(t *testing.T) {
		origin, mirror := startProxy(t, reg.Host), startProxy(t, reg.Host)
		c := newClient(t, Options{ConfigFile: mirrorConfig(t, origin.Host, "http://"+mirror.Host)}, nil)
		dst := newStore(t)
		checkPulled(t, dst, pullOne(t, c, dst, origin.Host+"/library/app:1", PullOptions{}), img)
		if n := origin.count(""); n != 0 {
			t.Errorf("the registry got %d requests, want none", n)
		}
		if n := mirror.count("GET", "/blobs/"); n != 3 {
			t.Errorf("the mirror served %d blobs, want 3", n)
		}
	})

	t.Run("a blob the mirror lacks comes from the registry", func(t *testing.T) {
		origin, mirror := startProxy(t, reg.Host), startProxy(t, reg.Host)
		mirror.inject(&fault{match: blobGet(img.Layers[1].Blob.Digest), times: -1, status: http.StatusNotFound})
		c := newClient(t, Options{ConfigFile: mirrorConfig(t, origin.Host, "http://"+mirror.Host)}, nil)
		dst := newStore(t)
		checkPulled(t, dst, pullOne(t, c, dst, origin.Host+"/library/app:1", PullOptions{}), img)
		if n := origin.count("GET", "/blobs/"+img.Layers[1].Blob.Digest.String()); n != 1 {
			t.Errorf("the registry served the missing blob %d times, want once", n)
		}
	})

	t.Run("Docker Hub's mirror", func(t *testing.T) {
		// The mirror has the image, so Docker Hub is never asked (and the
		// test transport could not reach it anyway).
		c := newClient(t, Options{ConfigFile: mirrorConfig(t, "docker.io", "http://"+reg.Host)}, nil)
		dst := newStore(t)
		p := pullOne(t, c, dst, "app:1", PullOptions{})
		checkPulled(t, dst, p, img)
		if p.Ref != "docker.io/library/app:1" || p.RepoDigest != "docker.io/library/app@"+img.Manifest.Digest.String() {
			t.Errorf("pulled %s as %s", p.Ref, p.RepoDigest)
		}
		data, desc, err := c.FetchManifest(context.Background(), "app:1")
		if err != nil || desc.Digest != img.Manifest.Digest || string(data) != string(mustRead(t, src, img.Manifest)) {
			t.Errorf("FetchManifest through the mirror: %+v, %v", desc, err)
		}
	})
}
