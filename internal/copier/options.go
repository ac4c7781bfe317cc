package copier

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"time"
)

// Options describes one COPY or ADD instruction after variable expansion.
type Options struct {
	// Sources are the source paths as written, relative to the source root.
	// A leading "/" and any ".." are cleaned away and a trailing "/" is
	// ignored, as Docker does. Each may hold filepath.Match wildcards in any
	// component ("*.go", "dir/*/x", "[a-z]?"); with Parents, "**" also
	// matches any number of components. A wildcard that matches nothing
	// contributes nothing (so "COPY go.mod go.sum* ./" works); a plain path
	// that does not exist is an error wrapping ErrNotFound, and so is a
	// copy where nothing matched at all ("no source files were specified").
	Sources []string
	// Dest is the destination as written. A relative Dest is relative to
	// Workdir; a trailing "/" (or "." ) makes it a directory. Several
	// sources need a directory Dest (trailing "/" or an existing directory)
	// unless they are all directories, whose contents merge into Dest.
	Dest string
	// Workdir is the stage's WORKDIR, absolute; "" means "/".
	Workdir string
	// Chown is "", "user", "user:", "uid", "user:group" or "uid:gid". Names
	// are looked up in /etc/passwd and /etc/group of the destination root;
	// a user without a group uses its primary GID (a numeric UID uses the
	// same number as GID). Empty means 0:0, for context and --from sources
	// alike. Directories created on the way to Dest get the same owner.
	Chown string
	// Chmod is "", an octal mode ("755", "0644") or a symbolic mode
	// ("+x", "u=rwX,go=rX", "g=u"). It applies to copied files and
	// directories (not to symlinks, created parent directories or entries
	// extracted from an archive).
	Chmod string
	// Exclude holds --exclude patterns (patternmatcher syntax). They are
	// matched against paths relative to each copied directory, and against
	// a file matched by a wildcard source; with Parents, relative to the
	// pivot (see Parents).
	Exclude []string
	// Parents keeps each source's directory structure below Dest (COPY
	// --parents). A "/./" in a source marks the pivot: only the components
	// after it are kept. Dest is then always a directory.
	Parents bool
	// Ignore reports whether a path of the source root, slash-separated and
	// relative to it, is excluded by .dockerignore. Nil means nothing is
	// ignored (sources from another stage or an image).
	Ignore func(rel string) (bool, error)
	// CanSkipDir reports whether an ignored directory can be pruned without
	// looking inside it (no "!" pattern may re-include anything below).
	// Nil means ignored directories are still searched for re-included
	// paths.
	CanSkipDir func(rel string) (bool, error)
	// Add selects ADD semantics: local tar archives are extracted into Dest
	// instead of being copied, and URL or Git sources are recognised (and
	// refused: builds are offline).
	Add bool
	// Unpack overrides archive extraction for ADD (--unpack); nil means
	// extract local archives.
	Unpack *bool
	// Checksum is ADD --checksum; it is only valid with a URL or Git source,
	// and so with this offline copier it always ends in an error.
	Checksum string
	// Heredocs are inline files (COPY <<EOF /file). A heredoc is copied as a
	// regular file named Name with mode 0644 (before Chmod). A source in
	// Sources with the same name as a heredoc denotes that heredoc; heredocs
	// not named in Sources are copied after the sources.
	Heredocs []Heredoc
	// Link is COPY --link. It only changes how a layer may be reused, so the
	// files are copied the same way; a caller that implements --link copies
	// into an empty root itself.
	Link bool
	// SourceDateEpoch, when set, clamps every modification time written to
	// it (files keep older times).
	SourceDateEpoch *time.Time
}

// Heredoc is an inline file of COPY <<NAME.
type Heredoc struct {
	// Name is the file name (the heredoc word, such as "EOF" or "app.conf").
	Name string
	// Data is the file content.
	Data string
}

// Result says what Copy wrote, for logging.
type Result struct {
	// Files counts non-directories written: regular files, symlinks,
	// hardlinks and device nodes.
	Files int
	// Bytes is the total size of regular file content written.
	Bytes int64
}

