package layer

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

// Opener opens the uncompressed tar of one layer. Flatten opens each layer
// twice and reads it to EOF each time, so that a verifying reader checks
// its digest.
type Opener func() (io.ReadCloser, error)

// Flatten writes to w, as one tar, the root filesystem that applying the
// layers in order (base first) gives, without unpacking them: no file is
// created, no owner set, so it needs no privilege whatever the layers
// hold. Each path is written once, as the topmost layer that has it left
// it, unless a whiteout, an opaque directory or a non-directory above hides
// it; whiteouts and opaque markers are not written.
//
// It reads the layers twice. The first pass, top layer first, decides which
// entry of which layer each path comes from; it keeps every path and the
// header of every directory in memory, nothing of file contents. The second
// pass, base layer first, streams the winning entries through: a file's
// content goes from its layer to w without being held. A directory is
// written before anything in it, taking its header from the layer it comes
// from, so that the tar reads like one of a plain directory.
//
// A hard link of a layer whose target a higher layer replaced or deleted
// still shows the content it had in its layer: the first such link is
// written as that content, at the place of the target in its layer, and the
// group's other links point to it. Entries keep their mode, owner, times,
// device numbers and xattrs (SCHILY.xattr PAX records); user and group
// names are dropped, as in the layers this package writes. The root
// directory's own entry ("./") is not written.
func Flatten(ctx context.Context, w io.Writer, layers []Opener) error {
	f := &flattener{
		ctx:      ctx,
		winners:  map[string]winner{},
		whiteout: map[string]bool{},
		opaque:   map[string]bool{},
		dirs:     map[string]*tar.Header{},
		carriers: make([]map[int]string, len(layers)),
	}
	for i := len(layers) - 1; i >= 0; i-- {
		lp, err := f.read(layers[i], i, f.decide)
		if err != nil {
			return err
		}
		f.finish(lp)
	}
	f.tw = tar.NewWriter(w)
	f.written = map[string]bool{}
	for i := range layers {
		if _, err := f.read(layers[i], i, f.emit); err != nil {
			return err
		}
	}
	if err := f.tw.Close(); err != nil {
		return fmt.Errorf("finishing tar: %w", err)
	}
	return nil
}

// winner is the entry a path comes from: the layer and the entry's
// position in it.
type winner struct {
	layer, ord int
	dir        bool
}

type flattener struct {
	ctx context.Context
	// winners holds the entry each path comes from.
	winners map[string]winner
	// whiteout and opaque hold the deletions of the layers read so far
	// (above the current one): a whited-out path with all below it, and
	// what lies below an opaque directory.
	whiteout, opaque map[string]bool
	// dirs holds the header of every winning directory.
	dirs map[string]*tar.Header
	// carriers[layer][ord] names the hard link under which the content of
	// entry ord is written when the entry itself does not win.
	carriers []map[int]string

	tw      *tar.Writer
	written map[string]bool // directories already written
}

// layerPass is what one pass keeps about the layer it reads.
type layerPass struct {
	index int
	// last maps a path of the layer to its latest entry so far, and links
	// maps a hard link's entry to the entry of the file it shares (a link
	// to a link resolved): the content of a link group is that entry's.
	last  map[string]int
	links map[int]linkRef
	// whiteouts and opaques of this layer, which hide only lower layers.
	whiteouts, opaques []string
	// linked are the hard links that win, in order, with their entry.
	linked []linkEntry
	// emitted maps an entry whose content was written to the name it was
	// written under (pass two).
	emitted map[int]string
}

// linkRef is the file a hard link shares: its entry and path.
type linkRef struct {
	ord  int
	name string
}

// linkEntry is a winning hard link (pass one).
type linkEntry struct {
	name string
	ord  int
	tgt  linkRef
}

