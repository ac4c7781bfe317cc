// Package filecopy copies one regular file's content to a new file: the
// plumbing that private copies of mount sources, fakes and test fixtures
// share.
package filecopy

import (
	"fmt"
	"io"
	"os"
)

// File copies the content of the regular file src to the new file dst,
// created with permissions perm (before umask). dst must not exist: an
// existing file, or a symlink in its place, is never written through. A
// partly written dst is removed on error.
func File(dst, src string, perm os.FileMode) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copying %s: %w", src, err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm)
	if err != nil {
		return fmt.Errorf("copying %s: %w", src, err)
	}
	defer func() {
		if cerr := out.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("copying %s to %s: %w", src, dst, cerr)
		}
		if err != nil {
			os.Remove(dst)
		}
	}()
	if _, err := io.Copy(out, in); err != nil {
		return fmt.Errorf("copying %s to %s: %w", src, dst, err)
	}
	return nil
}
