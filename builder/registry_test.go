package builder

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/builder-project/builder/internal/registry/registrytest"
)

// TestRegistryRoundTrip pushes a built image to a real registry on
// loopback, pulls it into an empty store, builds FROM it there, and pushes
// the pulled image on: its manifest digest is kept, since pulled blobs are
// kept as pulled. It runs on the fake executor, without root.
func TestRegistryRoundTrip(t *testing.T) {
	reg := registrytest.Start(t)
	ctx := context.Background()
	a := newFakeBuild(t, nil)
	ref := reg.Host + "/team/app:1"
	built := a.mustBuild(t, "FROM scratch\nRUN echo hello > /hello\nCMD [\"/hello\"]\n", BuildOptions{Tags: []string{ref}})
	pushed, err := a.b.Push(ctx, ref, "", PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pushed) != 1 || pushed[0].Digest == "" {
		t.Fatalf("pushed %+v", pushed)
	}
	// The built layer went up gzip-compressed, as docker pushes it; the
	// compressed blob is kept, so pushing again compresses nothing.
	again, err := a.b.Push(ctx, ref, reg.Host+"/team/copy:1", PushOptions{})
	if err != nil || again[0].Digest != pushed[0].Digest {
		t.Fatalf("second push: %+v, %v; want digest %s", again, err, pushed[0].Digest)
	}
	ins, err := a.b.Inspect(ctx, []string{ref})
	if err != nil || len(ins[0].RepoDigests) == 0 || !strings.HasSuffix(ins[0].RepoDigests[0], "@"+pushed[0].Digest.String()) {
		t.Errorf("repo digests after push: %v (%v)", ins[0].RepoDigests, err)
	}

	// An empty store pulls it, with the same image ID, and builds on it.
	b := newFakeBuild(t, nil)
	var statuses []string
	pulled, err := b.b.Pull(ctx, ref, PullOptions{Progress: func(ev Event) { statuses = append(statuses, ev.Message) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(pulled) != 1 || pulled[0].ID != built.ID.String() || !pulled[0].Fresh {
		t.Fatalf("pulled %+v, want ID %s", pulled, built.ID)
	}
	if !containsPrefix(statuses, "Status: Downloaded newer image for") {
		t.Errorf("pull said %q", statuses)
	}
	res := b.mustBuild(t, "FROM "+ref+"\nLABEL on=top\n", BuildOptions{Tags: []string{reg.Host + "/team/derived:1"}, Pull: PullNever})
	if res.Steps != 1 {
		t.Errorf("derived build: %+v", res)
	}
	// The pulled image, pushed elsewhere, keeps its manifest digest.
	moved, err := b.b.Push(ctx, ref, reg.Host+"/elsewhere/app:1", PushOptions{})
	if err != nil || moved[0].Digest != pushed[0].Digest {
		t.Errorf("pushing the pulled image: %+v, %v; want digest %s", moved, err, pushed[0].Digest)
	}
}

// TestBuildPullPolicyAndPushOutput builds FROM an image the store lacks:
// the default policy pulls it, never refuses, and a registry output pushes
// the result without keeping a tag.
func TestBuildPullPolicyAndPushOutput(t *testing.T) {
	reg := registrytest.Start(t)
	ctx := context.Background()
	src := newFakeBuild(t, nil)
	base := reg.Host + "/base:1"
	src.mustBuild(t, "FROM scratch\nRUN echo base > /base\n", BuildOptions{Tags: []string{base}})
	if _, err := src.b.Push(ctx, base, "", PushOptions{}); err != nil {
		t.Fatal(err)
	}

	f := newFakeBuild(t, nil)
	df := "FROM " + base + "\nRUN echo top > /top\n"
	if _, err := f.build(t, df, BuildOptions{Pull: PullNever}); !errors.Is(err, ErrNotFound) {
		t.Errorf("--pull=never with a missing base: %v", err)
	}
	out := reg.Host + "/out:1"
	f.mustBuild(t, df, BuildOptions{Tags: []string{out}, Outputs: []Output{{Type: OutputRegistry}}})
	if _, err := f.b.ResolveID(out); !errors.Is(err, ErrNotFound) {
		t.Errorf("a registry-only output kept the tag: %v", err)
	}
	g := newFakeBuild(t, nil)
	if _, err := g.b.Pull(ctx, out, PullOptions{}); err != nil {
		t.Fatalf("pulling the pushed output: %v", err)
	}
	var transfers int
	for _, ev := range f.evs {
		if ev.Kind == Transfer {
			transfers++
		}
	}
	if transfers == 0 {
		t.Error("the build reported no pull or push progress")
	}
}
