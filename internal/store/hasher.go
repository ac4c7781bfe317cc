package store

import (
	"crypto/sha256"
	"hash"

	digest "github.com/opencontainers/go-digest"
)

// hashChunk and hashChunks bound what a hasher holds: the bytes handed to
// its goroutine are copied into at most hashChunks buffers of hashChunk
// bytes, reused, so that hashing a layer allocates 2 MiB once instead of a
// fresh copy per read (which the garbage collector and page faults made
// cost about as much as the hash itself).
const (
	hashChunk  = 256 << 10
	hashChunks = 8
)

// hasher computes the sha256 digest of what it is written on its own
// goroutine, so that the caller's reading or writing overlaps the hash.
// Its zero value is not usable; make one with newHasher. Digest or stop
// must be called once the bytes are written, which ends the goroutine.
type hasher struct {
	h       hash.Hash
	chunks  chan []byte   // to the goroutine, in order
	free    chan []byte   // buffers the goroutine has hashed
	made    int           // buffers allocated so far
	hashed  chan struct{} // closed when the goroutine has hashed every chunk
	stopped bool
}

func newHasher() *hasher { return &hasher{h: sha256.New()} }

// Write hashes a copy of b on the hasher's goroutine, starting it on the
// first call; it blocks only while every buffer is in use. After stop, it
// hashes b at once.
func (a *hasher) Write(b []byte) {
	if a.stopped {
		a.h.Write(b)
		return
	}
	if a.chunks == nil {
		a.chunks, a.free, a.hashed = make(chan []byte, hashChunks), make(chan []byte, hashChunks), make(chan struct{})
		go func() {
			defer close(a.hashed)
			for c := range a.chunks {
				a.h.Write(c)
				a.free <- c
			}
		}()
	}
	for len(b) > 0 {
		var c []byte
		select {
		case c = <-a.free:
		default:
			if a.made < hashChunks {
				a.made++
				c = make([]byte, hashChunk)
			} else {
				c = <-a.free
			}
		}
		n := copy(c[:cap(c)], b)
		a.chunks <- c[:n]
		b = b[n:]
	}
}

// stop waits for the goroutine to hash what it was given and ends it.
func (a *hasher) stop() {
	if a.stopped {
		return
	}
	a.stopped = true
	if a.chunks != nil {
		close(a.chunks)
		<-a.hashed
	}
}

// Digest stops the goroutine and returns the digest of every byte written.
func (a *hasher) Digest() digest.Digest {
	a.stop()
	return digest.NewDigest(digest.SHA256, a.h)
}
