package cache

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"time"

	"github.com/opencontainers/go-digest"
)

// PruneOptions select the records Prune removes. Conditions combine: a
// record is removed if any of them selects it. The zero value removes
// nothing.
type PruneOptions struct {
	// Until removes records not used for longer than this. Zero disables
	// the age rule.
	Until time.Duration
	// KeepStorage removes least recently used records, after the Until
	// rule, until the total Size of the remaining ones is at most this
	// many bytes. Zero means no limit.
	KeepStorage int64
	// All removes every record.
	All bool
	// Spare, when set, keeps each record it returns true for, whatever
	// the other options select (docker's builder prune without --all
	// spares the records whose layer an image holds).
	Spare func(Record) bool
}

// Prune removes the records selected by opts and returns them, so that the
// caller can garbage-collect blobs and snapshots no longer referenced by
// any record. Unless opts.All is set, a record used or replaced by another
// process while Prune runs (its mtime changed since it was listed) is kept.
func (c *Cache) Prune(ctx context.Context, opts PruneOptions) ([]Record, error) {
	type cand struct {
		rec   Record
		path  string
		mtime time.Time // the file's mtime when listed
		used  time.Time // last use; zero for a corrupt record
	}
	var cands []cand
	err := c.walk(ctx, func(p string, key digest.Digest) error {
		rec, mtime, err := readRecord(p, key)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if errors.Is(err, ErrCorrupt) {
			// A record no one can read references nothing usable:
			// treat it as never used so it goes first.
			fi, serr := os.Stat(p)
			if serr != nil {
				return nil
			}
			rec, mtime = Record{Key: key}, fi.ModTime()
			cands = append(cands, cand{rec, p, mtime, time.Time{}})
			return nil
		}
		if err != nil {
			return err
		}
		cands = append(cands, cand{rec, p, mtime, mtime})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pruning records: %w", err)
	}
	// Least recently used first.
	slices.SortFunc(cands, func(a, b cand) int { return a.used.Compare(b.used) })

	var total int64
	for _, c := range cands {
		total += c.rec.Size
	}
	now := c.now()
	var removed []Record
	for _, cd := range cands {
		if err := ctx.Err(); err != nil {
			return removed, fmt.Errorf("pruning records: %w", err)
		}
		if opts.Spare != nil && opts.Spare(cd.rec) {
			continue
		}
		switch {
		case opts.All:
		case opts.Until > 0 && now.Sub(cd.used) > opts.Until:
		case opts.KeepStorage > 0 && total > opts.KeepStorage:
		default:
			continue
		}
		if !opts.All {
			// Skip a record touched since it was listed: someone is
			// using it right now.
			fi, err := os.Stat(cd.path)
			if err != nil || !fi.ModTime().Equal(cd.mtime) {
				continue
			}
		}
		if err := removeSync(cd.path); err != nil {
			return removed, fmt.Errorf("pruning record %s: %w", cd.rec.Key, err)
		}
		total -= cd.rec.Size
		removed = append(removed, cd.rec)
	}
	return removed, nil
}
