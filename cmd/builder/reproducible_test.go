package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/builder-project/builder/internal/testutil"
	"github.com/builder-project/builder/internal/testutil/imagediff"
)

// epoch2020 is SOURCE_DATE_EPOCH for 2020-01-01T00:00:00Z: older than
// every file of the checkouts the tests make.
const epoch2020 = "1577836800"

// twoStores returns two store roots holding the same busybox:latest (the
// second loads what the first saves).
func twoStores(t *testing.T) (string, string) {
	t.Helper()
	a := storeWithBusybox(t)
	b := t.TempDir()
	base := filepath.Join(t.TempDir(), "busybox.tar")
	mustCLI(t, a, nil, "save", "-o", base, "busybox:latest")
	mustCLI(t, b, nil, "load", "-i", base)
	return a, b
}

// checkout copies the context src to dst and sets the modification time
// of everything in it to date (touch -d), as a checkout made at another
// time, in another place, would have.
func checkout(t *testing.T, src, dst, date string) string {
	t.Helper()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", src+"/.", dst).CombinedOutput(); err != nil {
		t.Fatalf("cp -a %s %s: %v: %s", src, dst, err, out)
	}
	if out, err := exec.Command("find", dst, "-exec", "touch", "-h", "-d", date, "{}", "+").CombinedOutput(); err != nil {
		t.Fatalf("touch -d %s: %v: %s", date, err, out)
	}
	return dst
}

// buildSaved builds ctx in root with env added to the CLI's environment
// and returns the image ID and the image saved as an OCI archive.
func buildSaved(t *testing.T, root, ctx string, env []string, args ...string) (string, *imagediff.Image) {
	t.Helper()
	dir := t.TempDir()
	iid, archive := filepath.Join(dir, "iid"), filepath.Join(dir, "image.tar")
	cmd := cli(root, append(append([]string{"build", "--progress", "plain", "--iidfile", iid}, args...), ctx)...)
	cmd.Env = append(cmd.Env, env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", ctx, err, out)
	}
	id, err := os.ReadFile(iid)
	if err != nil {
		t.Fatal(err)
	}
	mustCLI(t, root, nil, "save", "--format", "oci", "-o", archive, string(id))
	img, err := imagediff.ReadOCIArchive(archive)
	if err != nil {
		t.Fatal(err)
	}
	return string(id), img
}

// TestReproducibleExamples builds every example twice, in two stores, from
// two checkouts in different places with different mtimes, once with
// SOURCE_DATE_EPOCH in the environment and once with --source-date-epoch
// (which wins over another value in the environment): the image IDs and
// every layer digest are the same. When they are not, the failure lists
// what differs, file by file.
func TestReproducibleExamples(t *testing.T) {
	testutil.SkipIfShort(t, "builds every example twice")
	rootA, rootB := twoStores(t)
	ex := examplesDir(t)
	for _, name := range []string{"hello", "multistage", "app"} {
		t.Run(name, func(t *testing.T) {
			ctxA := checkout(t, filepath.Join(ex, name), filepath.Join(t.TempDir(), "src", name), "2021-03-04 05:06:07 UTC")
			ctxB := checkout(t, filepath.Join(ex, name), filepath.Join(t.TempDir(), "elsewhere", "checkout"), "2025-06-07 08:09:10 UTC")
			idA, imgA := buildSaved(t, rootA, ctxA, []string{"SOURCE_DATE_EPOCH=" + epoch2020})
			idB, imgB := buildSaved(t, rootB, ctxB, []string{"SOURCE_DATE_EPOCH=1700000000"}, "--source-date-epoch", epoch2020)
			if diffs := imagediff.Compare(imgA, imgB); len(diffs) > 0 || idA != idB {
				t.Fatalf("two builds of %s: %s and %s; differences:\n  %s", name, idA, idB, strings.Join(diffs, "\n  "))
			}
			if n := len(imgA.Layers); n < 2 {
				t.Fatalf("%d layers: the example added none", n)
			}
			var cfg struct{ Created string }
			if err := json.Unmarshal(imgA.Config, &cfg); err != nil || cfg.Created != "2020-01-01T00:00:00Z" {
				t.Errorf("config created %q (%v), want 2020-01-01T00:00:00Z", cfg.Created, err)
			}
		})
	}
}

// TestReproducibleDiffListing builds the hello example in two stores from
// the two checkouts without SOURCE_DATE_EPOCH: the images differ, and the
// comparison says where (the config's dates, and the copied script's
// mtime in the layer that copies it).
func TestReproducibleDiffListing(t *testing.T) {
	testutil.SkipIfShort(t, "builds an example twice")
	rootA, rootB := twoStores(t)
	src := filepath.Join(examplesDir(t), "hello")
	ctxA := checkout(t, src, filepath.Join(t.TempDir(), "a"), "2021-03-04 05:06:07 UTC")
	ctxB := checkout(t, src, filepath.Join(t.TempDir(), "b"), "2025-06-07 08:09:10 UTC")
	idA, imgA := buildSaved(t, rootA, ctxA, []string{"SOURCE_DATE_EPOCH="})
	idB, imgB := buildSaved(t, rootB, ctxB, []string{"SOURCE_DATE_EPOCH="})
	if idA == idB {
		t.Fatalf("two builds from checkouts with other mtimes, without SOURCE_DATE_EPOCH, gave one image %s", idA)
	}
	listing := strings.Join(imagediff.Compare(imgA, imgB), "\n")
	for _, want := range []string{
		"config: created: ",
		"usr/local/bin/hello: mtime 2021-03-04T05:06:07Z != 2025-06-07T08:09:10Z",
	} {
		if !strings.Contains(listing, want) {
			t.Errorf("listing lacks %q:\n%s", want, listing)
		}
	}
	if bytes.Contains([]byte(listing), []byte("sha256 ")) {
		t.Errorf("listing shows a content difference; only times differ:\n%s", listing)
	}
}

// TestSourceDateEpochErrors checks that a bad epoch, from the flag or the
// environment, fails the build with a message naming where it came from.
func TestSourceDateEpochErrors(t *testing.T) {
	ctx := t.TempDir()
	writeFile(t, filepath.Join(ctx, "Dockerfile"), []byte("FROM scratch\n"))
	for _, tc := range []struct {
		env  string
		args []string
		want string
	}{
		{"", []string{"--source-date-epoch", "yesterday"}, `--source-date-epoch: SOURCE_DATE_EPOCH "yesterday": want the seconds since 1970-01-01 UTC`},
		{"SOURCE_DATE_EPOCH=1.5", nil, `environment variable SOURCE_DATE_EPOCH "1.5"`},
		{"", []string{"--build-arg", "SOURCE_DATE_EPOCH=-3"}, `--build-arg SOURCE_DATE_EPOCH "-3"`},
	} {
		cmd := cli(t.TempDir(), append(append([]string{"build"}, tc.args...), ctx)...)
		if tc.env != "" {
			cmd.Env = append(cmd.Env, tc.env)
		}
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("%s %q: %v\n%s\nwant %q", tc.env, tc.args, err, out, tc.want)
		}
	}
}
