package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/docker/go-units"
)

func init() {
	register("cache", "Show the build cache: cache ls | cache du", cmdCache)
}

func cmdCache(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("cache")
	format := fs.String("format", "", "output format: json, or a table (default)")
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
		if *format == "json" {
			enc := json.NewEncoder(os.Stdout)
			for _, e := range entries {
				enc.Encode(e)
			}
			return nil
		}
		tw := tabwriter.NewWriter(os.Stdout, 0, 8, 3, ' ', 0)
		fmt.Fprintln(tw, "ID\tSIZE\tLAST USED\tCREATED BY")
		for _, e := range entries {
			id, by := e.Key, strings.ReplaceAll(e.CreatedBy, "\n", " ")
			if !*noTrunc {
				id = trunc(id)
				if len(by) > 60 {
					by = by[:59] + "…"
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", id, humanSize(e.Size), ago(e.LastUsed), by)
		}
		return tw.Flush()
	case "du":
		var total int64
		for _, e := range entries {
			total += e.Size
		}
		fmt.Printf("Entries:\t%d\nTotal:\t%s\n", len(entries), humanSize(total))
		return nil
	}
	return fmt.Errorf("unknown cache command %q (want ls or du)", sub)
}

// parseSize parses a --keep-storage value such as 10GB or 512MB.
func parseSize(s string) (int64, error) {
	n, err := units.RAMInBytes(s)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: %w", s, err)
	}
	return n, nil
}
