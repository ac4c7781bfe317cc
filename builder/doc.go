// Package builder is the library entry point of builder: it wires the
// Dockerfile parser, the executor, the layer format, the build cache and the
// local store into the operations the CLI offers: Build, Import, Load,
// Save, Export, Images, Tag, Remove, Prune, History, Inspect, the build
// cache's export and import, and containers: Create, Run, Start, Exec,
// Stop, Kill, Logs, Containers, RemoveContainers, Copy, ConfigureContainer,
// Mount, Unmount, Diff, Commit and CommitRootfs.
//
// # Containers
//
// A container is its own overlay upperdir (a persistent snapshot named by
// its ID) over its image's layers, and a config. It is kept after its
// process exits, so Diff and Commit can turn its changes into a new image;
// both read only the upperdir. Commit writes one layer on top of the
// image's, never committing the mount points the runtime made, and freezes
// a running container while it reads.
//
// # Calling Reexec
//
// RUN steps and COPY steps run in new Linux namespaces. The built-in
// runtime starts them by re-executing the current binary, so a program
// that builds or runs images must call Reexec first thing in main, before
// it parses flags or starts goroutines; when the process was started as a
// container's init, Reexec runs it and never returns:
//
//	func main() {
//		if builder.Reexec() {
//			return
//		}
//		// ... the program itself
//	}
//
// Test binaries need the same in TestMain. A program that only reads the
// store (Images, Inspect, Save) or builds with WithExecutor does not.
//
// # Opening a store
//
// Open a Builder on a store root, then call its methods:
//
//	b, err := builder.Open(builder.DefaultRoot())
//	res, err := b.Build(ctx, builder.BuildOptions{ContextDir: ".", Tags: []string{"app:1"}})
//
// Open takes options: WithExecutor replaces the runtime that runs steps
// (executortest.Fake runs them in-process, without root), and WithCache
// replaces the build cache kept in the store.
//
// The library never writes to the terminal: progress and warnings are
// delivered as Events to the callback in the options. Errors wrap the
// sentinels below (ErrNotFound, ErrSourceNotFound, ...), and errors about a
// Dockerfile are *dockerfile.Error values that carry the file and line.
package builder
