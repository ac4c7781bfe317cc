package builder

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// flagsDockerfile uses a backtick escape, so it is built line by line.
var flagsDockerfile = strings.Join([]string{
	"# escape=`",
	"ARG BASE=busybox:latest",
	"FROM ${BASE} AS base",
	"MAINTAINER someone@example.com",
	"RUN --network=none cat /proc/net/dev | grep -c : > /netdevs",
	"RUN --mount=type=tmpfs,target=/scratch touch /scratch/x && test -f /scratch/x",
	"COPY --exclude=*.log logs/ /logs/",
	"COPY --parents src/a/one.txt src/b/two.txt /parents/",
	"COPY --link link.txt /linked/",
	"ADD archive.tar.gz /unpacked/",
	"COPY archive.tar.gz /packed/",
	"RUN echo one `",
	"    two > /escaped.txt",
	"",
	"FROM base AS skipped",
	"RUN exit 9",
	"",
	"FROM base AS final",
	"RUN echo final > /final",
	"",
}, "\n")

func gzipTar(t *testing.T, files ...string) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for i := 0; i+1 < len(files); i += 2 {
		tw.WriteHeader(&tar.Header{Name: files[i], Mode: 0o644, Size: int64(len(files[i+1])), Typeflag: tar.TypeReg})
		tw.Write([]byte(files[i+1]))
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

func TestBuildFlags(t *testing.T) {
	f := newBuildFixture(t, map[string]string{
		"Dockerfile":    flagsDockerfile,
		"logs/keep.txt": "k", "logs/drop.log": "d",
		"src/a/one.txt": "1", "src/b/two.txt": "2", "link.txt": "L",
		"archive.tar.gz": string(gzipTar(t, "inner/file.txt", "from archive")),
	})
	res := f.mustBuild(t, BuildOptions{Tags: []string{"flags"}, Target: "base", Labels: map[string]string{"built.by": "test"}})
	root := f.rootfs(t, "flags")
	for p, want := range map[string]string{
		"netdevs":                 "1\n", // only lo with --network=none
		"logs/keep.txt":           "k",
		"parents/src/a/one.txt":   "1",
		"parents/src/b/two.txt":   "2",
		"linked/link.txt":         "L",
		"unpacked/inner/file.txt": "from archive",
		"escaped.txt":             "one two\n",
	} {
		if got := readFile(t, filepath.Join(root, p)); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
	for _, gone := range []string{"logs/drop.log", "scratch/x", "final"} {
		if _, err := os.Lstat(filepath.Join(root, gone)); !os.IsNotExist(err) {
			t.Errorf("%s should not be in the image: %v", gone, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(root, "packed", "archive.tar.gz")); err != nil || fi.Size() == 0 {
		t.Errorf("COPY extracted or lost an archive: %v", err)
	}
	insp, _ := f.b.Inspect(context.Background(), []string{res.ID.String()})
	if insp[0].Author != "someone@example.com" || insp[0].Config.Labels["built.by"] != "test" {
		t.Errorf("author/labels: %q %v", insp[0].Author, insp[0].Config.Labels)
	}
	// --target base built neither "skipped" nor "final".
	f.mu.Lock()
	for _, ev := range f.evs {
		if ev.Stage == "skipped" || ev.Stage == "final" {
			t.Errorf("stage %s ran for --target base", ev.Stage)
		}
	}
	f.mu.Unlock()
}
