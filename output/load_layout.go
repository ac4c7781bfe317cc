package output

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/builder-project/builder/internal/store"
)

// LoadLayout is Load for an OCI image layout directory: it reads the layout
// at dir and ingests the blobs its images need into st, with exactly the
// resolution and checks Load applies to an OCI archive (see Load). Only
// oci-layout, index.json and the regular files blobs/sha256/<hex> are read,
// each through os.Root, so that a symlink cannot lead outside dir (such a
// blob fails the load); other files are ignored. On error nothing is
// committed. LoadLayout never touches the store's index.
func LoadLayout(ctx context.Context, st *store.Store, dir string) ([]Loaded, error) {
	lay, err := OpenLayout(dir)
	if err != nil {
		return nil, err
	}
	l := &loader{ctx: ctx, st: st, files: map[string]*archiveFile{}, links: map[string]string{}}
	defer l.close()
	names, err := lay.blobNames()
	if err != nil {
		return nil, fmt.Errorf("loading layout %s: %w", dir, err)
	}
	for _, name := range append([]string{ocispec.ImageLayoutFile, ocispec.ImageIndexFile}, names...) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		err := lay.feed(l, name)
		if errors.Is(err, fs.ErrNotExist) && name == ocispec.ImageIndexFile {
			continue // resolve says the layout has no index.json
		}
		if err != nil {
			return nil, fmt.Errorf("loading layout %s: %w", dir, err)
		}
	}
	imgs, err := l.resolve()
	if err != nil {
		return nil, fmt.Errorf("loading layout %s: %w", dir, err)
	}
	return imgs, nil
}

// blobNames lists the entries of blobs/sha256 whose names are sha256
// digests, as layout paths. A layout without blobs/sha256 has none.
func (lay *Layout) blobNames() ([]string, error) {
	var entries []fs.DirEntry
	err := lay.withRoot(func(r *os.Root) error {
		d, err := r.Open(path.Join("blobs", "sha256"))
		if err != nil {
			return err
		}
		defer d.Close()
		entries, err = d.ReadDir(-1)
		return err
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", lay.path("blobs/sha256"), err)
	}
	var names []string
	for _, e := range entries {
		if name := path.Join("blobs", "sha256", e.Name()); blobPathRE.MatchString(name) {
			names = append(names, name)
		}
	}
	return names, nil
}

// feed streams the layout file name through the loader as if it were an
// archive entry. A blob that is not a regular file is skipped.
func (lay *Layout) feed(l *loader, name string) error {
	f, fi, err := lay.openFile(name)
	var notRegular *notRegularError
	if errors.As(err, &notRegular) && name != ocispec.ImageLayoutFile && name != ocispec.ImageIndexFile {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	return l.readFile(name, fi.Size(), &exactReader{r: io.LimitReader(f, fi.Size()), left: fi.Size(), name: lay.path(name)})
}

// exactReader reads exactly left bytes from r, failing with
// io.ErrUnexpectedEOF when r ends early (a file shrunk while read).
type exactReader struct {
	r    io.Reader
	left int64
	name string
}

// Read implements io.Reader.
func (e *exactReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if errors.Is(err, io.EOF) && e.left > 0 {
		return n, fmt.Errorf("reading %s: %w", e.name, io.ErrUnexpectedEOF)
	}
	return n, err
}
