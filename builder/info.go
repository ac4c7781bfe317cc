package builder

import (
	"path/filepath"

	"github.com/builder-project/builder/executor"
	"github.com/builder-project/builder/internal/userns"
)

// SystemInfo is what the builder found about the machine and the user it runs
// as (builder info).
type SystemInfo struct {
	// UserNamespace says which user namespace the builder runs in:
	// "initial" (real root, or a non-root user with BUILDER_USERNS=host),
	// "subordinate ids" or "single id" (one the
	// builder made for a non-root user, see README), "nested" (one the
	// builder made inside a container's, where it was root without
	// CAP_SYS_ADMIN, as in a Kubernetes pod with hostUsers: false), or
	// "inherited" (a user namespace it was started in as its root with
	// every capability, such as unshare --map-root-user's).
	UserNamespace string `json:"userNamespace"`
	// UIDMap and GIDMap are the id maps, "inside:outside:count" ranges.
	UIDMap string `json:"uidMap"`
	GIDMap string `json:"gidMap"`
	// Host is what containers get (overlay kind, seccomp, NAT, cgroup,
	// runtimes), and whether the builder is rootless.
	executor.Host
	// Store is the store's root directory.
	Store string `json:"store"`
}

// HostInfo returns what the builder found, for a store at root ("" for
// DefaultRoot). It changes nothing, not even the store.
func HostInfo(root string) SystemInfo {
	if root == "" {
		root = DefaultRoot()
	}
	if abs, err := filepath.Abs(root); err == nil {
		root = abs
	}
	c := userns.Current()
	i := SystemInfo{UIDMap: c.UIDs.String(), GIDMap: c.GIDs.String(), Host: executor.HostInfo(), Store: root}
	switch {
	case c.Entered == "subids":
		i.UserNamespace = "subordinate ids"
	case c.Entered == "single":
		i.UserNamespace = "single id"
	case c.Entered == "nested":
		i.UserNamespace = "nested"
	case c.UIDs != nil && !c.UIDs.Identity():
		i.UserNamespace = "inherited"
	default:
		i.UserNamespace = "initial"
	}
	return i
}
