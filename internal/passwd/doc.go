// Package passwd owns the parsing of passwd(5) and group(5) files and the
// lookups made in them: users by name or uid, groups by name, and the groups
// a user is a member of.
//
// Reading the files is left to the caller, who knows which root filesystem
// they belong to and how to resolve paths safely inside it.
package passwd
