package builder

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/builder-project/builder/internal/testutil"
)

func TestImportWithChanges(t *testing.T) {
	ctx := context.Background()
	b := newTestBuilder(t)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(tarOf(t, "etc/", "", "etc/hello", "hi\n"))
	zw.Close()
	id, err := b.Import(ctx, &gz, ImportOptions{Ref: "base:1", Message: "imported", Changes: []string{
		`ENV A=1`, `ENV B=$A C=$B`, `CMD ["/bin/sh"]`, `ENTRYPOINT ["/bin/env"]`, `EXPOSE 80 53/udp`, `LABEL k=v`,
		`USER app`, `VOLUME /data`, `WORKDIR /srv`, `STOPSIGNAL SIGTERM`, `ONBUILD RUN echo child`,
	}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := b.Inspect(ctx, []string{"base:1"})
	if err != nil {
		t.Fatal(err)
	}
	r := res[0]
	c := r.Config
	if r.ID != id || r.Comment != "imported" || len(r.RootFS.Layers) != 1 || r.Os != "linux" {
		t.Fatalf("inspect: %+v", r)
	}
	if strings.Join(c.Env, ",") != "A=1,B=1,C=" || strings.Join(c.Entrypoint, " ") != "/bin/env" || c.User != "app" || c.WorkingDir != "/srv" || c.StopSignal != "SIGTERM" {
		t.Fatalf("config: %+v", c)
	}
	// CMD was set in the same change set, so ENTRYPOINT keeps it.
	if strings.Join(c.Cmd, " ") != "/bin/sh" {
		t.Fatalf("Cmd = %v", c.Cmd)
	}
	if _, ok := c.ExposedPorts["53/udp"]; !ok || len(c.ExposedPorts) != 2 || c.Labels["k"] != "v" || len(c.Volumes) != 1 || len(c.OnBuild) != 1 {
		t.Fatalf("config: %+v", c)
	}
	if _, err := b.Import(ctx, bytes.NewReader(tarOf(t, "a", "b")), ImportOptions{Changes: []string{"RUN echo"}}); err == nil {
		t.Fatal("RUN accepted as a change")
	}
}

func TestTagRemovePrune(t *testing.T) {
	ctx := context.Background()
	b := newTestBuilder(t)
	id1, _ := b.Import(ctx, bytes.NewReader(tarOf(t, "a", "1")), ImportOptions{Ref: "one"})
	if err := b.Tag(ctx, "one", "other/name:2"); err != nil {
		t.Fatal(err)
	}
	id2, _ := b.Import(ctx, bytes.NewReader(tarOf(t, "b", "2")), ImportOptions{})
	list, _ := b.Images(ctx, ImagesOptions{})
	if len(list) != 2 {
		t.Fatalf("Images = %+v", list)
	}
	yes := true
	dangling, _ := b.Images(ctx, ImagesOptions{Dangling: &yes})
	if len(dangling) != 1 || dangling[0].ID != id2 {
		t.Fatalf("dangling = %+v", dangling)
	}
	ref, _ := b.Images(ctx, ImagesOptions{References: []string{"other/*"}})
	if len(ref) != 1 || ref[0].ID != id1 {
		t.Fatalf("reference filter = %+v", ref)
	}
	// By ID with two tags: needs force.
	if _, err := b.Remove(ctx, []string{id1[7:19]}, false); !errors.Is(err, ErrConflict) {
		t.Fatalf("rmi by ID of multi-tagged image: %v", err)
	}
	res, err := b.Remove(ctx, []string{"one"}, false)
	if err != nil || len(res.Untagged) != 1 || len(res.Deleted) != 0 {
		t.Fatalf("untag: %+v %v", res, err)
	}
	res, err = b.Remove(ctx, []string{"other/name:2"}, false)
	if err != nil || len(res.Deleted) != 1 || res.Deleted[0] != id1 {
		t.Fatalf("delete: %+v %v", res, err)
	}
	if _, err := b.Inspect(ctx, []string{id1}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted image still there: %v", err)
	}
	rep, err := b.Prune(ctx, PruneOptions{})
	if err != nil || len(rep.Deleted) != 1 || rep.Reclaimed == 0 {
		t.Fatalf("prune: %+v %v", rep, err)
	}
	blobs, _ := b.st.Blobs()
	if len(blobs) != 0 {
		t.Fatalf("blobs left after everything was removed: %d", len(blobs))
	}
}

func TestHistoryAndSaveLoadExport(t *testing.T) {
	ctx := context.Background()
	b := newTestBuilder(t)
	b.Import(ctx, bytes.NewReader(tarOf(t, "dir/", "", "dir/f", "content", "g", "x")), ImportOptions{Ref: "img:1", Message: "m"})
	h, err := b.History(ctx, "img:1")
	if err != nil || len(h) != 1 || h[0].Size == 0 || !strings.HasPrefix(h[0].ID, "sha256:") || h[0].Comment != "m" {
		t.Fatalf("history: %+v %v", h, err)
	}
	for _, format := range []ArchiveFormat{DockerArchive, OCIArchive} {
		t.Run(string(format), func(t *testing.T) {
			var buf bytes.Buffer
			if err := b.Save(ctx, &buf, format, []string{"img:1"}); err != nil {
				t.Fatal(err)
			}
			b2 := newTestBuilder(t)
			loaded, err := b2.Load(ctx, &buf)
			if err != nil {
				t.Fatal(err)
			}
			if len(loaded) != 1 || len(loaded[0].Names) != 1 || loaded[0].Names[0] != "img:1" {
				t.Fatalf("loaded %+v", loaded)
			}
			want, _ := b.ResolveID("img:1")
			got, _ := b2.ResolveID("img:1")
			if got != want {
				t.Fatalf("image ID changed: %s → %s", want, got)
			}
		})
	}
	testutil.RequirePrivileges(t, "root") // unpacking restores owners
	var out bytes.Buffer
	if err := b.Export(ctx, &out, "img:1"); err != nil {
		t.Fatal(err)
	}
	var names []string
	tr := tar.NewReader(&out)
	for {
		hd, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, strings.TrimSuffix(strings.TrimPrefix(hd.Name, "./"), "/"))
	}
	sort.Strings(names)
	if strings.Join(names, ",") != "dir,dir/f,g" {
		t.Fatalf("export entries = %v", names)
	}
}

// TestImagesFilters checks that the reference filters keep only the
// matching tags of an image, and the before and since filters.
func TestImagesFilters(t *testing.T) {
	ctx := context.Background()
	b := newTestBuilder(t)
	first, err := b.Import(ctx, bytes.NewReader(tarOf(t, "a", "1")), ImportOptions{Ref: "app:1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Tag(ctx, "app:1", "other:1"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	second, _ := b.Import(ctx, bytes.NewReader(tarOf(t, "a", "2")), ImportOptions{Ref: "app:2"})
	for _, tc := range []struct {
		opts ImagesOptions
		want string // ID:tags;...
	}{
		{ImagesOptions{References: []string{"app"}}, second + ":app:2;" + first + ":app:1"},
		{ImagesOptions{References: []string{"other:*"}}, first + ":other:1"},
		{ImagesOptions{Before: "app:2"}, first + ":app:1,other:1"},
		{ImagesOptions{Since: first}, second + ":app:2"},
	} {
		list, err := b.Images(ctx, tc.opts)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range list {
			got = append(got, s.ID+":"+strings.Join(s.RepoTags, ","))
		}
		if strings.Join(got, ";") != tc.want {
			t.Errorf("Images(%+v) = %v, want %s", tc.opts, got, tc.want)
		}
	}
	if _, err := b.Images(ctx, ImagesOptions{Since: "missing"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("since= a missing image: %v", err)
	}
}
