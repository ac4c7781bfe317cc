//go:build !linux

package output

import (
	"errors"
	"os"
)

// stagingDir creates the directory an image is unpacked into, next to dir.
func stagingDir(dir string) (string, error) {
	return os.MkdirTemp(dir, ".export-")
}

// moveEntries moves the entries of src into dst. Unpacking a root
// filesystem is only supported on Linux.
func moveEntries(src, dst string, force bool) error {
	return errors.New("moving a root filesystem into place is only supported on linux")
}
