package cache

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

func TestPrune(t *testing.T) {
	now := time.Now()
	// name → (size, hours since last use)
	type rec struct {
		name  string
		size  int64
		hours int
	}
	recs := []rec{{"old", 100, 72}, {"mid", 200, 24}, {"new", 300, 1}, {"newest", 400, 0}}
	tests := []struct {
		name string
		opts PruneOptions
		want []string // removed, least recently used first
	}{
		{"zero options remove nothing", PruneOptions{}, nil},
		{"until", PruneOptions{Until: 48 * time.Hour}, []string{"old"}},
		{"until keeps recent", PruneOptions{Until: 12 * time.Hour}, []string{"old", "mid"}},
		{"keep storage lru", PruneOptions{KeepStorage: 700}, []string{"old", "mid"}},
		{"keep storage exact", PruneOptions{KeepStorage: 1000}, nil},
		{"keep storage after until", PruneOptions{Until: 48 * time.Hour, KeepStorage: 400}, []string{"old", "mid", "new"}},
		{"all", PruneOptions{All: true}, []string{"old", "mid", "new", "newest"}},
		{"all but spared", PruneOptions{All: true, Spare: func(r Record) bool { return r.Size == 200 || r.Size == 400 }}, []string{"old", "new"}},
		{"spared whatever the age", PruneOptions{Until: 12 * time.Hour, Spare: func(r Record) bool { return r.Size == 100 }}, []string{"mid"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			c := mustOpen(t, t.TempDir())
			for _, r := range recs {
				rr := testRecord(r.name, r.size)
				rr.LastUsed = now.Add(-time.Duration(r.hours) * time.Hour)
				if err := c.Put(ctx, rr); err != nil {
					t.Fatal(err)
				}
			}
			removed, err := c.Prune(ctx, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range removed {
				got = append(got, r.CreatedBy[len("RUN "):])
				if r.Layer == nil {
					t.Errorf("removed record %s lost its layer", r.Key)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("removed %v, want %v", got, tt.want)
			}
			left, err := c.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(left)+len(removed) != len(recs) {
				t.Fatalf("%d left + %d removed != %d", len(left), len(removed), len(recs))
			}
			for _, name := range tt.want {
				if _, ok, err := c.Lookup(ctx, digest.FromString(name)); err != nil || ok {
					t.Errorf("Lookup(%s) after Prune = %v, %v; want it gone", name, ok, err)
				}
			}
		})
	}
}

func TestPruneCorruptRecord(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := mustOpen(t, dir)
	key := digest.FromString("junk")
	p := filepath.Join(dir, "records", "sha256", key.Encoded()+".json")
	if err := os.WriteFile(p, []byte("not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	removed, err := c.Prune(ctx, PruneOptions{Until: time.Hour})
	if err != nil || len(removed) != 1 || removed[0].Key != key {
		t.Fatalf("Prune = %v, %v; want the corrupt record removed", removed, err)
	}
}
