package main

import "github.com/builder-project/builder/builder"

// reexec runs the container init when this process was started as one by
// the built-in runtime, and reports whether it did.
func reexec() bool { return builder.Reexec() }