// Source is one top-level source after wildcard expansion, .dockerignore
// and --exclude.
type Source struct {
	// Path is the source path as matched, root-relative and slash-separated
	// ("." for the root); for a heredoc, its name.
	Path string
	// Resolved is Path with symlinks followed inside the source root: what
	// is actually read. It equals Path when no symlink is involved.
	Resolved string
	// IsDir reports whether Resolved is a directory; its contents are
	// copied, not the directory itself.
	IsDir bool
	// DestName is where the source lands relative to the destination when
	// the destination is a directory: the base name of Path for a file,
	// "." for a directory's contents, the path below the pivot with Parents.
	DestName string
	// Heredoc is set for an inline file; Data holds its content.
	Heredoc bool
	// Data is the heredoc content.
	Data string
	// Archive is set when ADD would extract this source as a tar archive.
	Archive bool

	// base is the directory (root-relative, resolved) that entry paths are
	// made relative to when matching --exclude, and what Entry.Rel is
	// relative to with Parents.
	base string
	// wildcard is set when the source came from a wildcard.
	wildcard bool
}

// Entry is one filesystem object Copy reads, as reported by Walk.
type Entry struct {
	// Source is the top-level source the entry belongs to.
	Source *Source
	// Path is the root-relative, slash-separated path of the entry in the
	// source root; it contains no symlink (only the top-level source is
	// followed), so a caller can open it with an os.Root of that root.
	Path string
	// Rel is where the entry goes below the destination directory: "." for
	// a directory source itself, "a/b" for its contents; "" for a single
	// file (whose name depends on the destination, see Source.DestName).
	Rel string
	// Info is the Lstat of Path.
	Info fs.FileInfo
}

// ErrNotFound is wrapped by errors for sources that do not exist in the
// source root (or are excluded by .dockerignore).
var ErrNotFound = errors.New("file not found in build context or excluded by .dockerignore")

// ErrOffline is wrapped by errors for ADD sources that need the network.
var ErrOffline = errors.New("network access is disabled in this build")

// errMultiDest is BuildKit's and Docker's message for several sources
// copied to a destination that is not a directory.
var errMultiDest = errors.New("When using COPY with more than one source file, the destination must be a directory and end with a /") //nolint:staticcheck // Docker's wording

// cleanSource turns a source as written into a root-relative clean path:
// "/a/../b/" and "../b" both become "b"; "" and "/" become ".".
func cleanSource(p string) string {
	c := path.Clean("/" + p)
	if c == "/" {
		return "."
	}
	return c[1:]
}

// destPath returns the absolute destination path and whether it names a
// directory (trailing "/", "." or "..").
func destPath(dest, workdir string) (string, bool) {
	if workdir == "" {
		workdir = "/"
	}
	dirHint := dest == "" || strings.HasSuffix(dest, "/") || dest == "." || dest == ".." ||
		strings.HasSuffix(dest, "/.") || strings.HasSuffix(dest, "/..")
	if !path.IsAbs(dest) {
		dest = path.Join(workdir, dest)
	}
	return path.Clean("/" + dest), dirHint
}

// isURL reports whether an ADD source is remote rather than a local path.
func isURL(src string) bool {
	for _, p := range []string{"http://", "https://", "git@", "ssh://", "git://"} {
		if strings.HasPrefix(src, p) {
			return true
		}
	}
	return false
}

// validate checks the options that do not depend on any filesystem.
func (o *Options) validate() error {
	if len(o.Sources) == 0 && len(o.Heredocs) == 0 {
		return errors.New("no source files were specified")
	}
	for _, s := range o.Sources {
		if !isURL(s) {
			continue
		}
		if !o.Add {
			return fmt.Errorf("copying %s: source can't be a URL for COPY", s)
		}
		return fmt.Errorf("ADD from URL %s: %w", s, ErrOffline)
	}
	if o.Checksum != "" {
		if !o.Add {
			return errors.New("checksum can't be specified for COPY")
		}
		return errors.New("checksum requires HTTP(S) or Git sources")
	}
	if _, err := parseChmod(o.Chmod); err != nil {
		return err
	}
	return nil
}

// unpack reports whether ADD should extract local archives.
func (o *Options) unpack() bool {
	if o.Unpack != nil {
		return *o.Unpack
	}
	return o.Add
}

// heredoc returns the heredoc named name, if any.
func (o *Options) heredoc(name string) (Heredoc, bool) {
	for _, h := range o.Heredocs {
		if h.Name == name {
			return h, true
		}
	}
	return Heredoc{}, false
}

// clampTime applies SourceDateEpoch to t.
func (o *Options) clampTime(t time.Time) time.Time {
	if o.SourceDateEpoch != nil && t.After(*o.SourceDateEpoch) {
		return *o.SourceDateEpoch
	}
	return t
}
