package layer

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// ClampTimes sets the modification time of every entry below dir
// (files, directories, symlinks, device nodes, overlay whiteouts) that is
// newer than epoch to epoch, and leaves older ones as they are: BuildKit's
// rewrite-timestamp for SOURCE_DATE_EPOCH. Access times are left alone;
// dir's own times too, as a layer does not carry its root. Run on an
// upperdir before it becomes a snapshot, it makes the snapshot, and so
// every tar Diff writes from it, hold the clamped times. It stops when ctx
// is done.
func ClampTimes(ctx context.Context, dir string, epoch time.Time) error {
	c := clamper{ctx: ctx, epoch: epoch, ts: []unix.Timespec{
		{Nsec: unix.UTIME_OMIT},
		unix.NsecToTimespec(epoch.UnixNano()),
	}}
	if err := c.walk(dir); err != nil {
		return fmt.Errorf("clamping times below %s to %s: %w", dir, epoch.UTC().Format(time.RFC3339), err)
	}
	return nil
}

type clamper struct {
	ctx   context.Context
	epoch time.Time
	ts    []unix.Timespec
}

// walk clamps the entries of dir and below. Changing an entry's times
// changes no directory's mtime, so the order does not matter.
func (c *clamper) walk(dir string) error {
	names, err := readDirNames(dir)
	if err != nil {
		return fmt.Errorf("reading directory %s: %w", dir, err)
	}
	for _, name := range names {
		if err := c.ctx.Err(); err != nil {
			return err
		}
		p := filepath.Join(dir, name)
		st, err := lstat(p)
		if err != nil {
			return err
		}
		if time.Unix(st.Mtim.Unix()).After(c.epoch) {
			if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, c.ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return fmt.Errorf("setting the times of %s: %w", p, err)
			}
		}
		if isDir(&st) {
			if err := c.walk(p); err != nil {
				return err
			}
		}
	}
	return nil
}