// read runs visit on every entry of the layer, then drains it.
func (f *flattener) read(open Opener, index int, visit func(*layerPass, *tar.Header, checkedEntry, int, io.Reader) error) (*layerPass, error) {
	rc, err := open()
	if err != nil {
		return nil, fmt.Errorf("layer %d: %w", index, err)
	}
	defer rc.Close()
	lp := &layerPass{index: index, last: map[string]int{}, links: map[int]linkRef{}, emitted: map[int]string{}}
	tr := tar.NewReader(struct{ io.Reader }{rc}) // hides a Seeker: every byte is read
	for ord := 0; ; ord++ {
		if err := f.ctx.Err(); err != nil {
			return nil, err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("layer %d: reading tar: %w", index, err)
		}
		e, err := checkEntry(hdr)
		if err == nil && e.act == actEntry && hdr.Typeflag == tar.TypeLink {
			err = lp.link(e.name, hdr.Linkname, ord)
		}
		if err == nil {
			err = visit(lp, hdr, e, ord, tr)
		}
		if err != nil {
			return nil, fmt.Errorf("layer %d: entry %q: %w", index, hdr.Name, err)
		}
		if e.act == actEntry {
			lp.last[e.name] = ord
		}
	}
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return nil, fmt.Errorf("layer %d: %w", index, err)
	}
	return lp, nil
}

// link records the hard link at entry ord to linkname.
func (lp *layerPass) link(name, linkname string, ord int) error {
	target, err := linkTarget(name, linkname)
	if err != nil {
		return err
	}
	tgt, ok := lp.last[target]
	if !ok {
		return fmt.Errorf("%w: hardlink to %q, which is not an earlier entry of the layer", ErrInvalidEntry, linkname)
	}
	ref, ok := lp.links[tgt]
	if !ok {
		ref = linkRef{ord: tgt, name: target}
	}
	lp.links[ord] = ref
	return nil
}

// hidden reports whether a layer below every layer read so far loses path
// p: a layer above has p, deletes it or a directory holding it, makes a
// directory holding it opaque, or has a non-directory where a directory
// holding it would be.
func (f *flattener) hidden(p string, layer int) bool {
	if w, ok := f.winners[p]; ok && w.layer != layer {
		return true
	}
	for q := p; ; q = parentOf(q) {
		if f.whiteout[q] {
			return true
		}
		if q != p {
			if f.opaque[q] {
				return true
			}
			if w, ok := f.winners[q]; ok && !w.dir && w.layer != layer {
				return true
			}
		}
		if q == "" {
			return false
		}
	}
}

// decide is pass one's visit: it records the entries that win.
func (f *flattener) decide(lp *layerPass, hdr *tar.Header, e checkedEntry, ord int, _ io.Reader) error {
	switch e.act {
	case actOpaque:
		lp.opaques = append(lp.opaques, e.parent)
		return nil
	case actWhiteout:
		lp.whiteouts = append(lp.whiteouts, path.Join(e.parent, e.base))
		return nil
	case actEntry:
	default:
		return nil
	}
	p := e.name
	if f.hidden(p, lp.index) {
		return nil
	}
	dir := hdr.Typeflag == tar.TypeDir
	f.winners[p] = winner{layer: lp.index, ord: ord, dir: dir}
	delete(f.dirs, p)
	if dir {
		f.dirs[p] = flatHeader(hdr, p)
	}
	if tgt, ok := lp.links[ord]; ok {
		lp.linked = append(lp.linked, linkEntry{name: p, ord: ord, tgt: tgt})
	}
	return nil
}

// finish ends pass one over a layer: its deletions now hide the layers
// below, and each hard link group whose file lost its path gets the first
// of its winning links to carry its content.
func (f *flattener) finish(lp *layerPass) {
	for _, l := range lp.linked {
		if w, ok := f.winners[l.name]; !ok || w.layer != lp.index || w.ord != l.ord {
			continue // a later entry of the same layer replaced the link
		}
		if w, ok := f.winners[l.tgt.name]; ok && w.layer == lp.index && w.ord == l.tgt.ord {
			continue // the file keeps its path
		}
		if f.carriers[lp.index] == nil {
			f.carriers[lp.index] = map[int]string{}
		}
		if _, ok := f.carriers[lp.index][l.tgt.ord]; !ok {
			f.carriers[lp.index][l.tgt.ord] = l.name
		}
	}
	for _, p := range lp.whiteouts {
		f.whiteout[p] = true
	}
	for _, p := range lp.opaques {
		f.opaque[p] = true
	}
}

