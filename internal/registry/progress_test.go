package registry

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/builder-project/builder/internal/registry/registrytest"
	"github.com/builder-project/builder/internal/store"
)

// recorder collects Progress updates.
type recorder struct {
	mu  sync.Mutex
	all []Progress
}

func (r *recorder) record(p Progress) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.all = append(r.all, p)
}

// take returns and forgets what was recorded.
func (r *recorder) take() []Progress {
	r.mu.Lock()
	defer r.mu.Unlock()
	all := r.all
	r.all = nil
	return all
}

// statuses returns the statuses about id ("" for whole-image lines), in
// order, without repeats of the same status in a row.
func statuses(ps []Progress, id string) []string {
	var out []string
	for _, p := range ps {
		if p.ID == id && (len(out) == 0 || out[len(out)-1] != p.Status) {
			out = append(out, p.Status)
		}
	}
	return out
}

func TestProgressInDockersWords(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t)
	rec := &recorder{}
	c := newClient(t, Options{Progress: rec.record, Jobs: 1}, nil)
	src := newStore(t)
	img := makeImage(t, src, twoLayers("progress"))
	small, big := store.ShortID(img.Layers[0].Blob.Digest), store.ShortID(img.Layers[1].Blob.Digest)
	ref := reg.Host + "/library/app:1"
	ctx := context.Background()

	// Push: everything uploaded.
	if _, err := c.Push(ctx, src, img.Manifest, ref, PushOptions{}); err != nil {
		t.Fatal(err)
	}
	ps := rec.take()
	wantImage := []string{"The push refers to repository [" + reg.Host + "/library/app]",
		"1: digest: " + img.Manifest.Digest.String() + " size: " + strconv.FormatInt(img.Manifest.Size, 10)}
	if got := statuses(ps, ""); !slices.Equal(got, wantImage) {
		t.Errorf("push image lines %q, want %q", got, wantImage)
	}
	if got, want := statuses(ps, small), []string{"Preparing", "Pushing", "Pushed"}; !slices.Equal(got, want) {
		t.Errorf("push of the first layer says %q, want %q", got, want)
	}
	if got, want := statuses(ps, big), []string{"Preparing", "Waiting", "Pushing", "Pushed"}; !slices.Equal(got, want) {
		t.Errorf("push of the second layer says %q, want %q", got, want)
	}
	checkBytes(t, ps, big, "Pushing", img.Layers[1].Blob.Size)

	// Push again: everything is there.
	if _, err := c.Push(ctx, src, img.Manifest, ref, PushOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, want := statuses(rec.take(), small), []string{"Preparing", "Layer already exists"}; !slices.Equal(got, want) {
		t.Errorf("second push says %q, want %q", got, want)
	}

	// Push to another repository: mounted from the first.
	other := reg.Host + "/team/other:1"
	if _, err := c.Push(ctx, src, img.Manifest, other, PushOptions{MountFrom: []string{"example.com/elsewhere", reg.Host + "/library/app"}}); err != nil {
		t.Fatal(err)
	}
	if got, want := statuses(rec.take(), big), []string{"Preparing", "Waiting", "Mounted from library/app"}; !slices.Equal(got, want) {
		t.Errorf("push with mount says %q, want %q", got, want)
	}

	// Pull into an empty store.
	dst := newStore(t)
	pullOne(t, c, dst, ref, PullOptions{})
	ps = rec.take()
	wantImage = []string{"Pulling from library/app", "Digest: " + img.Manifest.Digest.String(), "Status: Downloaded newer image for " + ref}
	if got := statuses(ps, ""); !slices.Equal(got, wantImage) {
		t.Errorf("pull image lines %q, want %q", got, wantImage)
	}
	if got, want := statuses(ps, small), []string{"Pulling fs layer", "Downloading", "Verifying Checksum", "Download complete", "Pull complete"}; !slices.Equal(got, want) {
		t.Errorf("pull of the first layer says %q, want %q", got, want)
	}
	if got, want := statuses(ps, big), []string{"Pulling fs layer", "Waiting", "Downloading", "Verifying Checksum", "Download complete", "Pull complete"}; !slices.Equal(got, want) {
		t.Errorf("pull of the second layer says %q, want %q", got, want)
	}
	checkBytes(t, ps, big, "Downloading", img.Layers[1].Blob.Size)

	// Pull again: up to date.
	pullOne(t, c, dst, ref, PullOptions{})
	ps = rec.take()
	if got := statuses(ps, ""); got[len(got)-1] != "Status: Image is up to date for "+ref {
		t.Errorf("second pull ends with %q", got)
	}
	if got, want := statuses(ps, small), []string{"Already exists"}; !slices.Equal(got, want) {
		t.Errorf("second pull says %q for a layer, want %q", got, want)
	}

	// An image sharing the base layer: that one already exists.
	spec := imageSpec{author: "child", base: img.Layers[:1], files: []fileLayer{{"child", []byte("child")}}}
	child := makeImage(t, src, spec)
	pushImage(t, c, src, child, reg.Host+"/library/app:child")
	rec.take()
	pullOne(t, c, dst, reg.Host+"/library/app:child", PullOptions{})
	ps = rec.take()
	if got, want := statuses(ps, small), []string{"Already exists"}; !slices.Equal(got, want) {
		t.Errorf("the shared layer says %q, want %q", got, want)
	}
	if got, want := statuses(ps, store.ShortID(child.Layers[1].Blob.Digest)), []string{"Pulling fs layer", "Downloading", "Verifying Checksum", "Download complete", "Pull complete"}; !slices.Equal(got, want) {
		t.Errorf("the new layer says %q, want %q", got, want)
	}
}

// checkBytes checks that the byte counts of id's status updates grow to
// total, and that each gives the total.
func checkBytes(t *testing.T, ps []Progress, id, status string, total int64) {
	t.Helper()
	var last int64
	for _, p := range ps {
		if p.ID != id || p.Status != status {
			continue
		}
		if p.Current < last || p.Total != total {
			t.Errorf("%s update %d/%d after %d, want a total of %d", status, p.Current, p.Total, last, total)
		}
		last = p.Current
	}
	if last != total {
		t.Errorf("%s reached %d bytes, want %d", status, last, total)
	}
}
