package builder_test

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/builder-project/builder/builder"
	"github.com/builder-project/builder/executor/executortest"
)

// writeContext makes a build context holding one Dockerfile.
func writeContext(dockerfile string) string {
	dir, err := os.MkdirTemp("", "builder-example-context-")
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		log.Fatal(err)
	}
	return dir
}

// Open a store, build a Dockerfile into a tagged image, and save it as an
// OCI archive.
func Example() {
	ctx := context.Background()
	root, _ := os.MkdirTemp("", "builder-example-store-")
	defer os.RemoveAll(root)
	contextDir := writeContext("FROM scratch\nLABEL org.opencontainers.image.title=hello\nCMD [\"/hello\"]\n")
	defer os.RemoveAll(contextDir)

	b, err := builder.Open(root)
	if err != nil {
		log.Fatal(err)
	}
	res, err := b.Build(ctx, builder.BuildOptions{ContextDir: contextDir, Tags: []string{"hello:1"}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("steps:", res.Steps)

	var archive bytes.Buffer
	if err := b.Save(ctx, &archive, builder.OCIArchive, []string{"hello:1"}); err != nil {
		log.Fatal(err)
	}
	blobs := 0
	tr := tar.NewReader(&archive)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		if strings.HasPrefix(h.Name, "blobs/sha256/") && h.Typeflag == tar.TypeReg {
			blobs++
		} else if h.Typeflag == tar.TypeReg {
			fmt.Println(h.Name)
		}
	}
	fmt.Println("blobs:", blobs)
	// Output:
	// steps: 2
	// oci-layout
	// index.json
	// blobs: 2
}

// WithExecutor replaces the runtime that runs the steps. The fake one runs
// them in-process, without root, which suits tests of code built on the
// library.
func ExampleWithExecutor() {
	ctx := context.Background()
	root, _ := os.MkdirTemp("", "builder-example-store-")
	defer os.RemoveAll(root)
	contextDir := writeContext("FROM scratch\nWORKDIR /app\nRUN echo hi > greeting\n")
	defer os.RemoveAll(contextDir)

	fake := &executortest.Fake{}
	b, err := builder.Open(root, builder.WithExecutor(fake))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := b.Build(ctx, builder.BuildOptions{ContextDir: contextDir, Tags: []string{"app:1"}}); err != nil {
		log.Fatal(err)
	}
	for _, s := range fake.Runs() {
		fmt.Printf("ran %q in %s\n", s.Args, s.Cwd)
	}
	hist, err := b.History(ctx, "app:1")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("history entries:", len(hist))
	// Output:
	// ran ["/bin/sh" "-c" "echo hi > greeting"] in /app
	// history entries: 2
}