// emit is pass two's visit: it writes the winning entries.
func (f *flattener) emit(lp *layerPass, hdr *tar.Header, e checkedEntry, ord int, r io.Reader) error {
	if e.act != actEntry {
		return nil
	}
	p := e.name
	w, ok := f.winners[p]
	wins := ok && w.layer == lp.index && w.ord == ord
	if tgt, isLink := lp.links[ord]; isLink {
		if !wins {
			return nil
		}
		carrier := lp.emitted[tgt.ord]
		if carrier == "" {
			return fmt.Errorf("hardlink to %q: its file was not written", hdr.Linkname)
		}
		if carrier == p {
			return nil // written as the content of its group
		}
		if err := f.parents(p); err != nil {
			return err
		}
		return f.write(&tar.Header{Typeflag: tar.TypeLink, Name: p, Linkname: carrier, ModTime: hdr.ModTime}, nil)
	}
	name := ""
	switch {
	case wins:
		name = p
	case f.carriers[lp.index] != nil:
		name = f.carriers[lp.index][ord]
	}
	if name == "" {
		return nil
	}
	lp.emitted[ord] = name
	if hdr.Typeflag == tar.TypeDir {
		if f.written[p] {
			return nil
		}
		f.written[p] = true
	}
	if err := f.parents(name); err != nil {
		return err
	}
	return f.write(flatHeader(hdr, name), r)
}

// parents writes the winning directories that hold name and are not
// written yet, outermost first.
func (f *flattener) parents(name string) error {
	for i := 0; i < len(name); i++ {
		if name[i] != '/' {
			continue
		}
		d := name[:i]
		if f.written[d] {
			continue
		}
		if hdr, ok := f.dirs[d]; ok {
			f.written[d] = true
			if err := f.write(hdr, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// write writes hdr and, for a regular file, its content from r.
func (f *flattener) write(hdr *tar.Header, r io.Reader) error {
	if err := f.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("writing %s: %w", hdr.Name, err)
	}
	if hdr.Typeflag != tar.TypeReg || hdr.Size == 0 {
		return nil
	}
	n, err := io.Copy(f.tw, r)
	if err != nil {
		return fmt.Errorf("writing %s: %w", hdr.Name, err)
	}
	if n != hdr.Size {
		return fmt.Errorf("writing %s: %d of %d bytes", hdr.Name, n, hdr.Size)
	}
	return nil
}

// flatHeader is the header the flattened tar has for the entry hdr of a
// layer, under name.
func flatHeader(hdr *tar.Header, name string) *tar.Header {
	h := &tar.Header{
		Typeflag: hdr.Typeflag,
		Name:     name,
		Mode:     hdr.Mode & 0o7777,
		Uid:      hdr.Uid,
		Gid:      hdr.Gid,
		ModTime:  hdr.ModTime,
	}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeRegA: //nolint:staticcheck // old layers still use TypeRegA
		h.Typeflag = tar.TypeReg
		h.Size = hdr.Size
	case tar.TypeDir:
		h.Name = name + "/"
	case tar.TypeSymlink:
		h.Linkname = hdr.Linkname
	case tar.TypeChar, tar.TypeBlock:
		h.Devmajor, h.Devminor = hdr.Devmajor, hdr.Devminor
	}
	for k, v := range hdr.PAXRecords {
		if strings.HasPrefix(k, paxXattr) {
			if h.PAXRecords == nil {
				h.PAXRecords = map[string]string{}
			}
			h.PAXRecords[k] = v
		}
	}
	return h
}
