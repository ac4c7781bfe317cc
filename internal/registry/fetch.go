package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-project/builder/internal/mediatype"
	"github.com/builder-project/builder/internal/store"
)

// FetchManifest fetches the manifest or index ref names, trying the
// registry's mirrors first, and returns its bytes as served with a
// descriptor of them (the media type the registry sent, else one sniffed
// from the bytes). A reference by digest is checked against the bytes.
func (c *Client) FetchManifest(ctx context.Context, ref string) ([]byte, ocispec.Descriptor, error) {
	r, err := parseRef(ref)
	if err != nil {
		return nil, ocispec.Descriptor{}, fmt.Errorf("fetching manifest: %w", err)
	}
	eps, err := c.endpoints(r, true)
	if err != nil {
		return nil, ocispec.Descriptor{}, fmt.Errorf("fetching manifest %s: %w", r, err)
	}
	data, desc, _, err := c.fetchManifest(ctx, eps, r)
	if err != nil {
		return nil, ocispec.Descriptor{}, fmt.Errorf("fetching manifest %s: %w", r, err)
	}
	return data, desc, nil
}

// fetchManifest fetches r from the first endpoint of eps that serves it and
// returns the endpoints from that one on, for the blobs to come from.
func (c *Client) fetchManifest(ctx context.Context, eps []endpoint, r imageRef) ([]byte, ocispec.Descriptor, []endpoint, error) {
	var errs []error
	for i, ep := range eps {
		data, desc, err := c.getManifest(ctx, ep, r)
		if err == nil {
			return data, desc, eps[i:], nil
		}
		if !ep.mirror || ctx.Err() != nil {
			return nil, ocispec.Descriptor{}, nil, errors.Join(append([]error{err}, errs...)...)
		}
		errs = append(errs, fmt.Errorf("mirror %s: %w", ep.host(), err))
	}
	panic("unreachable: the last endpoint is the registry itself")
}

// getManifest fetches r from one endpoint.
func (c *Client) getManifest(ctx context.Context, ep endpoint, r imageRef) ([]byte, ocispec.Descriptor, error) {
	hc, err := c.client(ctx, ep, pullScope(ep))
	if err != nil {
		return nil, ocispec.Descriptor{}, err
	}
	d, err := remote.Get(ep.ref(r), remoteOptions(ctx, hc)...)
	if err != nil {
		return nil, ocispec.Descriptor{}, unauthorized(err, ep.host())
	}
	desc := ocispec.Descriptor{MediaType: string(d.MediaType), Digest: digest.Digest(d.Digest.String()), Size: d.Size}
	if desc.MediaType == "" || desc.MediaType == "application/json" || desc.MediaType == "text/plain" {
		desc.MediaType = mediatype.Sniff(d.Manifest)
	}
	return d.Manifest, desc, nil
}

// FetchBlob returns a reader of the blob desc in repo (docker.io/library/app,
// host:5000/x), from the registry's mirrors first. The reader checks the
// size and digest as it goes: its last Read fails, with an error wrapping
// store.ErrInvalidDigest, instead of returning io.EOF when the bytes do not
// match. A connection broken mid-blob is resumed where it stopped.
func (c *Client) FetchBlob(ctx context.Context, repo string, desc ocispec.Descriptor) (io.ReadCloser, error) {
	r, err := parseRepo(repo)
	if err != nil {
		return nil, fmt.Errorf("fetching blob %s: %w", desc.Digest, err)
	}
	eps, err := c.endpoints(r, true)
	if err != nil {
		return nil, fmt.Errorf("fetching blob %s from %s: %w", desc.Digest, r.repo(), err)
	}
	rc, err := c.openBlob(ctx, eps, desc)
	if err != nil {
		return nil, fmt.Errorf("fetching blob %s from %s: %w", desc.Digest, r.repo(), err)
	}
	return rc, nil
}

