package registry

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/builder-project/builder/internal/registry/registrytest"
	"github.com/builder-project/builder/internal/store"
)

// faultSetup is a registry holding a two-layer image at app:1, a proxy in
// front of it, and a client.
type faultSetup struct {
	reg   *registrytest.Registry
	proxy *faultProxy
	c     *Client
	img   testImage
	src   *store.Store
}

func newFaultSetup(t *testing.T, opts Options) faultSetup {
	t.Helper()
	reg := registrytest.Start(t)
	s := faultSetup{reg: reg, proxy: startProxy(t, reg.Host), c: newClient(t, opts, nil), src: newStore(t)}
	s.img = makeImage(t, s.src, twoLayers("faults"))
	pushImage(t, s.c, s.src, s.img, reg.Host+"/app:1")
	return s
}

// big and small are the image's layers.
func (s faultSetup) small() store.Layer { return s.img.Layers[0] }
func (s faultSetup) big() store.Layer   { return s.img.Layers[1] }

func TestPullSurvivesFaults(t *testing.T) {
	t.Parallel()
	t.Run("connection cut mid-blob resumes with a range", func(t *testing.T) {
		s := newFaultSetup(t, Options{})
		half := s.big().Blob.Size / 2
		s.proxy.inject(&fault{match: blobGet(s.big().Blob.Digest), times: 1, cutResponse: half})
		dst := newStore(t)
		checkPulled(t, dst, pullOne(t, s.c, dst, s.proxy.Host+"/app:1", PullOptions{}), s.img)
		if n := s.proxy.count("GET", s.big().Blob.Digest.String(), `range="bytes=`); n != 1 {
			t.Errorf("%d range requests for the cut blob, want 1", n)
		}
	})
	t.Run("5xx and 429 are retried", func(t *testing.T) {
		s := newFaultSetup(t, Options{})
		s.proxy.inject(
			&fault{match: manifestGet, times: 1, status: http.StatusServiceUnavailable},
			&fault{match: blobGet(s.small().Blob.Digest), times: 1, status: http.StatusTooManyRequests},
			&fault{match: blobGet(s.big().Blob.Digest), times: 2, status: http.StatusInternalServerError},
		)
		dst := newStore(t)
		checkPulled(t, dst, pullOne(t, s.c, dst, s.proxy.Host+"/app:1", PullOptions{}), s.img)
		s.proxy.checkSpent(t)
		if n := s.proxy.count("GET", s.big().Blob.Digest.String()); n != 3 {
			t.Errorf("%d GETs of the failing blob, want 3", n)
		}
	})
	t.Run("a persistent 5xx is an error", func(t *testing.T) {
		s := newFaultSetup(t, Options{})
		s.proxy.inject(&fault{match: manifestGet, times: -1, status: http.StatusBadGateway})
		if _, err := s.c.Pull(context.Background(), newStore(t), s.proxy.Host+"/app:1", PullOptions{}); err == nil {
			t.Fatal("pulled through a registry that always fails")
		}
		if n := s.proxy.count("GET", "/manifests/"); n != retryBackoff.Steps {
			t.Errorf("%d manifest GETs, want %d", n, retryBackoff.Steps)
		}
	})
}

func TestPullCorruptBlob(t *testing.T) {
	t.Parallel()
	s := newFaultSetup(t, Options{})
	s.proxy.inject(&fault{match: blobGet(s.big().Blob.Digest), times: -1, flip: true})
	dst := newStore(t)
	_, err := s.c.Pull(context.Background(), dst, s.proxy.Host+"/app:1", PullOptions{})
	if !errors.Is(err, store.ErrInvalidDigest) {
		t.Fatalf("pulling a corrupted blob: %v, want ErrInvalidDigest", err)
	}
	if _, ok := dst.Has(s.big().Blob.Digest); ok {
		t.Error("the corrupted blob is in the store")
	}
	if left := ingests(t, dst); len(left) != 0 {
		t.Errorf("ingests left behind: %v", left)
	}
	if idx, _ := dst.View(); len(idx.Images()) != 0 {
		t.Errorf("images recorded: %v", idx.Images())
	}
}

func TestPullResumesAfterInterruption(t *testing.T) {
	t.Parallel()
	s := newFaultSetup(t, Options{Jobs: 1})
	s.proxy.inject(&fault{match: blobGet(s.big().Blob.Digest), times: -1, cutResponse: 1000})
	dst := newStore(t)
	ref := s.proxy.Host + "/app:1"
	if _, err := s.c.Pull(context.Background(), dst, ref, PullOptions{}); err == nil {
		t.Fatal("pull survived a blob that never arrives")
	}
	if _, ok := dst.Has(s.small().Blob.Digest); !ok {
		t.Error("the finished layer was not kept")
	}
	if _, ok := dst.Has(s.img.ID); !ok {
		t.Error("the config was not kept")
	}
	if _, ok := dst.Has(s.big().Blob.Digest); ok {
		t.Error("the cut layer is in the store")
	}

	s.proxy.clear()
	checkPulled(t, dst, pullOne(t, s.c, dst, ref, PullOptions{}), s.img)
	for _, d := range []string{s.small().Blob.Digest.String(), s.img.ID.String()} {
		if n := s.proxy.count("GET", "/blobs/"+d); n != 1 {
			t.Errorf("blob %s fetched %d times, want once", d, n)
		}
	}
}

func TestPushSurvivesFaults(t *testing.T) {
	t.Parallel()
	reg, c, src := start(t)
	proxy := startProxy(t, reg.Host)
	img := makeImage(t, src, twoLayers("push faults"))
	proxy.inject(
		&fault{match: method(http.MethodHead), times: 1, status: http.StatusServiceUnavailable},
		&fault{match: method(http.MethodPatch), times: 1, cutRequest: 1000},
		&fault{match: uploadStart, times: 1, status: http.StatusInternalServerError},
	)
	pushImage(t, c, src, img, proxy.Host+"/app:1")
	proxy.checkSpent(t)
	dst := newStore(t)
	checkPulled(t, dst, pullOne(t, c, dst, reg.Host+"/app:1", PullOptions{}), img)
}

func TestPushChunked(t *testing.T) {
	t.Parallel()
	reg, c, src := start(t)
	proxy := startProxy(t, reg.Host)
	proxy.inject(&fault{match: uploadStart, times: -1, header: http.Header{"Oci-Chunk-Min-Length": {"1048576"}}})
	img := makeImage(t, src, twoLayers("chunked"))
	pushImage(t, c, src, img, proxy.Host+"/app:1")
	// small layer and config: one chunk each; the big layer: two.
	if n := proxy.count("PATCH", `content-range="0-`); n != 3 {
		t.Errorf("%d first chunks, want 3", n)
	}
	if n := proxy.count("PATCH", `content-range="1048576-`); n != 1 {
		t.Errorf("%d second chunks, want 1", n)
	}
	dst := newStore(t)
	checkPulled(t, dst, pullOne(t, c, dst, reg.Host+"/app:1", PullOptions{}), img)
}
