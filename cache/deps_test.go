package cache

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestProjectImports guards the package map: cache imports nothing from the
// project but leaf packages of shared plumbing, and those import nothing
// from the project themselves.
func TestProjectImports(t *testing.T) {
	leaves := map[string]bool{
		"internal/atomicfile":  true,
		"internal/compression": true,
		"internal/ioctx":       true,
		"internal/passwd":      true,
	}
	for _, p := range projectImports(t, ".") {
		if !leaves[p] {
			t.Errorf("cache imports %s", p)
		}
	}
	for leaf := range leaves {
		for _, p := range projectImports(t, filepath.Join("..", leaf)) {
			t.Errorf("%s imports %s", leaf, p)
		}
	}
}

// projectImports returns the project packages, relative to the module root,
// that the non-test Go files in dir import.
func projectImports(t *testing.T, dir string) []string {
	t.Helper()
	const module = "github.com/builder-project/builder/"
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Go files in %s: %v", dir, err)
	}
	var out []string
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if rel, ok := strings.CutPrefix(p, module); ok {
				out = append(out, rel)
			}
		}
	}
	return out
}
