package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/builder-project/builder/builder"
	"github.com/builder-project/builder/internal/atomicfile"
)

func init() {
	register("import", "Import a root filesystem tarball as an image", cmdImport)
	register("load", "Load images from a docker-archive or OCI archive", cmdLoad)
	register("save", "Save images to a docker-archive or OCI archive", cmdSave)
	register("export", "Export an image's flattened root filesystem as a tar", cmdExport)
}

func cmdImport(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("import")
	changes := fs.StringArrayP("change", "c", nil, "apply a Dockerfile instruction to the image (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR)")
	msg := fs.StringP("message", "m", "", "commit message for the imported image")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() < 1 || fs.NArg() > 2 {
		return fmt.Errorf("\"builder import\" requires 1 or 2 arguments: FILE|URL|- [REPOSITORY[:TAG]]")
	}
	src := fs.Arg(0)
	opts := builder.ImportOptions{Ref: fs.Arg(1), Changes: *changes, Message: *msg, Source: src}
	b, err := g.open()
	if err != nil {
		return err
	}
	var id string
	if builder.IsURL(src) {
		id, err = b.ImportURL(ctx, src, opts)
	} else {
		in, closeIn, oerr := openInput(src)
		if oerr != nil {
			return oerr
		}
		defer closeIn()
		id, err = b.Import(ctx, in, opts)
	}
	if err != nil {
		return err
	}
	fmt.Println(id)
	return nil
}

func openInput(name string) (io.Reader, func(), error) {
	if name == "-" || name == "" {
		return bufio.NewReaderSize(os.Stdin, 1<<20), func() {}, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, err
	}
	return f, func() { f.Close() }, nil
}

func cmdLoad(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("load")
	input := fs.StringP("input", "i", "-", "read from this archive file, or OCI layout directory (DIR or oci:DIR), instead of standard input")
	fs.BoolP("quiet", "q", false, "suppress progress output (load prints none; what was loaded is still printed, as docker does)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b, err := g.open()
	if err != nil {
		return err
	}
	var loaded []builder.LoadedImage
	if dir, ok := layoutDir(*input); ok {
		loaded, err = b.LoadLayout(ctx, dir)
	} else {
		in, closeIn, oerr := openInput(*input)
		if oerr != nil {
			return oerr
		}
		defer closeIn()
		loaded, err = b.Load(ctx, in)
	}
	if err != nil {
		return fmt.Errorf("loading %s: %w", *input, err)
	}
	// As docker, -q only silences progress, which load has none of:
	// what was loaded is printed either way.
	for _, l := range loaded {
		if len(l.Names) == 0 {
			fmt.Println("Loaded image ID:", l.ID)
		}
		for _, n := range l.Names {
			fmt.Println("Loaded image:", n)
		}
	}
	return nil
}

// layoutDir reports whether a load input names an OCI image layout
// directory: "oci:DIR", as skopeo writes it, or a path that is a directory.
func layoutDir(input string) (string, bool) {
	if dir, ok := strings.CutPrefix(input, "oci:"); ok {
		return dir, true
	}
	fi, err := os.Stat(input)
	return input, err == nil && fi.IsDir()
}

func cmdSave(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("save")
	out := fs.StringP("output", "o", "", "write to a file instead of standard output")
	format := fs.String("format", "docker", "archive format: docker or oci")
	compression := fs.String("compression", "", "compress the layers: gzip, zstd or uncompressed (default: as stored)")
	level := fs.Int("compression-level", 0, "compression level: 0-9 for gzip, 1-22 for zstd (default: gzip 5, zstd 3)")
	force := fs.Bool("force-compression", false, "compress every layer again, even one already stored in the compression asked for")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("\"builder save\" requires at least 1 argument")
	}
	opts := builder.SaveOptions{
		Format:             builder.ArchiveFormat(strings.ToLower(*format)),
		CompressionOptions: builder.CompressionOptions{Compression: *compression, ForceCompression: *force},
	}
	if fs.Changed("compression-level") {
		opts.CompressionLevel = level
	}
	b, err := g.open()
	if err != nil {
		return err
	}
	return writeOutput(*out, func(w io.Writer) error {
		return b.SaveWith(ctx, w, opts, fs.Args())
	})
}

func cmdExport(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("export")
	out := fs.StringP("output", "o", "", "write to a file instead of standard output")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("\"builder export\" requires exactly 1 argument")
	}
	b, err := g.open()
	if err != nil {
		return err
	}
	return writeOutput(*out, func(w io.Writer) error { return b.Export(ctx, w, fs.Arg(0)) })
}

// writeOutput runs write into the file name, which appears only once
// complete (atomicfile.Write), or into stdout when name is "" or "-".
func writeOutput(name string, write func(io.Writer) error) error {
	buffered := func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 1<<20)
		if err := write(bw); err != nil {
			return err
		}
		return bw.Flush()
	}
	if name != "" && name != "-" {
		return atomicfile.Write(name, 0o644, buffered)
	}
	if err := checkNotTerminal(os.Stdout); err != nil {
		return err
	}
	return buffered(os.Stdout)
}

// checkNotTerminal refuses to write an archive to a terminal.
func checkNotTerminal(f *os.File) error {
	if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		return fmt.Errorf("refusing to write an archive to a terminal: use -o FILE or redirect standard output")
	}
	return nil
}
