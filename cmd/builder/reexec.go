package main

import (
	"os"

	"github.com/builder-project/builder/builder"
	"github.com/builder-project/builder/internal/userns"
)

// reexec runs the container init when this process was started as one by
// the built-in runtime, and reports whether it did. Otherwise a non-root
// user's command runs again in a user namespace of its own (rootless
// mode; userns.Enter), except for help, which needs no privileges.
func reexec() bool {
	if builder.Reexec() {
		return true
	}
	if len(os.Args) > 1 && !needsNoPrivileges(os.Args[1]) {
		userns.Enter()
	}
	return false
}

// needsNoPrivileges reports the first arguments that only print help.
func needsNoPrivileges(arg string) bool {
	switch arg {
	case "-h", "--help", "help", "version", "--version", "-v":
		return true
	}
	return false
}
