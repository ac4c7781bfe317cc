package builder

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/builder-project/builder/executor/executortest"
	"github.com/builder-project/builder/internal/testutil"
)

// TestStoreInsideContext: a store kept inside the build context (build
// --root ./store .) is left out of it, so COPY . copies the project and not
// the store into itself, whatever the .dockerignore says.
func TestStoreInsideContext(t *testing.T) {
	testutil.RequirePrivileges(t, "root") // COPY sets owners
	ctxDir := t.TempDir()
	root := filepath.Join(ctxDir, "st[1]")
	b, err := Open(root, WithExecutor(&executortest.Fake{}))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"Dockerfile":    "FROM scratch\nCOPY . /ctx/\n",
		".dockerignore": "!st[[]1]\n",
		"app.txt":       "app\n",
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(ctxDir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Build(context.Background(), BuildOptions{ContextDir: ctxDir, Tags: []string{"app:1"}}); err != nil {
		t.Fatal(err)
	}
	img, err := b.resolve(context.Background(), "app:1")
	if err != nil {
		t.Fatal(err)
	}
	entries := layerEntries(t, b, img.manifest.Layers[0].Digest)
	if !slices.Contains(entries, "ctx/app.txt") {
		t.Errorf("the context was not copied: %q", entries)
	}
	for _, e := range entries {
		if strings.HasPrefix(e, "ctx/st[1]") {
			t.Errorf("the store was copied into the image: %q", e)
		}
	}
}
