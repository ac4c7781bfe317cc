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

func isMounted(string) bool { return false }

func isWhiteout(os.FileInfo) bool { return false }

func isOpaque(string) bool { return false }
