package copier

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
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
		fields, err := lookupDB(dst, "/etc/passwd", user)
		if err != nil {
			return owner{}, fmt.Errorf("resolving --chown=%s: %w", spec, err)
		}
		if len(fields) < 4 {
			return owner{}, fmt.Errorf("resolving --chown=%s: malformed /etc/passwd entry for %q", spec, user)
		}
		if o.uid, err = strconv.Atoi(fields[2]); err != nil {
			return owner{}, fmt.Errorf("resolving --chown=%s: bad uid in /etc/passwd: %w", spec, err)
		}
		if o.gid, err = strconv.Atoi(fields[3]); err != nil {
			return owner{}, fmt.Errorf("resolving --chown=%s: bad gid in /etc/passwd: %w", spec, err)
		}
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
	fields, err := lookupDB(dst, "/etc/group", group)
	if err != nil {
		return owner{}, fmt.Errorf("resolving --chown=%s: %w", spec, err)
	}
	if len(fields) < 3 {
		return owner{}, fmt.Errorf("resolving --chown=%s: malformed /etc/group entry for %q", spec, group)
	}
	if o.gid, err = strconv.Atoi(fields[2]); err != nil {
		return owner{}, fmt.Errorf("resolving --chown=%s: bad gid in /etc/group: %w", spec, err)
	}
	return o, nil
}

// lookupDB returns the colon-separated fields of the line of an /etc/passwd
// style file (read inside the root) whose first field is name.
func lookupDB(r *os.Root, file, name string) ([]string, error) {
	rel, err := resolveIn(r, file, true, nil)
	if err != nil {
		return nil, err
	}
	data, err := r.ReadFile(rel)
	if err != nil {
		if isNotExist(err) {
			return nil, fmt.Errorf("no %s in the destination root to look up %q", file, name)
		}
		return nil, fmt.Errorf("reading %s: %w", file, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Split(line, ":")
		if fields[0] == name {
			return fields, nil
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", file, err)
	}
	return nil, fmt.Errorf("no entry for %q in %s", name, file)
}
