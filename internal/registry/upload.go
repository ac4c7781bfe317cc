package registry

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// minChunkSize is the least chunk sent when a registry asks for chunked
// uploads: it names its minimum in OCI-Chunk-Min-Length, and a larger one
// wins.
const minChunkSize = 1 << 20

// PushBlob makes the repository repo (host:5000/x, docker.io/library/app)
// hold the blob desc: when a HEAD does not find it there, it is uploaded
// from the reader open returns, in chunks when the registry asks for them.
// A failed upload is started again, with a fresh reader from open.
func (c *Client) PushBlob(ctx context.Context, repo string, desc ocispec.Descriptor, open func() (io.ReadCloser, error)) error {
	r, err := parseRepo(repo)
	if err != nil {
		return fmt.Errorf("pushing blob %s: %w", desc.Digest, err)
	}
	ep, err := c.origin(r)
	if err != nil {
		return fmt.Errorf("pushing blob %s to %s: %w", desc.Digest, r.repo(), err)
	}
	hc, err := c.client(ctx, ep, ep.repo.Scope(transport.PushScope))
	if err != nil {
		return fmt.Errorf("pushing blob %s to %s: %w", desc.Digest, r.repo(), err)
	}
	if _, err := (&blobPusher{hc: hc, ep: ep}).push(ctx, desc, open, nil); err != nil {
		return fmt.Errorf("pushing blob %s to %s: %w", desc.Digest, r.repo(), unauthorized(err, ep.host()))
	}
	return nil
}

// blobPusher uploads blobs to one repository, mounting them from others of
// the same registry where it can.
type blobPusher struct {
	hc *http.Client
	ep endpoint
	// from are repositories of the same registry that may hold the blobs;
	// hc's token must allow pulling from them.
	from []endpoint
}

// push makes the repository hold desc and returns docker's word for how:
// "Layer already exists", "Mounted from REPO" or "Pushed". With em, the
// bytes read from open are reported as "Pushing". A failure worth retrying
// starts the whole blob again, up to retryBackoff.Steps times.
func (b *blobPusher) push(ctx context.Context, desc ocispec.Descriptor, open func() (io.ReadCloser, error), em *emitter) (string, error) {
	for attempt := 0; ; attempt++ {
		status, err := b.pushOnce(ctx, desc, open, em)
		if err == nil || !retryable(err) || attempt+1 >= retryBackoff.Steps {
			return status, err
		}
		if err := sleep(ctx, attempt); err != nil {
			return "", err
		}
	}
}

// pushOnce is one attempt of push.
func (b *blobPusher) pushOnce(ctx context.Context, desc ocispec.Descriptor, open func() (io.ReadCloser, error), em *emitter) (string, error) {
	if ok, err := b.exists(ctx, b.ep, desc); err != nil {
		return "", err
	} else if ok {
		return "Layer already exists", nil
	}
	var mount *endpoint
	for _, f := range b.from {
		if ok, err := b.exists(ctx, f, desc); err == nil && ok {
			mount = &f
			break
		}
	}
	loc, minChunk, err := b.start(ctx, desc, mount)
	if err != nil {
		return "", err
	}
	if loc == "" {
		return "Mounted from " + mount.repo.RepositoryStr(), nil
	}
	rc, err := open()
	if err != nil {
		return "", err
	}
	defer rc.Close()
	var r io.Reader = rc
	if em != nil {
		r = &progressReader{r: rc, e: em, d: desc.Digest, status: "Pushing", total: desc.Size}
	}
	chunk := desc.Size
	if minChunk > 0 {
		chunk = max(minChunk, minChunkSize)
	}
	for off := int64(0); off < desc.Size; off += chunk {
		n := min(chunk, desc.Size-off)
		var rng string
		if minChunk > 0 {
			rng = strconv.FormatInt(off, 10) + "-" + strconv.FormatInt(off+n-1, 10)
		}
		if loc, err = b.patch(ctx, loc, io.LimitReader(r, n), n, rng); err != nil {
			return "", err
		}
	}
	if err := b.commit(ctx, loc, desc); err != nil {
		return "", err
	}
	return "Pushed", nil
}

// exists reports whether ep's repository holds desc (HEAD).
func (b *blobPusher) exists(ctx context.Context, ep endpoint, desc ocispec.Descriptor) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, blobURL(ep, desc.Digest), nil)
	if err != nil {
		return false, err
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusOK, http.StatusNotFound); err != nil {
		return false, err
	}
	return resp.StatusCode == http.StatusOK, nil
}

// start opens an upload session (POST), asking to mount desc from mount
// when it is not nil. It returns the session's location and the registry's
// minimum chunk size (0: none asked), or "" when the blob was mounted.
func (b *blobPusher) start(ctx context.Context, desc ocispec.Descriptor, mount *endpoint) (string, int64, error) {
	u := fmt.Sprintf("%s://%s/v2/%s/blobs/uploads/", b.ep.repo.Scheme(), b.ep.repo.RegistryStr(), b.ep.repo.RepositoryStr())
	if mount != nil {
		u += "?" + url.Values{"mount": {desc.Digest.String()}, "from": {mount.repo.RepositoryStr()}}.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return "", 0, err
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusCreated, http.StatusAccepted); err != nil {
		return "", 0, err
	}
	if resp.StatusCode == http.StatusCreated {
		return "", 0, nil
	}
	loc, err := location(resp)
	if err != nil {
		return "", 0, err
	}
	minChunk, _ := strconv.ParseInt(resp.Header.Get("OCI-Chunk-Min-Length"), 10, 64)
	return loc, max(minChunk, 0), nil
}

// patch sends n bytes of r to the upload session at loc, as the chunk rng
// ("first-last") when rng is not "", and returns the session's next
// location.
func (b *blobPusher) patch(ctx context.Context, loc string, r io.Reader, n int64, rng string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, loc, r)
	if err != nil {
		return "", err
	}
	req.ContentLength = n
	req.Header.Set("Content-Type", "application/octet-stream")
	if rng != "" {
		req.Header.Set("Content-Range", rng)
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusAccepted, http.StatusNoContent, http.StatusCreated); err != nil {
		return "", err
	}
	return location(resp)
}

// commit closes the upload session at loc as the blob desc (PUT ?digest=).
func (b *blobPusher) commit(ctx context.Context, loc string, desc ocispec.Descriptor) error {
	u, err := url.Parse(loc)
	if err != nil {
		return err
	}
	q := u.Query()
	q.Set("digest", desc.Digest.String())
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u.String(), http.NoBody)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := b.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return transport.CheckError(resp, http.StatusCreated, http.StatusNoContent)
}

// location resolves an upload session's Location header against the
// request that returned it.
func location(resp *http.Response) (string, error) {
	loc := resp.Header.Get("Location")
	if loc == "" {
		return "", fmt.Errorf("%s %s: the registry sent no Location", resp.Request.Method, resp.Request.URL.Redacted())
	}
	u, err := resp.Request.URL.Parse(loc)
	if err != nil {
		return "", err
	}
	return u.String(), nil
}
