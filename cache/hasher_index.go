package cache

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"path"
	"slices"
	"sync"
	"time"

	"github.com/builder-project/builder/internal/atomicfile"
)

// indexMagic starts every context index file and names its format.
const indexMagic = "builder.cache.ctxindex.v1\n"

// indexEntry is what the index remembers about one regular file.
type indexEntry struct {
	meta meta
	// ref is when the content was read (ns since the epoch, taken before
	// opening the file). Stat data newer than ref minus the racy margin
	// cannot prove the content unchanged.
	ref int64
	sum [32]byte
}

// matches reports whether m has the stat data the entry was hashed with.
// uid and gid are not compared: they do not change content.
func (ie indexEntry) matches(m meta) bool {
	return ie.meta.size == m.size && ie.meta.mtime == m.mtime && ie.meta.ctime == m.ctime &&
		ie.meta.ino == m.ino && ie.meta.dev == m.dev && ie.meta.mode == m.mode
}

// racy reports whether the file's mtime or ctime is so close to the moment
// it was read that a later write could have kept both unchanged.
func (ie indexEntry) racy(margin time.Duration) bool {
	limit := ie.ref - int64(margin)
	return ie.meta.mtime >= limit || ie.meta.ctime >= limit
}

// rootIndex is the index of one context root: root-relative path → entry.
type rootIndex struct {
	root string // absolute path of the context
	file string // index file

	mu      sync.Mutex
	entries map[string]indexEntry
	dirty   bool
}

func (ri *rootIndex) get(name string) (indexEntry, bool) {
	ri.mu.Lock()
	ie, ok := ri.entries[name]
	ri.mu.Unlock()
	return ie, ok
}

func (ri *rootIndex) put(name string, ie indexEntry) {
	ri.mu.Lock()
	ri.entries[name] = ie
	ri.dirty = true
	ri.mu.Unlock()
}

// load reads the index file. A missing or corrupt file leaves the index
// empty: everything is read again and the file is replaced on save.
func (ri *rootIndex) load() {
	b, err := os.ReadFile(ri.file)
	if err != nil {
		return
	}
	entries, err := decodeIndex(b, ri.root)
	if err != nil {
		return
	}
	ri.entries = entries
}

// save forgets entries for files that the walk showed are gone and, if the
// index changed, writes it atomically. listed maps each directory the walk
// listed to its sorted names.
func (ri *rootIndex) save(listed map[string][]string) error {
	ri.mu.Lock()
	for name := range ri.entries {
		if gone(name, listed) {
			delete(ri.entries, name)
			ri.dirty = true
		}
	}
	if !ri.dirty {
		ri.mu.Unlock()
		return nil
	}
	b := encodeIndex(ri.entries, ri.root)
	ri.dirty = false
	ri.mu.Unlock()
	if err := atomicfile.WriteFile(ri.file, b, 0o600); err != nil {
		ri.mu.Lock()
		ri.dirty = true
		ri.mu.Unlock()
		return fmt.Errorf("saving context index: %w", err)
	}
	return nil
}

// gone reports whether the walk proved name absent: the nearest listed
// ancestor directory does not contain the next component towards name.
// Entries below excluded or unwalked directories are kept.
func gone(name string, listed map[string][]string) bool {
	for c := name; c != "."; {
		d := path.Dir(c)
		if names, ok := listed[d]; ok {
			_, found := slices.BinarySearch(names, path.Base(c))
			return !found
		}
		c = d
	}
	return false
}

// encodeIndex serializes entries, sorted by name, followed by the sha256 of
// everything before it.
func encodeIndex(entries map[string]indexEntry, root string) []byte {
	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	slices.Sort(names)
	b := make([]byte, 0, len(indexMagic)+len(root)+len(entries)*96+64)
	b = append(b, indexMagic...)
	b = appendString(b, root)
	b = binary.AppendUvarint(b, uint64(len(names)))
	for _, n := range names {
		e := entries[n]
		b = appendString(b, n)
		b = binary.AppendUvarint(b, uint64(e.meta.mode))
		b = binary.AppendVarint(b, e.meta.size)
		b = binary.AppendVarint(b, e.meta.mtime)
		b = binary.AppendVarint(b, e.meta.ctime)
		b = binary.AppendUvarint(b, e.meta.ino)
		b = binary.AppendUvarint(b, e.meta.dev)
		b = binary.AppendVarint(b, e.ref)
		b = append(b, e.sum[:]...)
	}
	sum := sha256.Sum256(b)
	return append(b, sum[:]...)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decodeIndex parses an index file written by encodeIndex for root.
func decodeIndex(b []byte, root string) (map[string]indexEntry, error) {
	if len(b) < len(indexMagic)+sha256.Size || !bytes.HasPrefix(b, []byte(indexMagic)) {
		return nil, errIndexCorrupt
	}
	body, trailer := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	if sum := sha256.Sum256(body); !bytes.Equal(sum[:], trailer) {
		return nil, errIndexCorrupt
	}
	d := decoder{b: body[len(indexMagic):]}
	if d.string() != root {
		return nil, errIndexCorrupt
	}
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		return nil, errIndexCorrupt
	}
	entries := make(map[string]indexEntry, n)
	for range n {
		name := d.string()
		var e indexEntry
		e.meta.mode = uint32(d.uvarint())
		e.meta.size = d.varint()
		e.meta.mtime = d.varint()
		e.meta.ctime = d.varint()
		e.meta.ino = d.uvarint()
		e.meta.dev = d.uvarint()
		e.ref = d.varint()
		d.bytes(e.sum[:])
		if d.err != nil {
			return nil, d.err
		}
		entries[name] = e
	}
	if len(d.b) != 0 {
		return nil, errIndexCorrupt
	}
	return entries, nil
}

// decoder reads varints and strings, remembering the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errIndexCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errIndexCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	l := d.uvarint()
	if d.err != nil || l > uint64(len(d.b)) {
		d.err = errIndexCorrupt
		return ""
	}
	s := string(d.b[:l])
	d.b = d.b[l:]
	return s
}

func (d *decoder) bytes(dst []byte) {
	if d.err != nil || len(dst) > len(d.b) {
		d.err = errIndexCorrupt
		return
	}
	copy(dst, d.b)
	d.b = d.b[len(dst):]
}
