package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/builder-project/builder/builder"
	"github.com/spf13/pflag"
)

func init() {
	register("pull", "Download an image from a registry", cmdPull)
	register("push", "Upload an image to a registry", cmdPush)
	register("login", "Log in to a registry", cmdLogin)
	register("logout", "Log out from a registry", cmdLogout)
	register("search", "Search a registry for images", cmdSearch)
}

// registryFlags adds the flags every registry verb takes, and returns
// what they say once parsed.
func registryFlags(fs *pflag.FlagSet) func() builder.RegistryOptions {
	tlsVerify := fs.Bool("tls-verify", true, "require HTTPS and verify certificates (false also allows plain HTTP)")
	conf := fs.String("registries-conf", "", "builder's config file of insecure registries and mirrors (default /etc/builder/config.toml, then $XDG_CONFIG_HOME/builder/config.toml)")
	return func() builder.RegistryOptions {
		return builder.RegistryOptions{Insecure: !*tlsVerify, ConfigFile: *conf}
	}
}

// transferPrinter prints pull and push progress as docker does without a
// terminal: one line per change of a layer's status, and the lines about
// the whole image as they come.
type transferPrinter struct {
	w    io.Writer
	mu   sync.Mutex
	last map[string]string
}

func newTransferPrinter(w io.Writer) *transferPrinter {
	return &transferPrinter{w: w, last: map[string]string{}}
}

func (p *transferPrinter) event(ev builder.Event) {
	if ev.Kind != builder.Transfer {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if ev.ID == "" {
		fmt.Fprintln(p.w, ev.Message)
		return
	}
	if p.last[ev.ID] == ev.Message {
		return // repeated Downloading/Pushing updates
	}
	p.last[ev.ID] = ev.Message
	fmt.Fprintf(p.w, "%s: %s\n", ev.ID, ev.Message)
}

func cmdPull(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("pull")
	allTags := fs.BoolP("all-tags", "a", false, "download all tagged images in the repository")
	platform := fs.String("platform", "", "pull this platform of a multi-platform image (os/arch[/variant])")
	quiet := fs.BoolP("quiet", "q", false, "suppress verbose output")
	reg := registryFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("\"builder pull\" requires exactly 1 argument: NAME[:TAG|@DIGEST]")
	}
	b, err := g.open()
	if err != nil {
		return err
	}
	ref := fs.Arg(0)
	opts := builder.PullOptions{RegistryOptions: reg(), Platform: *platform, AllTags: *allTags}
	if !*quiet {
		if !*allTags && !strings.ContainsAny(lastPart(ref), ":@") {
			fmt.Println("Using default tag: latest")
		}
		printer := newTransferPrinter(os.Stdout)
		tag := "latest"
		if i := strings.LastIndexAny(lastPart(ref), ":@"); i >= 0 {
			tag = lastPart(ref)[i+1:]
		}
		opts.Progress = func(ev builder.Event) {
			if ev.ID == "" && strings.HasPrefix(ev.Message, "Pulling from ") && !*allTags {
				ev.Message = tag + ": " + ev.Message // docker's "1.0: Pulling from library/app"
			}
			printer.event(ev)
		}
	}
	res, err := b.Pull(ctx, ref, opts)
	if err != nil {
		return err
	}
	for _, r := range res {
		full, err := builder.NormalizeRef(r.Ref)
		if err != nil {
			full = r.Ref
		}
		fmt.Println(full)
	}
	return nil
}

// lastPart is the part of a reference after its last "/".
func lastPart(ref string) string {
	return ref[strings.LastIndex(ref, "/")+1:]
}

func cmdLogin(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("login")
	user := fs.StringP("username", "u", "", "username")
	password := fs.StringP("password", "p", "", "password (prefer --password-stdin)")
	stdin := fs.Bool("password-stdin", false, "take the password from standard input")
	reg := registryFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("\"builder login\" requires exactly 1 argument: REGISTRY")
	}
	if *stdin {
		if *password != "" {
			return fmt.Errorf("--password and --password-stdin are mutually exclusive")
		}
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		if err != nil && err != io.EOF {
			return fmt.Errorf("reading the password from standard input: %w", err)
		}
		*password = strings.TrimRight(line, "\r\n")
	}
	if *user == "" || *password == "" {
		return fmt.Errorf("\"builder login\" needs --username and --password or --password-stdin")
	}
	if *password != "" && !*stdin {
		fmt.Fprintln(os.Stderr, "WARNING! Using --password via the CLI is insecure. Use --password-stdin.")
	}
	b, err := g.open()
	if err != nil {
		return err
	}
	if err := b.Login(ctx, fs.Arg(0), *user, *password, reg()); err != nil {
		return err
	}
	fmt.Println("Login Succeeded")
	return nil
}

