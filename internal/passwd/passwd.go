package passwd

import (
	"bufio"
	"io"
	"slices"
	"strconv"
	"strings"
)

// User is one entry of a passwd(5) file.
type User struct {
	// Name is the login name.
	Name string
	// UID is the numeric user ID.
	UID uint32
	// GID is the numeric ID of the user's primary group.
	GID uint32
	// Home is the home directory; empty when the entry has none.
	Home string
}

// Group is one entry of a group(5) file.
type Group struct {
	// Name is the group name.
	Name string
	// GID is the numeric group ID.
	GID uint32
	// Members are the names of the users listed as members, in file order.
	Members []string
}

// maxLine is the longest line the parsers accept.
const maxLine = 1 << 20

// ParsePasswd parses a passwd(5) file: name:password:uid:gid:gecos:home:shell.
// Blank lines, comments (#) and malformed lines (fewer than four fields, an
// empty name, a uid or gid that is not a 32-bit unsigned number) are
// skipped. Leading and trailing space on a line is ignored. The error is
// that of reading r, or one for a line longer than 1 MiB.
func ParsePasswd(r io.Reader) ([]User, error) {
	var out []User
	err := scan(r, 4, func(f []string) {
		uid, ok1 := parseID(f[2])
		gid, ok2 := parseID(f[3])
		if !ok1 || !ok2 {
			return
		}
		u := User{Name: f[0], UID: uid, GID: gid}
		if len(f) > 5 {
			u.Home = f[5]
		}
		out = append(out, u)
	})
	return out, err
}

// ParseGroup parses a group(5) file: name:password:gid:member,member,...
// Blank lines, comments and malformed lines (fewer than three fields, an
// empty name, a gid that is not a 32-bit unsigned number) are skipped.
// Space around member names is ignored and empty member names are dropped.
// Errors are as for ParsePasswd.
func ParseGroup(r io.Reader) ([]Group, error) {
	var out []Group
	err := scan(r, 3, func(f []string) {
		gid, ok := parseID(f[2])
		if !ok {
			return
		}
		g := Group{Name: f[0], GID: gid}
		if len(f) > 3 {
			for _, m := range strings.Split(f[3], ",") {
				if m = strings.TrimSpace(m); m != "" {
					g.Members = append(g.Members, m)
				}
			}
		}
		out = append(out, g)
	})
	return out, err
}

// scan calls entry with the colon-separated fields of every line of r that
// has at least minFields fields and a name that is neither empty nor a
// comment.
func scan(r io.Reader, minFields int, entry func(fields []string)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, maxLine)
	for sc.Scan() {
		f := strings.Split(strings.TrimSpace(sc.Text()), ":")
		if len(f) < minFields || f[0] == "" || strings.HasPrefix(f[0], "#") {
			continue
		}
		entry(f)
	}
	return sc.Err()
}

func parseID(s string) (uint32, bool) {
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err == nil
}

// UserByName returns the first user named name.
func UserByName(users []User, name string) (User, bool) {
	for _, u := range users {
		if u.Name == name {
			return u, true
		}
	}
	return User{}, false
}

// UserByUID returns the first user whose UID is uid.
func UserByUID(users []User, uid uint32) (User, bool) {
	for _, u := range users {
		if u.UID == uid {
			return u, true
		}
	}
	return User{}, false
}

// GroupByName returns the first group named name.
func GroupByName(groups []Group, name string) (Group, bool) {
	for _, g := range groups {
		if g.Name == name {
			return g, true
		}
	}
	return Group{}, false
}

// MemberOf returns the IDs of the groups that list user as a member, in
// file order and without repeats. It returns an empty, non-nil slice when
// there are none.
func MemberOf(groups []Group, user string) []uint32 {
	gids := []uint32{}
	for _, g := range groups {
		for _, m := range g.Members {
			if m == user && !slices.Contains(gids, g.GID) {
				gids = append(gids, g.GID)
			}
		}
	}
	return gids
}
