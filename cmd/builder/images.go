package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/builder-project/builder/builder"
)

func init() {
	register("images", "List images", cmdImages)
	register("tag", "Create a tag TARGET that refers to SOURCE", cmdTag)
	register("rmi", "Remove one or more images", cmdRmi)
	register("prune", "Remove unused images and build cache", cmdPrune)
	register("history", "Show the history of an image", cmdHistory)
	register("inspect", "Display detailed information on containers and images", cmdInspect)
}

func cmdImages(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("images")
	all := fs.BoolP("all", "a", false, "show all images (no intermediate images are kept, so the same as without)")
	quiet := fs.BoolP("quiet", "q", false, "only show image IDs")
	digests := fs.Bool("digests", false, "show digests")
	noTrunc := fs.Bool("no-trunc", false, "don't truncate output")
	filters := fs.StringArrayP("filter", "f", nil, "filter output: dangling=true|false, label=K[=V], reference=PATTERN")
	format := fs.String("format", "", "output format: json, or a table (default)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	_ = all
	opts := builder.ImagesOptions{}
	for _, f := range *filters {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "dangling":
			d := v == "true" || v == "1"
			if !d && v != "false" && v != "0" {
				return fmt.Errorf("invalid filter 'dangling=%s'", v)
			}
			opts.Dangling = &d
		case "label":
			opts.Labels = append(opts.Labels, v)
		case "reference":
			opts.References = append(opts.References, v)
		default:
			return fmt.Errorf("invalid filter %q (want dangling, label or reference)", k)
		}
	}
	if fs.NArg() > 0 {
		opts.References = append(opts.References, fs.Arg(0))
	}
	b, err := g.open()
	if err != nil {
		return err
	}
	list, err := b.Images(ctx, opts)
	if err != nil {
		return err
	}
	if *format == "json" || *format == "{{json .}}" {
		enc := json.NewEncoder(os.Stdout)
		for _, s := range list {
			if err := enc.Encode(s); err != nil {
				return err
			}
		}
		return nil
	} else if *format != "" && *format != "table" {
		return fmt.Errorf("unsupported --format %q (want json or table)", *format)
	}
	id := func(s string) string {
		if *noTrunc {
			return s
		}
		return trunc(s)
	}
	if *quiet {
		seen := map[string]bool{}
		for _, s := range list {
			if !seen[s.ID] {
				seen[s.ID] = true
				fmt.Println(id(s.ID))
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 8, 3, ' ', 0)
	if *digests {
		fmt.Fprintln(tw, "REPOSITORY\tTAG\tDIGEST\tIMAGE ID\tCREATED\tSIZE")
	} else {
		fmt.Fprintln(tw, "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE")
	}
	for _, s := range list {
		tags := s.RepoTags
		if len(tags) == 0 {
			tags = []string{"<none>:<none>"}
		}
		for _, t := range tags {
			repo, tag := splitFamiliar(t)
			row := []string{repo, tag}
			if *digests {
				row = append(row, digestFor(s, repo))
			}
			row = append(row, id(s.ID), ago(s.Created), humanSize(s.Size))
			fmt.Fprintln(tw, strings.Join(row, "\t"))
		}
	}
	return tw.Flush()
}

func digestFor(s builder.ImageSummary, repo string) string {
	for _, d := range s.RepoDigests {
		if r, dg, ok := strings.Cut(d, "@"); ok && r == repo {
			return dg
		}
	}
	return "<none>"
}

// splitFamiliar splits "repo:tag" where repo may hold a registry port.
func splitFamiliar(t string) (string, string) {
	if i := strings.LastIndex(t, ":"); i > strings.LastIndex(t, "/") {
		return t[:i], t[i+1:]
	}
	return t, "<none>"
}

func trunc(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "N/A"
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return "Less than a minute ago"
	case d < time.Hour:
		return plural(int(d.Minutes()), "minute") + " ago"
	case d < 48*time.Hour:
		return plural(int(d.Hours()), "hour") + " ago"
	case d < 14*24*time.Hour:
		return plural(int(d.Hours()/24), "day") + " ago"
	case d < 60*24*time.Hour:
		return plural(int(d.Hours()/24/7), "week") + " ago"
	case d < 2*365*24*time.Hour:
		return plural(int(d.Hours()/24/30), "month") + " ago"
	}
	return plural(int(d.Hours()/24/365), "year") + " ago"
}

func plural(n int, unit string) string {
	if n == 1 {
		if unit == "hour" {
			return "An hour"
		}
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

// humanSize formats bytes as docker does (decimal units, 3 significant digits).
func humanSize(n int64) string {
	f := float64(n)
	units := []string{"B", "kB", "MB", "GB", "TB"}
	i := 0
	for f >= 1000 && i < len(units)-1 {
		f /= 1000
		i++
	}
	return fmt.Sprintf("%.4g%s", f, units[i])
}

func cmdTag(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("tag")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return fmt.Errorf("\"builder tag\" requires exactly 2 arguments: SOURCE_IMAGE TARGET_IMAGE")
	}
	b, err := g.open()
	if err != nil {
		return err
	}
	return b.Tag(ctx, fs.Arg(0), fs.Arg(1))
}

func cmdRmi(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("rmi")
	force := fs.BoolP("force", "f", false, "force removal of an image with several tags, or one a stopped container uses")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("\"builder rmi\" requires at least 1 argument")
	}
	b, err := g.open()
	if err != nil {
		return err
	}
	res, err := b.Remove(ctx, fs.Args(), *force)
	for _, u := range res.Untagged {
		fmt.Println("Untagged:", u)
	}
	for _, d := range res.Deleted {
		fmt.Println("Deleted:", d)
	}
	return err
}

func cmdPrune(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("prune")
	all := fs.BoolP("all", "a", false, "remove all unused images, not just dangling ones")
	force := fs.BoolP("force", "f", false, "do not prompt for confirmation")
	filters := fs.StringArray("filter", nil, "build cache filter: until=DURATION (e.g. 24h)")
	keep := fs.String("keep-storage", "", "keep at most this much build cache (e.g. 10GB)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	opts := builder.PruneOptions{All: *all}
	for _, f := range *filters {
		k, v, _ := strings.Cut(f, "=")
		if k != "until" {
			return fmt.Errorf("invalid filter %q (want until=DURATION)", f)
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("invalid filter %q: %w", f, err)
		}
		opts.CacheUntil = d
	}
	if *keep != "" {
		n, err := parseSize(*keep)
		if err != nil {
			return err
		}
		opts.KeepStorage = n
	}
	if !*force {
		what := "all dangling images and build cache"
		if *all {
			what = "all images without at least one container associated to them, and build cache"
		}
		if !confirm(fmt.Sprintf("WARNING! This will remove %s.\nAre you sure you want to continue? [y/N] ", what)) {
			return nil
		}
	}
	b, err := g.open()
	if err != nil {
		return err
	}
	rep, err := b.Prune(ctx, opts)
	if len(rep.Deleted) > 0 {
		fmt.Println("Deleted Images:")
		for _, u := range rep.Untagged {
			fmt.Println("untagged:", u)
		}
		for _, d := range rep.Deleted {
			fmt.Println("deleted:", d)
		}
		fmt.Println()
	}
	if rep.CacheEntries > 0 {
		fmt.Printf("Deleted build cache entries: %d\n", rep.CacheEntries)
	}
	fmt.Printf("Total reclaimed space: %s\n", humanSize(rep.Reclaimed))
	return err
}

func confirm(prompt string) bool {
	fmt.Fprint(os.Stderr, prompt)
	var answer string
	fmt.Fscanln(os.Stdin, &answer)
	a := strings.ToLower(strings.TrimSpace(answer))
	return a == "y" || a == "yes"
}

func cmdHistory(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("history")
	noTrunc := fs.Bool("no-trunc", false, "don't truncate output")
	quiet := fs.BoolP("quiet", "q", false, "only show image IDs")
	format := fs.String("format", "", "output format: json, or a table (default)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("\"builder history\" requires exactly 1 argument")
	}
	b, err := g.open()
	if err != nil {
		return err
	}
	hist, err := b.History(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	if *format == "json" {
		enc := json.NewEncoder(os.Stdout)
		for _, h := range hist {
			enc.Encode(h)
		}
		return nil
	}
	id := func(s string) string {
		if *noTrunc || s == "<missing>" {
			return s
		}
		return trunc(s)
	}
	if *quiet {
		for _, h := range hist {
			fmt.Println(id(h.ID))
		}
		return nil
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tCREATED\tCREATED BY\tSIZE\tCOMMENT")
	for _, h := range hist {
		by := strings.ReplaceAll(h.CreatedBy, "\n", " ")
		if !*noTrunc && len(by) > 45 {
			by = by[:44] + "…"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", id(h.ID), ago(h.Created), by, humanSize(h.Size), h.Comment)
	}
	return tw.Flush()
}

func cmdInspect(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("inspect")
	kind := fs.String("type", "", "inspect only this kind of object: container or image")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("\"builder inspect\" requires at least 1 argument")
	}
	b, err := g.open()
	if err != nil {
		return err
	}
	res, err := b.InspectObjects(ctx, fs.Args(), *kind)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "    ")
	return enc.Encode(res)
}
