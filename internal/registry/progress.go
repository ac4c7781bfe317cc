package registry

import (
	"io"
	"sync"
	"time"

	"github.com/builder-project/builder/internal/store"
	digest "github.com/opencontainers/go-digest"
)

// Progress is one transfer update, in docker's words.
//
// A pull says, in this order: "Pulling from library/app" (ID ""); per layer
// "Already exists", or "Pulling fs layer", "Waiting" (when more than Jobs
// layers are missing), "Downloading" (repeated, with Current and Total),
// "Verifying Checksum", "Download complete" and "Pull complete"; then
// "Digest: sha256:…" and "Status: Downloaded newer image for app:1" or
// "Status: Image is up to date for app:1" (ID "").
//
// A push says "The push refers to repository [docker.io/library/app]"
// (ID ""); per layer "Preparing", "Waiting", "Pushing" (repeated, with
// Current and Total), then "Pushed", "Layer already exists" or
// "Mounted from library/base"; then, as docker ends a push,
// "1: digest: sha256:… size: 528" (ID "").
type Progress struct {
	// ID is the short id (12 hex digits of the blob digest) of the layer an
	// update is about, "" for lines about the whole image.
	ID string
	// Status is docker's word for what happens.
	Status string
	// Current and Total are bytes done and to do, for Downloading and
	// Pushing; 0 otherwise.
	Current, Total int64
}

// emitter serializes calls of a Progress callback.
type emitter struct {
	mu sync.Mutex
	fn func(Progress)
}

// emit sends p to the callback, if there is one.
func (e *emitter) emit(p Progress) {
	if e == nil || e.fn == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.fn(p)
}

// status sends a line about the whole image.
func (e *emitter) status(s string) { e.emit(Progress{Status: s}) }

// layer sends a line about the layer d.
func (e *emitter) layer(d digest.Digest, s string) { e.emit(Progress{ID: store.ShortID(d), Status: s}) }

// progressInterval is the least time between two byte-count updates of one
// transfer; the first and the last are always sent.
const progressInterval = 100 * time.Millisecond

// progressReader reports the bytes read through it as status updates about
// the blob d ("Downloading", "Pushing"), and done once all total bytes
// have passed.
type progressReader struct {
	r      io.Reader
	e      *emitter
	d      digest.Digest
	status string
	total  int64
	done   func()
	n      int64
	last   time.Time
}

// Read implements io.Reader.
func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		first := p.n == 0
		p.n += int64(n)
		end := p.n >= p.total
		if first || end || time.Since(p.last) >= progressInterval {
			p.last = time.Now()
			p.e.emit(Progress{ID: store.ShortID(p.d), Status: p.status, Current: p.n, Total: p.total})
		}
		if end && p.done != nil {
			p.done()
			p.done = nil
		}
	}
	return n, err
}
