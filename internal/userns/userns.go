package userns

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// IDMap is one line of /proc/PID/uid_map or gid_map: Size ids starting at
// Inside in the namespace are ids starting at Outside in its parent.
type IDMap struct {
	Inside, Outside, Size uint32
}

// Maps is an id mapping, one IDMap per range.
type Maps []IDMap

// Contains reports whether id (as seen inside the namespace) is mapped.
func (m Maps) Contains(id uint32) bool {
	for _, r := range m {
		if id >= r.Inside && id-r.Inside < r.Size {
			return true
		}
	}
	return false
}

// Identity reports whether m maps every id to itself: the initial user
// namespace's "0 0 4294967295".
func (m Maps) Identity() bool {
	return len(m) == 1 && m[0].Inside == 0 && m[0].Outside == 0 && m[0].Size == 4294967295
}

// Count is the number of ids m maps.
func (m Maps) Count() uint64 {
	var n uint64
	for _, r := range m {
		n += uint64(r.Size)
	}
	return n
}

// String formats m as "0:1000:1,1:100000:65536" (inside:outside:size).
func (m Maps) String() string {
	parts := make([]string, len(m))
	for i, r := range m {
		parts[i] = fmt.Sprintf("%d:%d:%d", r.Inside, r.Outside, r.Size)
	}
	return strings.Join(parts, ",")
}

// ParseMaps parses the content of a uid_map or gid_map file.
func ParseMaps(r io.Reader) (Maps, error) {
	var m Maps
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("parsing id map line %q: want 3 fields", sc.Text())
		}
		var v [3]uint32
		for i, s := range f {
			n, err := strconv.ParseUint(s, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("parsing id map line %q: %w", sc.Text(), err)
			}
			v[i] = uint32(n)
		}
		m = append(m, IDMap{Inside: v[0], Outside: v[1], Size: v[2]})
	}
	return m, sc.Err()
}

// SubIDRange is one subordinate id range of /etc/subuid or /etc/subgid.
type SubIDRange struct {
	Start, Count uint32
}

// SubIDs returns the ranges that file (/etc/subuid or /etc/subgid format:
// "NAME_OR_ID:START:COUNT" lines) gives to the user called name or with
// numeric id id, in file order. A missing file gives no ranges.
func SubIDs(file, name string, id int) ([]SubIDRange, error) {
	f, err := os.Open(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading subordinate ids: %w", err)
	}
	defer f.Close()
	var out []SubIDRange
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		f := strings.Split(text, ":")
		if len(f) != 3 || (f[0] != name && f[0] != strconv.Itoa(id)) {
			continue
		}
		start, err1 := strconv.ParseUint(f[1], 10, 32)
		count, err2 := strconv.ParseUint(f[2], 10, 32)
		if err1 != nil || err2 != nil || count == 0 {
			return nil, fmt.Errorf("%s:%d: malformed range %q", file, line, text)
		}
		out = append(out, SubIDRange{Start: uint32(start), Count: uint32(count)})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", file, err)
	}
	return out, nil
}

// Layout is the mapping Enter gives a user: the user's own id as 0, then
// each subordinate range from 1 on, in order.
func Layout(own uint32, ranges []SubIDRange) Maps {
	m := Maps{{Inside: 0, Outside: own, Size: 1}}
	next := uint32(1)
	for _, r := range ranges {
		m = append(m, IDMap{Inside: next, Outside: r.Start, Size: r.Count})
		next += r.Count
	}
	return m
}

// ErrUnmapped reports an owner a rootless process cannot give a file: its
// uid or gid is not mapped in the user namespace. Its message says what to
// configure.
var ErrUnmapped = errors.New("id not mapped in the user namespace")

// UnmappedError is the error for a file (or step) that needs uid:gid while
// the user namespace does not map it.
type UnmappedError struct {
	Path     string
	UID, GID int
}

// Error implements error.
func (e *UnmappedError) Error() string {
	what := fmt.Sprintf("owner %d:%d", e.UID, e.GID)
	if e.Path != "" {
		what += " of " + e.Path
	}
	return what + ": " + Hint()
}

// Is makes errors.Is(err, ErrUnmapped) true.
func (e *UnmappedError) Is(target error) bool { return target == ErrUnmapped }

// CheckChown turns err, the failure of giving path the owner uid:gid, into
// an *UnmappedError when the owner is not mapped in the process's user
// namespace (the kernel's EINVAL), and returns it unchanged otherwise.
func CheckChown(path string, uid, gid int, err error) error {
	if err == nil || !errors.Is(err, syscall.EINVAL) || Mapped(uid, gid) {
		return err
	}
	return &UnmappedError{Path: path, UID: uid, GID: gid}
}

// Hint says why an id is unmapped and what to configure for it.
func Hint() string {
	m := Current()
	name := "USER"
	if u := os.Getenv("USER"); u != "" {
		name = u
	}
	return fmt.Sprintf("the id is not mapped in builder's user namespace (uids %s, gids %s): "+
		"to build images with more than one owner as a non-root user, give the user subordinate ids, "+
		"e.g. the line %q in both /etc/subuid and /etc/subgid, and install newuidmap and newgidmap "+
		"(Debian and Ubuntu: apt-get install uidmap)", m.UIDs, m.GIDs, name+":100000:65536")
}
