//go:build !linux

package cache

import (
	"errors"
	"fmt"
	"os"
)

// The file kinds of meta.mode (the S_IFMT bits of st_mode).
const (
	modeTypeMask = 0o170000
	modeDir      = 0o040000
	modeReg      = 0o100000
	modeSymlink  = 0o120000
	modeChar     = 0o020000
	modeBlock    = 0o060000
)

// errNoContextChecksum is returned by the Hasher on platforms where the
// context walk is not implemented.
var errNoContextChecksum = fmt.Errorf("checksumming build contexts: %w (linux only)", errors.ErrUnsupported)

func statAt(int, string) (meta, error)                 { return meta{}, errNoContextChecksum }
func statFile(*os.File) (meta, error)                  { return meta{}, errNoContextChecksum }
func openDirAt(int, string, string) (*os.File, error)  { return nil, errNoContextChecksum }
func openFileAt(int, string, string) (*os.File, error) { return nil, errNoContextChecksum }
func readlinkAt(int, string, string) (string, error)   { return "", errNoContextChecksum }
