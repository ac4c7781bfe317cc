package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/builder-project/builder/internal/registry/registrytest"
)

// TestCacheToFromRegistry moves a build cache to an empty store on
// "another machine" through a registry: every step hits, the image is the
// same, and an unusable --cache-from is only a warning.
func TestCacheToFromRegistry(t *testing.T) {
	root := storeWithBusybox(t)
	reg := registrytest.Start(t)
	ref := reg.Host + "/cache:cli"
	ctx := t.TempDir()
	writeFile(t, filepath.Join(ctx, "Dockerfile"), []byte("FROM busybox:latest AS b\nRUN echo built > /x\nFROM busybox:latest\nCOPY --from=b /x /y\n"))
	id1 := strings.TrimSpace(mustCLI(t, root, nil, "build", "-q",
		"--cache-to", "type=registry,ref="+ref+",mode=max,compression=gzip,image-manifest=true,oci-mediatypes=true", ctx))

	base := filepath.Join(t.TempDir(), "base.tar")
	mustCLI(t, root, nil, "save", "-o", base, "busybox:latest")
	other := t.TempDir()
	mustCLI(t, other, nil, "load", "-i", base)
	iid := filepath.Join(other, "iid")
	out, err := cli(other, "build", "--progress", "plain", "--cache-from", ref, "--cache-from", "type=registry,ref="+reg.Host+"/cache:missing", "--iidfile", iid, ctx).CombinedOutput()
	if err != nil {
		t.Fatalf("build with --cache-from: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "2 steps, 2 cached") || !strings.Contains(string(out), "importing cache from "+reg.Host+"/cache:missing") {
		t.Fatalf("want every step cached and a warning about the missing cache:\n%s", out)
	}
	if id2, err := os.ReadFile(iid); err != nil || string(id2) != id1 {
		t.Fatalf("image ID differs across machines: %s vs %s (%v)", id1, id2, err)
	}

	for _, bad := range []string{"type=registry,ref=" + ref + ",image-manifest=false", "type=registry", "type=registry,ref=" + ref + ",mode=all", "type=s3,ref=x"} {
		out, err := cli(other, "build", "--cache-to", bad, ctx).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "--cache-to") {
			t.Errorf("--cache-to %s: %v\n%s", bad, err, out)
		}
	}
}
