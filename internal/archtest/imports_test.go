package archtest

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/builder-project/builder/"

// leaves are the small internal packages of shared plumbing: any package
// may import them, and they import no other project package but a leaf.
var leaves = []string{"internal/atomicfile", "internal/compression", "internal/filecopy", "internal/ioctx", "internal/mediatype", "internal/passwd", "internal/platform", "internal/userns"}

// allowed is the package map: the project packages each package's
// non-test files may import, besides the leaves. Imports point down the
// map and never back up; dockerfile, cache, executor and layer do not
// import each other, and builder is the only package that wires them.
var allowed = map[string][]string{
	"cmd/builder":           {"builder", "dockerfile"},
	"builder":               {"dockerfile", "cache", "executor", "layer", "output", "internal/store", "internal/copier", "internal/registry"},
	"output":                {"internal/store", "layer"},
	"internal/store":        {"layer"},
	"internal/copier":       {},
	"dockerfile":            {},
	"cache":                 {},
	"executor":              {},
	"executor/executortest": {"executor"},
	"layer":                 {},
	"internal/testutil":     {},
	"internal/archtest":     {},

	// layer-by-layer listings and comparisons of image archives, for tests
	"internal/testutil/imagediff": {},

	// the registry client, and the real registry its tests and others' run
	"internal/registry":              {"internal/store", "output"},
	"internal/registry/registrytest": {"internal/testutil"},
}

// testOnly are packages only tests may import, in any package.
var testOnly = []string{"internal/testutil", "internal/testutil/imagediff", "executor/executortest", "internal/registry/registrytest"}

// TestImportDirection parses every Go file of the module and checks its
// project imports against the package map. A package missing from the map
// fails too, so that a new package gets a place in it.
func TestImportDirection(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range leaves {
		allowed[l] = nil
	}
	imports := map[string]map[string]bool{} // "pkg" or "pkg (test)" → imports
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); p != root && (strings.HasPrefix(n, ".") || n == "testdata" || n == "examples" || n == "bin") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") {
			return nil
		}
		rel, _ := filepath.Rel(root, filepath.Dir(p))
		pkg := filepath.ToSlash(rel)
		key := pkg
		if strings.HasSuffix(p, "_test.go") {
			key += " (test)"
		}
		f, err := parser.ParseFile(fset, p, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		if imports[key] == nil {
			imports[key] = map[string]bool{}
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(path, module) {
				imports[key][strings.TrimPrefix(path, module)] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(imports) < 10 {
		t.Fatalf("found only %d packages under %s: the walk is broken", len(imports), root)
	}
	var keys []string
	for k := range imports {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		pkg, isTest := strings.CutSuffix(key, " (test)")
		ok, known := allowed[pkg]
		if !known {
			t.Errorf("package %s is not in the package map (internal/archtest/imports_test.go, docs/architecture.md)", pkg)
			continue
		}
		permit := map[string]bool{pkg: true}
		for _, p := range append(append([]string{}, ok...), leaves...) {
			permit[p] = true
		}
		if isTest {
			for _, p := range testOnly {
				permit[p] = true
			}
			for _, p := range ok {
				// a test may use what its package's dependencies offer to tests
				for _, q := range allowed[p] {
					permit[q] = true
				}
			}
		}
		for imp := range imports[key] {
			if !permit[imp] {
				t.Errorf("%s imports %s, which the package map does not allow", key, imp)
			}
		}
	}
}
