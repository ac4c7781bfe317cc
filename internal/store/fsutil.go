package store

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
)

var errLocked = errors.New("locked by another process")

// randomID returns a short random hex string for temporary names.
func randomID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b[:])
}
