package copier

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/builder-project/builder/internal/passwd"
)

// owner is a resolved --chown.
type owner struct {
	uid, gid int
}

// parseChown resolves a --chown value against the destination root's
// /etc/passwd and /etc/group. The empty value is root (0:0).
func parseChown(dst *os.Root, spec string) (owner, error) {
	if spec == "" {
		return owner{}, nil
	}
	user, group, hasGroup := strings.Cut(spec, ":")
	if user == "" {
		return owner{}, fmt.Errorf("parsing --chown=%s: missing user", spec)
	}
	var o owner
	uid, err := strconv.Atoi(user)
	numericUser := err == nil
	switch {
	case numericUser && uid >= 0:
		o.uid, o.gid = uid, uid
	case numericUser:
		return owner{}, fmt.Errorf("parsing --chown=%s: invalid uid %d", spec, uid)
	default:
		users, err := readDB(dst, "/etc/passwd", user, passwd.ParsePasswd)
		if err != nil {
			return owner{}, fmt.Errorf("resolving --chown=%s: %w", spec, err)
		}
		u, ok := passwd.UserByName(users, user)
		if !ok {
			return owner{}, fmt.Errorf("resolving --chown=%s: no entry for %q in /etc/passwd", spec, user)
		}
		o.uid, o.gid = int(u.UID), int(u.GID)
	}
	if !hasGroup || group == "" {
		return o, nil
	}
	if gid, err := strconv.Atoi(group); err == nil {
		if gid < 0 {
			return owner{}, fmt.Errorf("parsing --chown=%s: invalid gid %d", spec, gid)
		}
		o.gid = gid
		return o, nil
	}
	groups, err := readDB(dst, "/etc/group", group, passwd.ParseGroup)
	if err != nil {
		return owner{}, fmt.Errorf("resolving --chown=%s: %w", spec, err)
	}
	g, ok := passwd.GroupByName(groups, group)
	if !ok {
		return owner{}, fmt.Errorf("resolving --chown=%s: no entry for %q in /etc/group", spec, group)
	}
	o.gid = int(g.GID)
	return o, nil
}

// readDB parses file, an /etc/passwd style file read inside r, with parse.
// name, the entry the caller looks for, goes into the error for a missing
// file.
func readDB[E any](r *os.Root, file, name string, parse func(io.Reader) ([]E, error)) ([]E, error) {
	rel, err := resolveIn(r, file, true, nil)
	if err != nil {
		return nil, err
	}
	f, err := r.Open(rel)
	if err != nil {
		if isNotExist(err) {
			return nil, fmt.Errorf("no %s in the destination root to look up %q", file, name)
		}
		return nil, fmt.Errorf("reading %s: %w", file, err)
	}
	defer f.Close()
	entries, err := parse(f)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", file, err)
	}
	return entries, nil
}
