package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/builder-project/builder/internal/atomicfile"
	"github.com/builder-project/builder/internal/userns"
)

// Sentinel errors, checked with errors.Is.
var (
	// ErrNotFound means no blob, image, tag or snapshot matched.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists means a concurrent writer committed the same content
	// first; callers treat it as success.
	ErrAlreadyExists = errors.New("already exists")
	// ErrInvalidDigest means written bytes did not match the expected digest or size.
	ErrInvalidDigest = errors.New("invalid digest")
	// ErrAmbiguous means a short image ID prefix matched several images.
	ErrAmbiguous = errors.New("ambiguous reference")
	// ErrConflict means an operation would break another image or needs force.
	ErrConflict = errors.New("conflict")
)

// staleTempAge is how old a temporary file under recipes/ must be before
// Open removes it: no writer keeps one open anywhere near this long, so an
// older one was left by a killed process. The temporary files under cache/
// are the cache package's to remove (cache.Open and cache.OpenHasher).
const staleTempAge = time.Hour

// Store is an open local store rooted at one directory. It is safe for use
// by several goroutines and by several processes sharing the root.
type Store struct {
	root string
}

// DefaultRoot returns $BUILDER_ROOT, else /var/lib/builder for root, else
// $XDG_DATA_HOME/builder (~/.local/share/builder): for a non-root user and
// for root of a user namespace (rootless, see userns.Rootless) alike.
func DefaultRoot() string {
	if r := os.Getenv("BUILDER_ROOT"); r != "" {
		return r
	}
	if !userns.Rootless() {
		return "/var/lib/builder"
	}
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "builder")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "builder")
	}
	return filepath.Join(home, ".local", "share", "builder")
}

// Open opens (creating if needed) the store at root and removes what killed
// processes left behind: abandoned ingests and temporary directories,
// half-deleted snapshots, ephemeral active snapshots whose owner is gone,
// containers half created or half removed, temporary files of index.json,
// and stale temporary files under cache/.
//
// The root is made mode 0700 whatever its mode was, so it must be a
// directory of its own: the store holds build-arg values (in cache records
// and history), cache mount contents and unpacked layers, which no other
// local user may read. What lies inside is protected by the root alone.
func Open(root string) (*Store, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("opening store %s: %w", root, err)
	}
	s := &Store{root: abs}
	if err := makePrivateDir(abs); err != nil {
		return nil, fmt.Errorf("opening store %s: %w", abs, err)
	}
	for _, d := range []string{"blobs/sha256", "recipes/sha256", "ingest", "snapshots", "active", "tmp", "cache", "containers"} {
		if err := os.MkdirAll(s.path(d), 0o700); err != nil {
			return nil, fmt.Errorf("opening store %s: %w", abs, err)
		}
	}
	if err := s.cleanup(); err != nil {
		return nil, fmt.Errorf("opening store %s: %w", abs, err)
	}
	return s, nil
}

// makePrivateDir creates the directory dir, or makes the existing one,
// mode 0700.
func makePrivateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() == 0o700 {
		return err
	}
	return os.Chmod(dir, 0o700)
}

// Root returns the store's absolute root directory.
func (s *Store) Root() string { return s.root }

// CacheDir returns the directory of the build cache, root/cache: the
// cache's records (records/) and per-context checksum indexes (context/)
// live there. Files its writer names .tmp-* are temporary; Open removes
// those older than an hour.
func (s *Store) CacheDir() string { return s.path("cache") }

func (s *Store) path(elem ...string) string {
	return filepath.Join(append([]string{s.root}, elem...)...)
}

// TempDir creates a fresh directory for temporary work on the same
// filesystem as the store (so renames into it are atomic). The caller removes
// it; Open removes ones a killed process left behind only under tmp/ when
// their lock is free.
func (s *Store) TempDir(prefix string) (dir string, release func() error, err error) {
	dir = s.path("tmp", prefix+randomID())
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", nil, fmt.Errorf("creating temp dir: %w", err)
	}
	lk, err := tryLockExclusive(dir + ".lock")
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("locking temp dir: %w", err)
	}
	return dir, func() error {
		err := removeAll(dir)
		os.Remove(dir + ".lock")
		lk.Unlock()
		return err
	}, nil
}

// cleanup removes leftovers of dead processes. Each of these directories is
// guarded by a lock file its owner holds for its whole life.
func (s *Store) cleanup() error {
	for _, sub := range []string{"ingest", "tmp", "active"} {
		entries, err := os.ReadDir(s.path(sub))
		if err != nil {
			return err
		}
		for _, e := range entries {
			name := e.Name()
			if strings.HasSuffix(name, ".lock") || !e.IsDir() {
				continue
			}
			dir := s.path(sub, name)
			if sub == "active" && isPersistent(dir) {
				continue // owned by a working container, not a process
			}
			lk, err := tryLockExclusive(dir + ".lock")
			if errors.Is(err, errLocked) {
				continue // its owner is alive
			}
			if err != nil {
				return err
			}
			rerr := removeAll(dir)
			os.Remove(dir + ".lock")
			lk.Unlock()
			if rerr != nil {
				return fmt.Errorf("removing leftover %s: %w", dir, rerr)
			}
		}
	}
	// Leftover lock files whose directory is gone.
	for _, sub := range []string{"ingest", "tmp", "active"} {
		entries, _ := os.ReadDir(s.path(sub))
		for _, e := range entries {
			if n := e.Name(); strings.HasSuffix(n, ".lock") {
				if _, err := os.Lstat(s.path(sub, strings.TrimSuffix(n, ".lock"))); os.IsNotExist(err) {
					if lk, err := tryLockExclusive(s.path(sub, n)); err == nil {
						os.Remove(s.path(sub, n))
						lk.Unlock()
					}
				}
			}
		}
	}
	// A snapshot being deleted is first renamed to new-*, so any still
	// present are garbage.
	entries, err := os.ReadDir(s.path("snapshots"))
	if err != nil {
		return err
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "new-") {
			if err := removeAll(s.path("snapshots", e.Name())); err != nil {
				return err
			}
		}
	}
	if err := s.cleanupContainers(); err != nil {
		return err
	}
	if err := s.removeIndexTemps(); err != nil {
		return err
	}
	now := time.Now()
	atomicfile.RemoveStale(s.path("recipes"), staleTempAge, now)
	atomicfile.RemoveStale(s.path("recipes", "sha256"), staleTempAge, now)
	return nil
}

// removeIndexTemps removes temporary files of index.json that a process
// killed while writing it left behind. Holding index.lock, no writer is
// live; when a writer holds it, they wait for the next Open.
func (s *Store) removeIndexTemps() error {
	lk, err := tryLockExclusive(s.path("index.lock"))
	if errors.Is(err, errLocked) {
		return nil
	}
	if err != nil {
		return err
	}
	defer lk.Unlock()
	entries, err := os.ReadDir(s.root)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), atomicfile.TempPrefix+"index.json-") {
			continue
		}
		if err := os.Remove(s.path(e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing leftover %s: %w", e.Name(), err)
		}
	}
	return nil
}

// removeAll is os.RemoveAll that first makes directories writable, since a
// layer may contain read-only directories and an overlay workdir has a
// mode-000 "work" directory.
func removeAll(dir string) error {
	err := os.RemoveAll(dir)
	if err == nil {
		return nil
	}
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.IsDir() && fi.Mode().Perm()&0o700 != 0o700 {
			os.Chmod(p, fi.Mode().Perm()|0o700)
		}
		return nil
	})
	return os.RemoveAll(dir)
}
