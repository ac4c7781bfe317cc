// Package userns owns what builder knows about user namespaces: whether the
// process is real root or rootless (a non-root user, or root of a user
// namespace that does not map the whole id range, as in a Kubernetes pod
// with hostUsers: false), the id mapping in effect, the subordinate id
// ranges of /etc/subuid and /etc/subgid, and re-executing the current
// binary in a new user and mount namespace (Enter) so that a non-root user
// gets the privileges a build needs inside it.
package userns
