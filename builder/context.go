package builder

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"

	"github.com/builder-project/builder/layer"
)

// ContextFromReader reads a build context from r, as `docker build -` does:
// a tar archive (plain or compressed) becomes the context directory, and
// anything else is taken as the Dockerfile with an empty context. It
// returns the directory, the Dockerfile when r held one, and a cleanup.
func ContextFromReader(r io.Reader) (dir string, dockerfile []byte, cleanup func(), err error) {
	dir, err = os.MkdirTemp("", "builder-context-")
	if err != nil {
		return "", nil, nil, err
	}
	cleanup = func() { os.RemoveAll(dir) }
	br := bufio.NewReaderSize(r, 1<<20)
	plain, comp, err := layer.DecompressStream(br)
	if err != nil {
		cleanup()
		return "", nil, nil, fmt.Errorf("reading build context: %w", err)
	}
	defer plain.Close()
	pr := bufio.NewReaderSize(plain, 1<<20)
	head, _ := pr.Peek(512)
	if comp == layer.Uncompressed && !looksLikeTar(head) {
		data, err := io.ReadAll(pr)
		if err != nil {
			cleanup()
			return "", nil, nil, err
		}
		return dir, data, cleanup, nil
	}
	if _, err := layer.Apply(context.Background(), dir, pr, layer.ApplyOptions{Format: layer.DirFormat}); err != nil {
		cleanup()
		return "", nil, nil, fmt.Errorf("unpacking build context: %w", err)
	}
	return dir, nil, cleanup, nil
}

// looksLikeTar checks the ustar magic of a tar header block.
func looksLikeTar(h []byte) bool {
	return len(h) >= 262 && (bytes.Equal(h[257:262], []byte("ustar")))
}
