package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/docker/go-units"
)

func init() {
	register("cache", "Show or prune the build cache: cache ls | du | prune", cmdCache)
}

// cacheRow is one row of cache ls, with the field names of buildx du's
// --format templates.
type cacheRow struct {
	CreatedAt, Description, ID, LastUsedAt, LastUsedSince, Size string
}

var cacheHeader = cacheRow{CreatedAt: "CREATED AT", Description: "CREATED BY", ID: "ID", LastUsedAt: "LAST USED AT", LastUsedSince: "LAST USED", Size: "SIZE"}

func cmdCache(ctx context.Context, g *globals, args []string) error {
	if len(args) > 0 && args[0] == "prune" {
		return cmdCachePrune(ctx, g, args[1:])
	}
	fs := g.flags("cache")
	format := fs.String("format", "", "output format of ls: table (default), json, or a Go template such as '{{.ID}} {{.Size}}'")
	noTrunc := fs.Bool("no-trunc", false, "don't truncate output")
	if err := fs.Parse(args); err != nil {
		return err
	}
	sub := "ls"
	if fs.NArg() > 0 {
		sub = fs.Arg(0)
	}
	b, err := g.open()
	if err != nil {
		return err
	}
	entries, err := b.CacheEntries(ctx)
	if err != nil {
		return err
	}
	switch sub {
	case "ls":
		rows := make([]cacheRow, len(entries))
		for i, e := range entries {
			id, by := e.Key, strings.ReplaceAll(e.CreatedBy, "\n", " ")
			if !*noTrunc {
				id = trunc(id)
				by = ellipsize(by, 60)
			}
			rows[i] = cacheRow{CreatedAt: e.Created.Format(dockerTime), Description: by, ID: id, LastUsedAt: e.LastUsed.Format(dockerTime),
				LastUsedSince: ago(e.LastUsed), Size: humanSize(e.Size)}
		}
		return printRows(os.Stdout, *format, "table {{.ID}}\t{{.Size}}\t{{.LastUsedSince}}\t{{.Description}}", cacheHeader, rows)
	case "du":
		var total int64
		for _, e := range entries {
			total += e.Size
		}
		fmt.Printf("Entries:\t%d\nTotal:\t%s\n", len(entries), humanSize(total))
		return nil
	}
	return fmt.Errorf("unknown cache command %q (want ls, du or prune)", sub)
}

// parseSize parses a --keep-storage value such as 10GB or 512MB.
func parseSize(s string) (int64, error) {
	n, err := units.RAMInBytes(s)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: %w", s, err)
	}
	return n, nil
}
