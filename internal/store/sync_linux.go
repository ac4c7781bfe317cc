package store

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// syncFiles makes every file below dir durable before a snapshot is
// published by rename. It issues one syncfs(2) on dir's filesystem instead
// of an fsync per file: the kernel writes the dirty data of the whole
// filesystem in one pass, which costs about what writing the files did,
// where thousands of fsyncs each wait for their own journal commit.
func syncFiles(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("syncing the filesystem of %s: %w", dir, err)
	}
	return nil
}
