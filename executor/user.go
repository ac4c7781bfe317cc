package executor

import (
	"fmt"
	"strings"

	"github.com/builder-project/builder/internal/passwd"
)

// execUser is a user resolved against a root filesystem.
type execUser struct {
	UID, GID uint32
	Groups   []uint32 // supplementary groups
	Home     string
}

// resolveUser resolves spec ("", name, uid, with an optional ":group")
// against /etc/passwd and /etc/group of the root filesystem at rootfs.
// Paths are resolved inside rootfs, so a symlinked /etc cannot make it
// read host files.
func resolveUser(rootfs, spec string) (execUser, error) {
	users, err := passwd.ReadIn(rootfs, "/etc/passwd", passwd.ParsePasswd)
	if err != nil {
		return execUser{}, fmt.Errorf("resolving user %q: %w", spec, err)
	}
	groups, err := passwd.ReadIn(rootfs, "/etc/group", passwd.ParseGroup)
	if err != nil {
		return execUser{}, fmt.Errorf("resolving user %q: %w", spec, err)
	}
	u, err := lookupUser(spec, users, groups)
	if err != nil {
		return execUser{}, fmt.Errorf("resolving user %q: %w", spec, err)
	}
	return u, nil
}

// lookupUser implements Docker's rules: a name must exist; a numeric uid
// need not; an explicit group replaces the primary group and disables
// supplementary groups, which otherwise come from the user's memberships.
func lookupUser(spec string, users []passwd.User, groups []passwd.Group) (execUser, error) {
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
	var (
		pw    passwd.User
		found bool
	)
	if uid, err := parseID(userPart); err == nil {
		pw, found = passwd.UserByUID(users, uid)
		pw.UID = uid
	} else if pw, found = passwd.UserByName(users, userPart); !found {
		return execUser{}, fmt.Errorf("no user named %q in /etc/passwd", userPart)
	}
	u := execUser{UID: pw.UID, GID: pw.GID, Home: pw.Home}
	if u.Home == "" {
		u.Home = "/"
	}
	if hasGroup {
		if gid, err := parseID(groupPart); err == nil {
			u.GID = gid
			return u, nil
		}
		g, ok := passwd.GroupByName(groups, groupPart)
		if !ok {
			return execUser{}, fmt.Errorf("no group named %q in /etc/group", groupPart)
		}
		u.GID = g.GID
		return u, nil
	}
	u.Groups = []uint32{}
	if found {
		u.Groups = passwd.MemberOf(groups, pw.Name)
	}
	return u, nil
}