// openBlob opens desc on the first endpoint of eps that serves it.
func (c *Client) openBlob(ctx context.Context, eps []endpoint, desc ocispec.Descriptor) (io.ReadCloser, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, err
	}
	var errs []error
	for _, ep := range eps {
		hc, err := c.client(ctx, ep, pullScope(ep))
		if err == nil {
			br := &blobReader{ctx: ctx, hc: hc, url: blobURL(ep, desc.Digest), desc: desc, dg: desc.Digest.Algorithm().Digester()}
			if err = br.open(); err == nil {
				return br, nil
			}
			err = unauthorized(err, ep.host())
		}
		if !ep.mirror || ctx.Err() != nil {
			return nil, errors.Join(append([]error{err}, errs...)...)
		}
		errs = append(errs, fmt.Errorf("mirror %s: %w", ep.host(), err))
	}
	return nil, errors.Join(errs...)
}

// blobReader reads one blob, hashing as it goes. When the connection breaks
// mid-body it asks again for the rest (Range: bytes=N-), up to
// retryBackoff.Steps times; at the end it checks size and digest.
type blobReader struct {
	ctx     context.Context
	hc      *http.Client
	url     string
	desc    ocispec.Descriptor
	dg      digest.Digester
	body    io.ReadCloser
	off     int64
	resumes int
	err     error
}

// open starts a GET for the bytes from r.off on.
func (r *blobReader) open() error {
	req, err := http.NewRequestWithContext(r.ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return err
	}
	if r.off > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(r.off, 10)+"-")
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		return err
	}
	if err := transport.CheckError(resp, http.StatusOK, http.StatusPartialContent); err != nil {
		resp.Body.Close()
		return err
	}
	switch {
	case resp.StatusCode == http.StatusPartialContent:
		if cr := resp.Header.Get("Content-Range"); !strings.HasPrefix(cr, "bytes "+strconv.FormatInt(r.off, 10)+"-") {
			resp.Body.Close()
			return fmt.Errorf("resuming blob %s at byte %d: the registry sent range %q", r.desc.Digest, r.off, cr)
		}
	case r.off > 0:
		// The registry ignored the range: skip what was read already.
		if _, err := io.CopyN(io.Discard, resp.Body, r.off); err != nil {
			resp.Body.Close()
			return err
		}
	case resp.ContentLength >= 0 && resp.ContentLength != r.desc.Size:
		resp.Body.Close()
		return fmt.Errorf("fetching blob %s: %w: the registry sends %d bytes, want %d", r.desc.Digest, store.ErrInvalidDigest, resp.ContentLength, r.desc.Size)
	}
	r.body = resp.Body
	return nil
}

// Read implements io.Reader.
func (r *blobReader) Read(p []byte) (int, error) {
	for r.err == nil {
		if r.body == nil {
			if err := r.open(); err != nil {
				r.err = fmt.Errorf("resuming blob %s at byte %d: %w", r.desc.Digest, r.off, err)
				break
			}
		}
		if left := r.desc.Size - r.off + 1; int64(len(p)) > left {
			p = p[:left] // one byte more than the blob shows a longer one
		}
		n, err := r.body.Read(p)
		r.dg.Hash().Write(p[:n])
		r.off += int64(n)
		switch {
		case r.off > r.desc.Size:
			r.err = fmt.Errorf("reading blob %s: %w: more than %d bytes", r.desc.Digest, store.ErrInvalidDigest, r.desc.Size)
		case errors.Is(err, io.EOF) && r.off == r.desc.Size:
			r.err = io.EOF
			if got := r.dg.Digest(); got != r.desc.Digest {
				r.err = fmt.Errorf("reading blob %s: %w: its content hashes to %s", r.desc.Digest, store.ErrInvalidDigest, got)
			}
		case err == nil:
			return n, nil
		default:
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			if !temporary(err) || r.resumes+1 >= retryBackoff.Steps {
				r.err = fmt.Errorf("reading blob %s at byte %d: %w", r.desc.Digest, r.off, err)
				break
			}
			r.body.Close()
			r.body = nil
			if err := sleep(r.ctx, r.resumes); err != nil {
				r.err = err
				break
			}
			r.resumes++
		}
		if n > 0 || r.err != nil {
			return n, r.err
		}
	}
	return 0, r.err
}

// Close implements io.Closer.
func (r *blobReader) Close() error {
	if r.body != nil {
		return r.body.Close()
	}
	return nil
}
