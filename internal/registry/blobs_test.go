package registry

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-project/builder/internal/registry/registrytest"
	"github.com/builder-project/builder/internal/store"
)

func TestBlobAndManifestPrimitives(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t)
	proxy := startProxy(t, reg.Host)
	c := newClient(t, Options{}, nil)
	ctx := context.Background()
	repo := proxy.Host + "/cache/app"
	data := randomBytes(300<<10, 7)
	desc := ocispec.Descriptor{MediaType: "application/octet-stream", Digest: digest.FromBytes(data), Size: int64(len(data))}
	opened := 0
	open := func() (io.ReadCloser, error) {
		opened++
		return io.NopCloser(bytes.NewReader(data)), nil
	}

	if err := c.PushBlob(ctx, repo, desc, open); err != nil {
		t.Fatal(err)
	}
	if err := c.PushBlob(ctx, repo, desc, open); err != nil {
		t.Fatal(err)
	}
	if opened != 1 || proxy.count("POST") != 1 {
		t.Errorf("a blob the registry has was uploaded again: opened %d times, %d upload sessions", opened, proxy.count("POST"))
	}

	rc, err := c.FetchBlob(ctx, repo, desc)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("FetchBlob read %d bytes, %v", len(got), err)
	}

	// A descriptor that does not match the bytes: the reader fails at the end.
	wrong := desc
	wrong.Digest = digest.FromBytes(data[1:])
	if _, err := c.FetchBlob(ctx, repo, wrong); err == nil {
		t.Error("fetched a blob the registry does not have")
	}
	proxy.inject(&fault{match: blobGet(desc.Digest), times: 1, flip: true})
	rc, err = c.FetchBlob(ctx, repo, desc)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(rc)
	rc.Close()
	if !errors.Is(err, store.ErrInvalidDigest) {
		t.Errorf("reading a corrupted blob: %v", err)
	}

	// A manifest by tag, by digest, and its bytes back.
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	cdesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))}
	if err := c.PushBlob(ctx, repo, cdesc, func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(cfg)), nil }); err != nil {
		t.Fatal(err)
	}
	m := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` +
		cdesc.Digest.String() + `","size":` + strconv.FormatInt(cdesc.Size, 10) + `},"layers":[{"mediaType":"application/octet-stream","digest":"` + desc.Digest.String() + `","size":` + strconv.FormatInt(desc.Size, 10) + `}]}`)
	mdesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(m), Size: int64(len(m))}
	if err := c.PushManifest(ctx, repo+":cache", mdesc, m); err != nil {
		t.Fatal(err)
	}
	if err := c.PushManifest(ctx, repo+"@"+mdesc.Digest.String(), mdesc, m); err != nil {
		t.Fatal(err)
	}
	if err := c.PushManifest(ctx, repo+":bad", mdesc, m[1:]); err == nil {
		t.Error("pushed bytes that do not match their descriptor")
	}
	for _, ref := range []string{repo + ":cache", repo + "@" + mdesc.Digest.String()} {
		gotM, gotDesc, err := c.FetchManifest(ctx, ref)
		if err != nil || !bytes.Equal(gotM, m) || gotDesc.Digest != mdesc.Digest || gotDesc.MediaType != mdesc.MediaType || gotDesc.Size != mdesc.Size {
			t.Errorf("FetchManifest(%s) = %+v, %v", ref, gotDesc, err)
		}
	}
	if _, _, err := c.FetchManifest(ctx, repo+":missing"); err == nil || !strings.Contains(err.Error(), "MANIFEST_UNKNOWN") {
		t.Errorf("fetching a missing manifest: %v", err)
	}
}
