//go:build unix

package store

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// fileLock is an flock(2) lock on one file. The kernel drops it when the
// process dies, which is what lets Open tell a dead writer from a live one.
type fileLock struct{ f *os.File }

func openLockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening lock %s: %w", path, err)
	}
	return f, nil
}

func lockPath(path string, how int) (*fileLock, error) {
	f, err := openLockFile(path)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errLocked
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return &fileLock{f: f}, nil
}

func lockExclusive(path string) (*fileLock, error) { return lockPath(path, syscall.LOCK_EX) }
func lockShared(path string) (*fileLock, error)    { return lockPath(path, syscall.LOCK_SH) }
func tryLockExclusive(path string) (*fileLock, error) {
	return lockPath(path, syscall.LOCK_EX|syscall.LOCK_NB)
}

func (l *fileLock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the last descriptor releases the flock
	l.f = nil
	return err
}