func cmdLogout(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("logout")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("\"builder logout\" requires exactly 1 argument: REGISTRY")
	}
	if err := builder.Logout(fs.Arg(0)); err != nil {
		return err
	}
	fmt.Printf("Removing login credentials for %s\n", fs.Arg(0))
	return nil
}

func cmdSearch(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("search")
	limit := fs.Int("limit", 0, "maximum number of results")
	listTags := fs.Bool("list-tags", false, "list the tags of the repository named instead")
	format := fs.String("format", "", "output format: table (default), json, or a Go template such as '{{.Name}}'")
	noTrunc := fs.Bool("no-trunc", false, "don't truncate descriptions")
	reg := registryFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("\"builder search\" requires exactly 1 argument: [REGISTRY/]TERM")
	}
	b, err := g.open()
	if err != nil {
		return err
	}
	if *listTags {
		tags, err := b.ListTags(ctx, fs.Arg(0), reg())
		if err != nil {
			return err
		}
		rows := make([]tagRow, len(tags))
		for i, t := range tags {
			rows[i] = tagRow{Name: fs.Arg(0), Tag: t}
		}
		return printRows(os.Stdout, *format, "table {{.Name}}\t{{.Tag}}", tagRow{Name: "NAME", Tag: "TAG"}, rows)
	}
	res, err := b.Search(ctx, fs.Arg(0), builder.SearchOptions{RegistryOptions: reg(), Limit: *limit})
	if err != nil {
		return err
	}
	rows := make([]searchRow, len(res))
	for i, r := range res {
		desc := r.Description
		if !*noTrunc {
			desc = ellipsize(desc, 45)
		}
		rows[i] = searchRow{Description: desc, Name: r.Name, StarCount: strconv.Itoa(r.Stars)}
		if r.Official {
			rows[i].IsOfficial = "[OK]"
		}
	}
	return printRows(os.Stdout, *format, "table {{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}", searchHeader, rows)
}

// searchRow is one result of search, with the field names of docker's
// --format templates (and of its --format json).
type searchRow struct {
	Description, IsAutomated, IsOfficial, Name, StarCount string
}

var searchHeader = searchRow{Description: "DESCRIPTION", IsAutomated: "AUTOMATED", IsOfficial: "OFFICIAL", Name: "NAME", StarCount: "STARS"}

// tagRow is one tag of search --list-tags.
type tagRow struct{ Name, Tag string }

func cmdPush(ctx context.Context, g *globals, args []string) error {
	fs := g.flags("push")
	allTags := fs.BoolP("all-tags", "a", false, "push all tags of the repository")
	digestFile := fs.String("digestfile", "", "write the pushed manifest's digest to this file")
	compression := fs.String("compression", "", "compress layers with gzip, zstd or uncompressed (default: as stored, gzip for uncompressed layers)")
	quiet := fs.BoolP("quiet", "q", false, "suppress verbose output")
	reg := registryFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() < 1 || fs.NArg() > 2 {
		return fmt.Errorf("\"builder push\" requires 1 or 2 arguments: NAME[:TAG] [DESTINATION]")
	}
	b, err := g.open()
	if err != nil {
		return err
	}
	opts := builder.PushOptions{RegistryOptions: reg(), AllTags: *allTags}
	opts.Compression = *compression
	if !*quiet {
		opts.Progress = newTransferPrinter(os.Stdout).event
	}
	res, err := b.Push(ctx, fs.Arg(0), fs.Arg(1), opts)
	if err != nil {
		return err
	}
	if *quiet {
		for _, r := range res {
			fmt.Println(r.Ref)
		}
	}
	if *digestFile != "" && len(res) > 0 {
		if err := os.WriteFile(*digestFile, []byte(res[len(res)-1].Digest.String()), 0o644); err != nil {
			return err
		}
	}
	return nil
}
