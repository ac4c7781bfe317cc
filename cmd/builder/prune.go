package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/builder-project/builder/builder"
)

func init() {
	register("prune", "Remove unused images and build cache (builder system prune)", cmdPrune)
	register("image-prune", "Remove unused images", cmdImagePrune)
}

// pruneArgs are the flags of the prune verbs, as docker's: -a, -f, and
// for the build cache --filter until=DURATION and --keep-storage SIZE.
type pruneArgs struct {
	all   bool
	until time.Duration
	keep  int64
}

// parsePrune parses a prune verb's flags (the cache filters when cache is
// set) and asks, unless -f, whether to remove what what(all) says. It
// returns a nil Builder when the user declined.
func parsePrune(g *globals, name string, args []string, cache bool, allHelp string, what func(all bool) string) (*builder.Builder, pruneArgs, error) {
	var p pruneArgs
	fs := g.flags(name)
	fs.BoolVarP(&p.all, "all", "a", false, allHelp)
	force := fs.BoolP("force", "f", false, "do not prompt for confirmation")
	var filters []string
	var keep string
	if cache {
		fs.StringArrayVar(&filters, "filter", nil, "remove only build cache unused for longer than this: until=DURATION (e.g. 24h)")
		fs.StringVar(&keep, "keep-storage", "", "keep at most this much build cache (e.g. 10GB)")
	}
	if err := fs.Parse(args); err != nil {
		return nil, p, err
	}
	for _, f := range filters {
		k, v, _ := strings.Cut(f, "=")
		if k != "until" {
			return nil, p, fmt.Errorf("invalid filter %q (want until=DURATION)", f)
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			return nil, p, fmt.Errorf("invalid filter %q: %w", f, err)
		}
		p.until = d
	}
	if keep != "" {
		n, err := parseSize(keep)
		if err != nil {
			return nil, p, err
		}
		p.keep = n
	}
	if !*force && !confirm(fmt.Sprintf("WARNING! This will remove %s.\nAre you sure you want to continue? [y/N] ", what(p.all))) {
		return nil, p, nil
	}
	b, err := g.open()
	return b, p, err
}

// cmdPrune is docker's system prune: images and build cache.
func cmdPrune(ctx context.Context, g *globals, args []string) error {
	b, p, err := parsePrune(g, "prune", args, true, "remove all unused images, not just dangling ones", func(all bool) string {
		if all {
			return "all images without at least one container associated to them, and build cache"
		}
		return "all dangling images and build cache"
	})
	if b == nil {
		return err
	}
	rep, err := b.Prune(ctx, builder.PruneOptions{All: p.all, CacheUntil: p.until, KeepStorage: p.keep})
	printPruned(rep)
	if rep.CacheEntries > 0 {
		fmt.Printf("Deleted build cache entries: %d\n", rep.CacheEntries)
	}
	fmt.Printf("Total reclaimed space: %s\n", humanSize(rep.Reclaimed))
	return err
}

// cmdImagePrune is docker's image prune: images only.
func cmdImagePrune(ctx context.Context, g *globals, args []string) error {
	b, p, err := parsePrune(g, "image-prune", args, false, "remove all unused images, not just dangling ones", func(all bool) string {
		if all {
			return "all images without at least one container associated to them"
		}
		return "all dangling images"
	})
	if b == nil {
		return err
	}
	rep, err := b.Prune(ctx, builder.PruneOptions{All: p.all, KeepCache: true})
	printPruned(rep)
	fmt.Printf("Total reclaimed space: %s\n", humanSize(rep.Reclaimed))
	return err
}

// cmdCachePrune is docker's builder prune: the build cache only.
func cmdCachePrune(ctx context.Context, g *globals, args []string) error {
	b, p, err := parsePrune(g, "cache", args, true, "remove all build cache, not just the entries no image holds", func(all bool) string {
		if all {
			return "all build cache"
		}
		return "all dangling build cache"
	})
	if b == nil {
		return err
	}
	n, reclaimed, err := b.PruneCache(ctx, builder.CachePruneOptions{All: p.all, Until: p.until, KeepStorage: p.keep})
	fmt.Printf("Deleted build cache entries: %d\nTotal reclaimed space: %s\n", n, humanSize(reclaimed))
	return err
}

func printPruned(rep builder.PruneReport) {
	if len(rep.Deleted) == 0 {
		return
	}
	fmt.Println("Deleted Images:")
	for _, u := range rep.Untagged {
		fmt.Println("untagged:", u)
	}
	for _, d := range rep.Deleted {
		fmt.Println("deleted:", d)
	}
	fmt.Println()
}

func confirm(prompt string) bool {
	fmt.Fprint(os.Stderr, prompt)
	var answer string
	fmt.Fscanln(os.Stdin, &answer)
	a := strings.ToLower(strings.TrimSpace(answer))
	return a == "y" || a == "yes"
}
