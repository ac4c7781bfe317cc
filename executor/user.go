package executor

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
)

// execUser is a user resolved against a root filesystem.
type execUser struct {
	UID, GID uint32
	Groups   []uint32 // supplementary groups
	Home     string
}

type passwdEntry struct {
	name     string
	uid, gid uint32
	home     string
}

type groupEntry struct {
	name    string
	gid     uint32
	members []string
}

// resolveUser resolves spec ("", name, uid, with an optional ":group")
// against /etc/passwd and /etc/group of the root filesystem at rootfs.
// Paths are resolved inside rootfs, so a symlinked /etc cannot make it
// read host files.
func resolveUser(rootfs, spec string) (execUser, error) {
	passwd, err := readRootfsFile(rootfs, "/etc/passwd")
	if err != nil {
		return execUser{}, fmt.Errorf("resolving user %q: %w", spec, err)
	}
	group, err := readRootfsFile(rootfs, "/etc/group")
	if err != nil {
		return execUser{}, fmt.Errorf("resolving user %q: %w", spec, err)
	}
	u, err := lookupUser(spec, parsePasswd(passwd), parseGroup(group))
	if err != nil {
		return execUser{}, fmt.Errorf("resolving user %q: %w", spec, err)
	}
	return u, nil
}

// readRootfsFile returns the content of name inside rootfs, or nil when it
// does not exist.
func readRootfsFile(rootfs, name string) (io.Reader, error) {
	p, err := securejoin.SecureJoin(rootfs, name)
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %w", name, err)
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return strings.NewReader(""), nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return strings.NewReader(string(b)), nil
}

// lookupUser implements Docker's rules: a name must exist; a numeric uid
// need not; an explicit group replaces the primary group and disables
// supplementary groups, which otherwise come from the user's memberships.
func lookupUser(spec string, passwd []passwdEntry, groups []groupEntry) (execUser, error) {
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	if hasGroup && groupPart == "" {
		return execUser{}, fmt.Errorf("empty group in %q", spec)
	}
	if userPart == "" {
		if hasGroup {
			return execUser{}, fmt.Errorf("empty user in %q", spec)
		}
		userPart = "0"
	}
	u := execUser{Home: "/"}
	name := ""
	if uid, err := parseID(userPart); err == nil {
		u.UID = uid
		for _, p := range passwd {
			if p.uid == uid {
				name, u.GID, u.Home = p.name, p.gid, p.home
				break
			}
		}
	} else {
		found := false
		for _, p := range passwd {
			if p.name == userPart {
				name, u.UID, u.GID, u.Home, found = p.name, p.uid, p.gid, p.home, true
				break
			}
		}
		if !found {
			return execUser{}, fmt.Errorf("no user named %q in /etc/passwd", userPart)
		}
	}
	if u.Home == "" {
		u.Home = "/"
	}
	if hasGroup {
		if gid, err := parseID(groupPart); err == nil {
			u.GID = gid
			return u, nil
		}
		for _, g := range groups {
			if g.name == groupPart {
				u.GID = g.gid
				return u, nil
			}
		}
		return execUser{}, fmt.Errorf("no group named %q in /etc/group", groupPart)
	}
	u.Groups = []uint32{}
	if name == "" {
		return u, nil
	}
	seen := map[uint32]bool{}
	for _, g := range groups {
		for _, m := range g.members {
			if m == name && !seen[g.gid] {
				seen[g.gid] = true
				u.Groups = append(u.Groups, g.gid)
			}
		}
	}
	return u, nil
}

// parsePasswd parses passwd(5) lines, skipping malformed ones.
func parsePasswd(r io.Reader) []passwdEntry {
	var out []passwdEntry
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.Split(strings.TrimSpace(sc.Text()), ":")
		if len(f) < 4 || f[0] == "" || strings.HasPrefix(f[0], "#") {
			continue
		}
		uid, err1 := strconv.ParseUint(f[2], 10, 32)
		gid, err2 := strconv.ParseUint(f[3], 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		e := passwdEntry{name: f[0], uid: uint32(uid), gid: uint32(gid)}
		if len(f) > 5 {
			e.home = f[5]
		}
		out = append(out, e)
	}
	return out
}

// parseGroup parses group(5) lines, skipping malformed ones.
func parseGroup(r io.Reader) []groupEntry {
	var out []groupEntry
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.Split(strings.TrimSpace(sc.Text()), ":")
		if len(f) < 3 || f[0] == "" || strings.HasPrefix(f[0], "#") {
			continue
		}
		gid, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			continue
		}
		e := groupEntry{name: f[0], gid: uint32(gid)}
		if len(f) > 3 && f[3] != "" {
			for _, m := range strings.Split(f[3], ",") {
				if m = strings.TrimSpace(m); m != "" {
					e.members = append(e.members, m)
				}
			}
		}
		out = append(out, e)
	}
	return out
}
