package builder

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/builder-project/builder/internal/atomicfile"
	"github.com/builder-project/builder/internal/store"
	"github.com/builder-project/builder/output"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Output types of a build, as docker's --output type= names them.
const (
	// OutputImage keeps the image in the store, tagged with Tags. It is
	// what a build does when BuildOptions.Outputs is empty.
	OutputImage = "image"
	// OutputOCI writes an OCI archive (a tarred image layout).
	OutputOCI = "oci"
	// OutputDocker writes a docker-archive, as docker save does.
	OutputDocker = "docker"
	// OutputTar writes the image's flattened root filesystem as a tar.
	OutputTar = "tar"
	// OutputLocal writes the image's flattened root filesystem into a
	// directory, which must be empty or missing unless Output.Force is set
	// (see output.RootfsDir).
	OutputLocal = "local"
	// OutputRegistry pushes the image to its registry (Name, else the
	// build's tags) without keeping it tagged in the store (docker's
	// --push).
	OutputRegistry = "registry"
)

// Output is one destination of a build's image.
type Output struct {
	// Type is one of OutputImage, OutputOCI, OutputDocker, OutputTar or
	// OutputLocal.
	Type string
	// Dest is the file (oci, docker, tar) or directory (local) to write.
	// A file is replaced atomically once complete; a directory is created
	// if needed, and must otherwise be empty unless Force is set. Unused
	// when Writer is set, and for OutputImage.
	Dest string
	// Force lets a local output write into a directory that is not empty
	// (type=local,force=true; BuildKit has no such key): an entry of the
	// image replaces the entry of the same name there, directories merge,
	// and the image's whiteouts never delete anything the directory held.
	// Without it, such a directory is refused before the build starts.
	Force bool
	// Writer, when set, receives an archive or tar instead of Dest.
	Writer io.Writer
	// Name lists the references (comma-separated) a registry output, or an
	// image output with Push, pushes to; default the build's tags.
	Name string
	// Push makes an image output also push the image (type=image,push=true).
	Push bool
	// CompressionOptions say how the layers of an oci or docker archive,
	// or of a push, are compressed; other types take none.
	CompressionOptions
}

// ParseOutput parses docker's --output value:
// "type=TYPE[,dest=PATH][,compression=gzip|zstd|uncompressed][,compression-level=N][,force-compression=true|false]",
// "type=local,dest=DIR[,force=true|false]", a bare PATH, which means
// type=local, or "-", which means type=tar,dest=- as in BuildKit. A Dest of
// "-" stands for standard output: the caller sets Writer for it.
func ParseOutput(s string) (Output, error) {
	if s == "-" {
		return Output{Type: OutputTar, Dest: "-"}, nil
	}
	if !strings.Contains(s, "=") {
		return Output{Type: OutputLocal, Dest: s}, nil
	}
	var o Output
	for _, kv := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(kv, "=")
		switch strings.TrimSpace(k) {
		case "type":
			o.Type = v
		case "dest":
			o.Dest = v
		case "name":
			o.Name = v
		case "push":
			push, err := strconv.ParseBool(v)
			if err != nil {
				return o, fmt.Errorf("--output: push %q is not true or false", v)
			}
			o.Push = push
		case "compression":
			o.Compression = v
		case "compression-level":
			n, err := strconv.Atoi(v)
			if err != nil {
				return o, fmt.Errorf("--output: compression-level %q is not a number", v)
			}
			o.CompressionLevel = &n
		case "force":
			force, err := strconv.ParseBool(v)
			if err != nil {
				return o, fmt.Errorf("--output: force %q is not true or false", v)
			}
			o.Force = force
		case "force-compression":
			force, err := strconv.ParseBool(v)
			if err != nil {
				return o, fmt.Errorf("--output: force-compression %q is not true or false", v)
			}
			o.ForceCompression = force
		default:
			return o, fmt.Errorf("--output: unknown key %q", k)
		}
	}
	return o, o.check()
}

