//go:build !linux

package builder

import (
	"errors"
	"os"

	"github.com/builder-project/builder/executor"
)

func mountHost(executor.Executor, string, executor.RootfsMount) error {
	return errors.New("mounting a container's root filesystem needs Linux")
}

func (b *Builder) unmountHost(string) error { return nil }

func (b *Builder) withProcessRoot(*container, int, func(string) error) error {
	return errors.New("copying into a running container needs Linux")
}

func isMounted(string) bool { return false }

func isWhiteout(os.FileInfo) bool { return false }

func isOpaque(string) bool { return false }
