package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"
)

// help is what `builder VERB --help` prints besides the options.
type help struct {
	// usage is the synopsis after "builder ".
	usage string
	// desc says what the verb does, in a few lines.
	desc string
	// examples are command lines, one a line.
	examples string
}

// printVerbHelp prints the synopsis, description, options and examples of
// the verb name; a verb without an entry in helps gets its summary.
func printVerbHelp(w io.Writer, name string, fs *pflag.FlagSet) {
	h, ok := helps[name]
	if !ok {
		h = help{usage: name + " [OPTIONS]"}
	}
	fmt.Fprintf(w, "Usage:  builder %s\n\n%s\n", h.usage, verbs[name].summary)
	if h.desc != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(h.desc))
	}
	fmt.Fprintf(w, "\nOptions:\n%s", fs.FlagUsages())
	if h.examples != "" {
		fmt.Fprintln(w, "\nExamples:")
		for _, l := range strings.Split(strings.TrimSpace(h.examples), "\n") {
			fmt.Fprintf(w, "  %s\n", strings.TrimSpace(l))
		}
	}
}

// helps has the help of each verb.
var helps = map[string]help{
	"build": {usage: "build [OPTIONS] PATH | -",
		desc: `Runs the Dockerfile's steps in the context directory PATH (or a tar read from
standard input) and keeps the image in the store, tagged with each -t.
Steps whose inputs did not change come from the build cache.`,
		examples: `builder build -t app:1 .
builder build -f Dockerfile.prod --build-arg VERSION=2 -t app:2 .
builder build -o type=oci,dest=app.tar .
builder build -o - . > rootfs.tar`},
	"images": {usage: "images [OPTIONS] [REPOSITORY[:TAG]]",
		desc: `Lists images, one row per tag. REPOSITORY[:TAG] and --filter reference= list
only the tags that match. --format takes a Go template over the fields
.ID .Repository .Tag .Digest .CreatedSince .CreatedAt .Size, "table TEMPLATE",
or "json" (one object per row).`,
		examples: `builder images
builder images app
builder images --filter dangling=true -q
builder images --format '{{.Repository}}:{{.Tag}}'
builder images --format 'table {{.ID}}\t{{.Size}}'`},
	"tag": {usage: "tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
		desc:     `Adds the name TARGET_IMAGE to the image SOURCE_IMAGE names.`,
		examples: `builder tag app:1 registry.example.com/team/app:1`},
	"rmi": {usage: "rmi [OPTIONS] IMAGE [IMAGE...]",
		desc: `Removes a tag, and the image with its last tag. An image with several tags
named by ID, or one a stopped container uses, needs -f. An image other images
are built on (their Parent) cannot be removed, even with -f: removing its
last tag only untags it.`,
		examples: `builder rmi app:1
builder rmi -f 3f2a1b4c5d6e`},
	"prune": {usage: "prune [OPTIONS]",
		desc: `Removes dangling images (-a: every image no container uses) and the build
cache (as 'builder system prune'), then the data nothing references any more.
'builder image prune' removes images only, 'builder builder prune' the build
cache only.`,
		examples: `builder prune -f
builder prune -a -f --filter until=24h`},
	"image-prune": {usage: "image prune [OPTIONS]",
		desc: `Removes dangling images (-a: every image no container uses), and none that
other images are built on. The build cache is left alone ('builder builder
prune' removes it).`,
		examples: `builder image prune -f
builder image prune -a -f`},
	"history": {usage: "history [OPTIONS] IMAGE",
		desc: `Shows the history of an image, newest first. --format takes a Go template
over .ID .CreatedSince .CreatedAt .CreatedBy .Size .Comment, "table TEMPLATE"
or "json"; -H=false prints sizes in bytes and dates in RFC 3339.`,
		examples: `builder history app:1
builder history -H=false --no-trunc app:1
builder history --format '{{.CreatedBy}}: {{.Size}}' app:1`},
	"inspect": {usage: "inspect [OPTIONS] NAME|ID [NAME|ID...]",
		desc: `Prints docker's inspect JSON of containers and images (a container first when
both have the name). -f takes a Go template over that JSON, run once per
object. A name that is neither is reported after the others are printed.`,
		examples: `builder inspect app:1
builder inspect -f '{{.Id}}' app:1
builder inspect -f '{{json .Config}}' app:1`},
	"cache": {usage: "cache ls|du|prune [OPTIONS]",
		desc: `ls lists the build cache, du sums it, prune removes it ('builder builder
prune'): without -a, the entries whose layer no image holds; with -a, all;
--filter until=DURATION and --keep-storage SIZE select fewer.`,
		examples: `builder cache ls
builder cache du
builder builder prune -a -f
builder builder prune -f --filter until=24h --keep-storage 5GB`},
	"import": {usage: "import [OPTIONS] FILE|URL|- [REPOSITORY[:TAG]]",
		desc: `Makes a one-layer image of a root filesystem tarball (plain or compressed): a
file, an http or https URL (downloaded as it is stored), or standard input.
Input that is not a tar fails and stores nothing.`,
		examples: `builder import rootfs.tar.gz base:1
builder import https://example.com/rootfs.tar.gz base:1
cat rootfs.tar | builder import -c 'CMD ["/bin/sh"]' - base:2`},
	"load": {usage: "load [OPTIONS]",
		desc: `Loads images from a docker-archive or OCI archive (plain or compressed), or an
OCI image layout directory, and prints each image loaded.`,
		examples: `builder load -i app.tar
builder load < app.tar
builder load -i oci:./layout`},
	"save": {usage: "save [OPTIONS] IMAGE [IMAGE...]",
		desc: `Writes images as one docker-archive (default) or OCI archive. In an OCI
archive each image's index entry is named by its tag, or by its full name
where two images share a tag; naming an image twice writes it once.`,
		examples: `builder save -o app.tar app:1
builder save --format oci -o both.tar app:1 web:1
builder save --compression zstd app:1 > app.tar`},
	"export": {usage: "export [OPTIONS] CONTAINER|IMAGE",
		desc: `Writes a container's or an image's flattened root filesystem as a tar. An
image's streams from its layers, unpacking nothing, so it needs no root.`,
		examples: `builder export -o rootfs.tar app:1`},
	"run": {usage: "run [OPTIONS] IMAGE [COMMAND] [ARG...]",
		desc: `Creates a container from IMAGE and runs its command. The exit code is the
command's; 125 when builder failed, 126 when the command cannot be run, 127
when it does not exist.`,
		examples: `builder run --rm alpine echo hello
builder run -it --name box alpine sh
builder run -d --name web -v ./site:/srv:ro app:1`},
	"ps": {usage: "ps [OPTIONS]",
		desc: `Lists containers (running ones only, unless -a).`,
		examples: `builder ps -a
builder ps --format '{{.Names}} {{.Status}}'`},
	"rm": {usage: "rm [OPTIONS] CONTAINER [CONTAINER...]",
		desc: `Removes containers with their files; -f kills a running one first.`,
		examples: `builder rm web
builder rm -f web`},
	"start": {usage: "start [OPTIONS] CONTAINER [CONTAINER...]",
		desc: `Starts created or exited containers, in the background unless -a.`,
		examples: `builder start web
builder start -a job`},
	"stop": {usage: "stop [OPTIONS] CONTAINER [CONTAINER...]",
		desc:     `Sends the stop signal, then SIGKILL after the grace period.`,
		examples: `builder stop -t 3 web`},
	"kill": {usage: "kill [OPTIONS] CONTAINER [CONTAINER...]",
		desc:     `Sends a signal (default SIGKILL) to running containers.`,
		examples: `builder kill -s HUP web`},
	"exec": {usage: "exec [OPTIONS] CONTAINER COMMAND [ARG...]",
		desc: `Runs one more process in a running container.`,
		examples: `builder exec web cat /etc/os-release
builder exec -it web sh`},
	"logs": {usage: "logs CONTAINER",
		desc:     `Prints what a container printed while it ran in the background.`,
		examples: `builder logs web`},
	"diff": {usage: "diff CONTAINER",
		desc:     `Lists the files a container added (A), changed (C) and deleted (D).`,
		examples: `builder diff web`},
	"from": {usage: "from [OPTIONS] IMAGE",
		desc:     `Creates a working container without a process, as buildah does, and prints its name.`,
		examples: `c=$(builder from alpine)`},
	"copy": {usage: "copy [OPTIONS] CONTAINER SRC [SRC...] DEST",
		desc:     `Copies host files into a container with COPY's rules.`,
		examples: `builder copy --chown 1000 "$c" ./app /srv/`},
	"config": {usage: "config [OPTIONS] CONTAINER",
		desc:     `Changes what a container runs and what a commit of it writes.`,
		examples: `builder config --cmd '["/srv/app"]' --env MODE=prod "$c"`},
	"mount": {usage: "mount CONTAINER",
		desc:     `Mounts a container's root filesystem on the host and prints its path.`,
		examples: `vi "$(builder mount "$c")/etc/motd"`},
	"umount": {usage: "umount CONTAINER",
		desc:     `Unmounts what 'builder mount' mounted.`,
		examples: `builder umount "$c"`},
	"commit": {usage: "commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]] | commit --rootfs DIR [OPTIONS] [REPOSITORY[:TAG]]",
		desc: `Makes an image of a container's changes (one new layer), or of a directory.`,
		examples: `builder commit -m "Added a file" web web:2
builder commit --rootfs ./rootfs --base alpine app:1`},
	"pull": {usage: "pull [OPTIONS] NAME[:TAG|@DIGEST]",
		desc: `Downloads an image (the host's platform of a multi-platform one).`,
		examples: `builder pull alpine:3.20
builder pull --platform linux/arm64 alpine`},
	"push": {usage: "push [OPTIONS] NAME[:TAG] [DESTINATION]",
		desc:     `Uploads an image, only the blobs the registry lacks.`,
		examples: `builder push registry.example.com/team/app:1`},
	"login": {usage: "login [OPTIONS] REGISTRY",
		desc:     `Stores credentials for a registry in the docker config.`,
		examples: `echo "$TOKEN" | builder login -u me --password-stdin registry.example.com`},
	"logout": {usage: "logout REGISTRY",
		desc:     `Removes a registry's credentials from the docker config.`,
		examples: `builder logout registry.example.com`},
	"search": {usage: "search [OPTIONS] [REGISTRY/]TERM",
		desc: `Searches a registry's catalog, or lists a repository's tags.`,
		examples: `builder search --limit 5 alpine
builder search --list-tags localhost:5000/app`},
	"version": {usage: "version [OPTIONS]",
		desc: `Prints builder's version, Go version and platform.`,
		examples: `builder version
builder version --format '{{.Version}}'`},
	"info": {usage: "info [OPTIONS]",
		desc:     `Prints how builder runs on this host: its store, runtime and isolation.`,
		examples: `builder info`},
}
