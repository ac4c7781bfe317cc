package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/builder-project/builder/builder"
)

func init() {
	register("images", "List images", cmdImages)
	register("tag", "Create a tag TARGET that refers to SOURCE", cmdTag)
	register("rmi", "Remove one or more images", cmdRmi)
	register("history", "Show the history of an image", cmdHistory)
	register("inspect", "Display detailed information on containers and images", cmdInspect)
}

// imageRow is one row of images, with the field names of docker's
// --format templates (and of its --format json).
type imageRow struct {
	Containers, CreatedAt, CreatedSince, Digest, ID, Repository, SharedSize, Size, Tag, UniqueSize, VirtualSize string
}

var imageHeader = imageRow{Containers: "CONTAINERS", CreatedAt: "CREATED AT", CreatedSince: "CREATED", Digest: "DIGEST",
	ID: "IMAGE ID", Repository: "REPOSITORY", SharedSize: "SHARED SIZE", Size: "SIZE", Tag: "TAG", UniqueSize: "UNIQUE SIZE", VirtualSize: "VIRTUAL SIZE"}

func cmdImages(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("images")
	all := fs.BoolP("all", "a", false, "show all images (default hides intermediate images: untagged ones other images are built on)")
	quiet := fs.BoolP("quiet", "q", false, "only show image IDs")
	digests := fs.Bool("digests", false, "show digests")
	noTrunc := fs.Bool("no-trunc", false, "don't truncate output")
	filters := fs.StringArrayP("filter", "f", nil, "filter output: dangling=true|false, label=K[=V], reference=PATTERN, before=IMAGE, since=IMAGE")
	format := fs.String("format", "", "output format: table (default), json, or a Go template such as 'table {{.Repository}}\\t{{.Tag}}'")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		return fmt.Errorf("\"builder images\" accepts at most 1 argument: [REPOSITORY[:TAG]]")
	}
	opts := builder.ImagesOptions{All: *all}
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
		case "before":
			opts.Before = v
		case "since":
			opts.Since = v
		default:
			return fmt.Errorf("invalid filter %q (want dangling, label, reference, before or since)", k)
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
	var rows []imageRow
	for _, s := range list {
		tags := s.RepoTags
		if len(tags) == 0 {
			tags = []string{"<none>:<none>"}
		}
		for _, t := range tags {
			repo, tag := splitFamiliar(t)
			rows = append(rows, imageRow{Containers: "N/A", CreatedAt: s.Created.Format(dockerTime), CreatedSince: ago(s.Created),
				Digest: digestFor(s, repo), ID: id(s.ID), Repository: repo, SharedSize: "N/A", Size: humanSize(s.Size),
				Tag: tag, UniqueSize: "N/A", VirtualSize: humanSize(s.Size)})
		}
	}
	table := "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
	if *digests {
		table = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
	}
	return printRows(os.Stdout, *format, table, imageHeader, rows)
}

// dockerTime is how docker prints a CreatedAt field (Go's time.String).
const dockerTime = "2006-01-02 15:04:05 -0700 MST"

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

// ellipsize cuts s to n characters, its last one "…", when it is longer,
// as docker's listings cut long columns.
func ellipsize(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
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

func cmdHistory(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("history")
	human := fs.BoolP("human", "H", true, "print sizes and dates in human readable format (-H=false: bytes and RFC 3339)")
	noTrunc := fs.Bool("no-trunc", false, "don't truncate output")
	quiet := fs.BoolP("quiet", "q", false, "only show image IDs")
	format := fs.String("format", "", "output format: table (default), json, or a Go template such as 'table {{.ID}}\\t{{.CreatedBy}}'")
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
	rows := make([]historyRow, len(hist))
	for i, h := range hist {
		rows[i] = newHistoryRow(h, id(h.ID), *human, !*noTrunc)
	}
	return printRows(os.Stdout, *format, "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}", historyHeader, rows)
}

// historyRow is one row of history, with the field names of docker's
// --format templates (and of its --format json).
type historyRow struct {
	Comment, CreatedAt, CreatedBy, CreatedSince, ID, Size string
}

var historyHeader = historyRow{Comment: "COMMENT", CreatedAt: "CREATED AT", CreatedBy: "CREATED BY", CreatedSince: "CREATED", ID: "IMAGE", Size: "SIZE"}

// newHistoryRow renders h as docker does: with human, sizes such as 1.2MB
// and ages; without, bytes and RFC 3339 dates; truncated, CREATED BY cut
// to 45 characters.
func newHistoryRow(h builder.HistoryEntry, id string, human, truncate bool) historyRow {
	r := historyRow{Comment: h.Comment, ID: id, CreatedBy: strings.ReplaceAll(h.CreatedBy, "\n", " ")}
	if !h.Created.IsZero() {
		r.CreatedAt = h.Created.Format(time.RFC3339)
	}
	if human {
		r.CreatedSince, r.Size = ago(h.Created), humanSize(h.Size)
	} else {
		r.CreatedSince, r.Size = r.CreatedAt, strconv.FormatInt(h.Size, 10)
	}
	if truncate {
		r.CreatedBy = ellipsize(r.CreatedBy, 45)
	}
	return r
}

func cmdInspect(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("inspect")
	kind := fs.String("type", "", "inspect only this kind of object: container or image")
	format := fs.StringP("format", "f", "", "format the output with a Go template over the inspect JSON (e.g. '{{.Id}}', '{{json .Config}}'), or json")
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
	// As docker: what was found is printed, then what was not reported,
	// a line each.
	var objs []any
	var missing []string
	for _, name := range fs.Args() {
		res, err := b.InspectObjects(ctx, []string{name}, *kind)
		switch {
		case errors.Is(err, builder.ErrNotFound):
			missing = append(missing, fmt.Sprintf("No such %s: %s", objectKind(*kind), name))
		case err != nil:
			return err
		default:
			objs = append(objs, res[0])
		}
	}
	if err := printObjects(os.Stdout, *format, objs); err != nil {
		return err
	}
	if len(missing) > 0 {
		return errors.New(strings.Join(missing, "\nError: "))
	}
	return nil
}

// objectKind names what inspect --type looked for, as docker's errors do.
func objectKind(kind string) string {
	switch kind {
	case "image", "container":
		return kind
	}
	return "object"
}
