// Package builder is the library entry point of builder: it wires the
// Dockerfile parser, the executor, the layer format, the build cache and the
// local store into the operations the CLI offers — Build, Import, Load, Save,
// Export, Images, Tag, Remove, Prune, History and Inspect.
//
// Open a Builder on a store root, then call its methods:
//
//	b, err := builder.Open(builder.DefaultRoot())
//	id, err := b.Import(ctx, f, builder.ImportOptions{Ref: "base:1"})
//
// The library never writes to the terminal: progress and warnings are
// delivered as Events to the callback in the options.
package builder
