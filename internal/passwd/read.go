package passwd

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	securejoin "github.com/cyphar/filepath-securejoin"
)

// ReadIn parses the file name ("/etc/passwd", "/etc/group") of the root
// filesystem at rootfs with parse (ParsePasswd, ParseGroup). The path is
// resolved inside rootfs, symlinks included, so a symlinked /etc cannot
// make it read a host file. A missing file has no entries.
func ReadIn[E any](rootfs, name string, parse func(io.Reader) ([]E, error)) ([]E, error) {
	p, err := securejoin.SecureJoin(rootfs, name)
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %w", name, err)
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	defer f.Close()
	entries, err := parse(f)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return entries, nil
}