// check reports an output Build cannot write.
func (o Output) check() error {
	if o.CompressionOptions != (CompressionOptions{}) && o.Type != OutputOCI && o.Type != OutputDocker && !o.pushes() {
		return fmt.Errorf("--output type=%s: compression options apply to type=oci, type=docker and pushes only", o.Type)
	}
	if err := o.CompressionOptions.check(); err != nil {
		return fmt.Errorf("--output type=%s: %w", o.Type, err)
	}
	if o.Force && o.Type != OutputLocal {
		return fmt.Errorf("--output type=%s: force applies to type=local only", o.Type)
	}
	switch o.Type {
	case OutputImage, OutputRegistry:
	case OutputOCI, OutputDocker, OutputTar:
		if o.Dest == "" && o.Writer == nil {
			return fmt.Errorf("--output type=%s needs dest=PATH", o.Type)
		}
	case OutputLocal:
		if o.Dest == "" {
			return fmt.Errorf("--output type=%s needs dest=PATH", o.Type)
		}
		if err := output.CheckRootfsDir(o.Dest, o.rootfsDirOptions()...); err != nil {
			return localOutputError(err)
		}
	default:
		return fmt.Errorf("--output: unknown type %q (want image, registry, oci, docker, local or tar)", o.Type)
	}
	return nil
}

// pushes reports whether the output pushes the image to a registry.
func (o Output) pushes() bool {
	return o.Type == OutputRegistry || o.Type == OutputImage && o.Push
}

// pushRefs returns the references the output pushes to: Name, else tags.
func (o Output) pushRefs(tags []string) ([]string, error) {
	if o.Name == "" {
		if len(tags) == 0 {
			return nil, fmt.Errorf("--output type=%s: pushing needs name=REF or a tag (-t)", o.Type)
		}
		return tags, nil
	}
	var refs []string
	for _, n := range strings.Split(o.Name, ",") {
		full, err := store.NormalizeRef(strings.TrimSpace(n))
		if err != nil {
			return nil, fmt.Errorf("--output name=%s: %w", n, err)
		}
		refs = append(refs, full)
	}
	return refs, nil
}

// keepsImage reports whether a build with outputs keeps its image in the
// store: with no output at all, or with an image output.
func keepsImage(outs []Output) bool {
	if len(outs) == 0 {
		return true
	}
	for _, o := range outs {
		if o.Type == OutputImage {
			return true
		}
	}
	return false
}

// export writes the built image id, whose manifest is in the store, to one
// output; names (normalized tags) name it in archives and are where it is
// pushed by default.
func (b *Builder) export(ctx context.Context, o Output, id digest.Digest, manifest ocispec.Descriptor, names []string, push PushOptions) error {
	img := output.Image{Manifest: manifest, Names: names}
	if o.pushes() {
		refs, err := o.pushRefs(names)
		if err != nil {
			return err
		}
		push.CompressionOptions = o.CompressionOptions
		return b.pushBuilt(ctx, store.Image{ID: id, Manifest: manifest}, refs, push)
	}
	switch o.Type {
	case OutputImage:
		return nil
	case OutputOCI, OutputDocker:
		converted, err := b.convert(ctx, manifest, o.CompressionOptions)
		if err != nil {
			return fmt.Errorf("--output type=%s: %w", o.Type, err)
		}
		img.Manifest = converted
		return writeTo(o, func(w io.Writer) error {
			exp, err := archiveExporter(ArchiveFormat(o.Type), w)
			if err != nil {
				return err
			}
			return exp.Export(ctx, b.st, img)
		})
	case OutputTar:
		return writeTo(o, func(w io.Writer) error {
			return b.exportTo(ctx, manifest, output.RootfsTar(w))
		})
	case OutputLocal:
		err := b.exportTo(ctx, manifest, output.RootfsDir(o.Dest, o.rootfsDirOptions()...))
		if err != nil {
			return localOutputError(err)
		}
		return nil
	}
	return fmt.Errorf("--output: unknown type %q", o.Type)
}

// rootfsDirOptions are the output.RootfsDir options of a local output.
func (o Output) rootfsDirOptions() []output.RootfsDirOption {
	if o.Force {
		return []output.RootfsDirOption{output.WithForce()}
	}
	return nil
}

// localOutputError says how to write into a directory that is not empty.
func localOutputError(err error) error {
	if errors.Is(err, output.ErrDirNotEmpty) {
		return fmt.Errorf("--output type=local: %w (add force=true to write into it anyway)", err)
	}
	return fmt.Errorf("--output type=local: %w", err)
}

// writeTo runs write into o.Writer, or into the file o.Dest, which appears
// only once complete.
func writeTo(o Output, write func(io.Writer) error) error {
	if o.Writer != nil {
		return write(o.Writer)
	}
	return atomicfile.Write(o.Dest, 0o644, func(f io.Writer) error {
		bw := bufio.NewWriterSize(f, 1<<20)
		if err := write(bw); err != nil {
			return err
		}
		return bw.Flush()
	})
}
