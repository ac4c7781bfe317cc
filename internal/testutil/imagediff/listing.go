package imagediff

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/builder-project/builder/internal/compression"
)

// Entry is one tar entry of a layer with everything that can make two
// layers differ.
type Entry struct {
	// Path is the entry's name, cleaned of "./" and a trailing slash.
	Path string
	// Type is the tar type flag as a word: reg, dir, symlink, link, char,
	// block, fifo, or the flag's number.
	Type string
	// Mode is the permission bits with setuid, setgid and sticky.
	Mode int64
	// UID and GID are the numeric owner; Uname and Gname the names, if
	// the tar carries any.
	UID, GID     int
	Uname, Gname string
	// Size is the length of the content.
	Size int64
	// ModTime, AccessTime and ChangeTime are as the tar records them
	// (zero when absent).
	ModTime, AccessTime, ChangeTime time.Time
	// Linkname is the target of a symlink or hardlink.
	Linkname string
	// Devmajor and Devminor are a device node's numbers.
	Devmajor, Devminor int64
	// Digest is the sha256 of a regular file's content.
	Digest string
	// PAX holds the PAX records, xattrs (SCHILY.xattr.*) included.
	PAX map[string]string
}

// ReadLayer lists the entries of a layer tar, compressed or not, in order.
func ReadLayer(r io.Reader) ([]Entry, error) {
	plain, _, err := compression.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("reading layer: %w", err)
	}
	defer plain.Close()
	tr := tar.NewReader(plain)
	var out []Entry
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading layer: %w", err)
		}
		e := Entry{
			Path: strings.TrimSuffix(strings.TrimPrefix(hdr.Name, "./"), "/"), Type: typeName(hdr.Typeflag),
			Mode: hdr.Mode, UID: hdr.Uid, GID: hdr.Gid, Uname: hdr.Uname, Gname: hdr.Gname, Size: hdr.Size,
			ModTime: hdr.ModTime, AccessTime: hdr.AccessTime, ChangeTime: hdr.ChangeTime,
			Linkname: hdr.Linkname, Devmajor: hdr.Devmajor, Devminor: hdr.Devminor, PAX: hdr.PAXRecords,
		}
		if hdr.Typeflag == tar.TypeReg {
			h := sha256.New()
			if _, err := io.Copy(h, tr); err != nil {
				return nil, fmt.Errorf("reading %s: %w", hdr.Name, err)
			}
			e.Digest = hex.EncodeToString(h.Sum(nil))
		}
		out = append(out, e)
	}
}

func typeName(f byte) string {
	switch f {
	case tar.TypeReg:
		return "reg"
	case tar.TypeDir:
		return "dir"
	case tar.TypeSymlink:
		return "symlink"
	case tar.TypeLink:
		return "link"
	case tar.TypeChar:
		return "char"
	case tar.TypeBlock:
		return "block"
	case tar.TypeFifo:
		return "fifo"
	}
	return fmt.Sprintf("type%d", f)
}

// fields are the attributes of an entry by name, in the order a listing
// shows them.
func (e Entry) fields() [][2]string {
	f := [][2]string{
		{"type", e.Type},
		{"mode", fmt.Sprintf("%#o", e.Mode)},
		{"uid", fmt.Sprint(e.UID)}, {"gid", fmt.Sprint(e.GID)},
		{"uname", e.Uname}, {"gname", e.Gname},
		{"size", fmt.Sprint(e.Size)},
		{"mtime", timeString(e.ModTime)}, {"atime", timeString(e.AccessTime)}, {"ctime", timeString(e.ChangeTime)},
		{"link", e.Linkname},
		{"dev", fmt.Sprintf("%d:%d", e.Devmajor, e.Devminor)},
		{"sha256", e.Digest},
	}
	keys := make([]string, 0, len(e.PAX))
	for k := range e.PAX {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		f = append(f, [2]string{"pax:" + k, fmt.Sprintf("%q", e.PAX[k])})
	}
	return f
}

func timeString(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// String renders the entry as one line of a listing: its path, then the
// attributes that are set.
func (e Entry) String() string {
	var b strings.Builder
	b.WriteString(e.Path)
	for _, f := range e.fields() {
		if f[1] != "" && f[1] != "0:0" {
			fmt.Fprintf(&b, " %s=%s", f[0], f[1])
		}
	}
	return b.String()
}
