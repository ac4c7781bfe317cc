// Package passwd owns the parsing of passwd(5) and group(5) files and the
// lookups made in them: users by name or uid, groups by name, and the groups
// a user is a member of.
//
// ReadIn reads one of them from a root filesystem, resolving its path
// inside that root.
package passwd
