package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/builder-project/builder/internal/testutil"
)

// rawCLI runs the CLI with args as given (no --root added) and returns
// its standard output, standard error and exit code.
func rawCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "BUILDER_TEST_CLI=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// failCLI runs the CLI on root, which must fail with code, and returns its
// standard output and standard error.
func failCLI(t *testing.T, root string, code int, args ...string) (string, string) {
	t.Helper()
	out, errs, got := rawCLI(t, append([]string{"--root", root}, args...)...)
	if got != code {
		t.Fatalf("builder %s exited %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), got, code, out, errs)
	}
	return out, errs
}

// importImage imports a small random rootfs as ref and returns its ID.
func importImage(t *testing.T, root, ref string) string {
	t.Helper()
	tarball := filepath.Join(t.TempDir(), "rootfs.tar")
	writeFile(t, tarball, randomTar(t, 2, 100))
	return strings.TrimSpace(mustCLI(t, root, nil, "import", tarball, ref))
}

// TestGlobalFlagsAndGroups runs what docker users type: global flags
// before the verb, version, help VERB, docker's management groups, a
// mistyped verb, and VERB --help.
func TestGlobalFlagsAndGroups(t *testing.T) {
	root := t.TempDir()
	id := importImage(t, root, "app:1")

	for _, args := range [][]string{{"--root", root, "images"}, {"--root=" + root, "image", "ls"}, {"--root", root, "image", "list", "-q", "--no-trunc"}} {
		out, errs, code := rawCLI(t, args...)
		if code != 0 || !strings.Contains(out, id[7:19]) && !strings.Contains(out, id) {
			t.Errorf("builder %s: exit %d, stdout %q, stderr %q", strings.Join(args, " "), code, out, errs)
		}
	}
	// The verb's own --root wins over one before it.
	if out, _, _ := rawCLI(t, "--root", t.TempDir(), "images", "-q", "--root", root); strings.TrimSpace(out) != id[7:19] {
		t.Errorf("--root after the verb ignored: %q", out)
	}
	if out := mustCLI(t, root, nil, "image", "inspect", "-f", "{{.Id}}", "app:1"); strings.TrimSpace(out) != id {
		t.Errorf("image inspect printed %q", out)
	}
	mustCLI(t, root, nil, "image", "tag", "app:1", "app:2")
	if out := mustCLI(t, root, nil, "image", "rm", "app:2"); !strings.Contains(out, "Untagged: app:2") {
		t.Errorf("image rm printed %q", out)
	}

	out, errs, code := rawCLI(t, "version")
	if code != 0 || !strings.Contains(out, "Go version:") || !strings.Contains(out, "OS/Arch:") {
		t.Errorf("version: exit %d: %q %q", code, out, errs)
	}
	if out, _, _ := rawCLI(t, "version", "--format", "{{.Os}}/{{.Arch}}"); !strings.Contains(out, "/") || strings.Contains(out, "Version") {
		t.Errorf("version --format printed %q", out)
	}

	for _, args := range [][]string{{"help", "images"}, {"images", "--help"}, {"image", "ls", "--help"}} {
		out, errs, code := rawCLI(t, args...)
		for _, want := range []string{"Usage:  builder images [OPTIONS] [REPOSITORY[:TAG]]", "List images", "only the tags that match", "Options:", "--filter", "Examples:", "builder images --format"} {
			if code != 0 || !strings.Contains(out, want) {
				t.Errorf("builder %s: exit %d, output lacks %q:\n%s%s", strings.Join(args, " "), code, want, out, errs)
			}
		}
		if strings.Contains(out+errs, "Usage of") {
			t.Errorf("builder %s printed pflag's bare usage:\n%s%s", strings.Join(args, " "), out, errs)
		}
	}
	for verb := range verbs {
		out, errs, code := rawCLI(t, verb, "--help")
		h, ok := helps[verb]
		if code != 0 || !ok || !strings.Contains(out, "Usage:  builder "+h.usage) || !strings.Contains(out, "Examples:") || !strings.Contains(out, verbs[verb].summary) {
			t.Errorf("builder %s --help: exit %d, no synopsis, description or examples:\n%s%s", verb, code, out, errs)
		}
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"imags"}, `Error: unknown command "imags": did you mean images? (see 'builder --help')` + "\n"},
		{[]string{"buidl", "."}, `Error: unknown command "buidl": did you mean build? (see 'builder --help')` + "\n"},
		{[]string{"image", "lss"}, `Error: unknown command "image lss": did you mean image ls? (see 'builder image --help')` + "\n"},
		{[]string{"--bogus", "images"}, "Error: unknown flag --bogus before the command (see 'builder --help')\n"},
	} {
		out, errs, code := rawCLI(t, tc.args...)
		if code != 1 || errs != tc.want || out != "" {
			t.Errorf("builder %s: exit %d, stdout %q, stderr %q; want exit 1 and %q", strings.Join(tc.args, " "), code, out, errs, tc.want)
		}
	}
}

// TestFormatTemplates checks --format on images, inspect and history, with
// docker's field names, "table" prefixes and json rows.
func TestFormatTemplates(t *testing.T) {
	root := t.TempDir()
	id := importImage(t, root, "app:1")
	mustCLI(t, root, nil, "tag", "app:1", "example.com/team/app:2")

	if out := mustCLI(t, root, nil, "images", "--format", "{{.Repository}}:{{.Tag}}"); out != "app:1\nexample.com/team/app:2\n" && out != "example.com/team/app:2\napp:1\n" {
		t.Errorf("images --format printed %q", out)
	}
	out := mustCLI(t, root, nil, "images", "--format", `table {{.ID}}\t{{.Size}}`)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "IMAGE ID ") || !strings.HasSuffix(lines[0], "SIZE") || !strings.HasPrefix(lines[1], id[7:19]+" ") {
		t.Errorf("images --format 'table ...' printed:\n%s", out)
	}
	var rows []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(mustCLI(t, root, nil, "images", "--format", "json")), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("images --format json line %q: %v", l, err)
		}
		rows = append(rows, r)
	}
	if len(rows) != 2 || rows[0]["ID"] != id[7:19] || rows[0]["Repository"] == nil || rows[0]["Tag"] == nil || rows[0]["CreatedSince"] == nil || rows[0]["Size"] == nil {
		t.Errorf("images --format json rows: %v", rows)
	}

	if out := mustCLI(t, root, nil, "inspect", "-f", "{{.Id}}", "app:1"); out != id+"\n" {
		t.Errorf("inspect -f {{.Id}} printed %q", out)
	}
	var cfg map[string]any
	if err := json.Unmarshal([]byte(mustCLI(t, root, nil, "inspect", "--format", "{{json .Config}}", "app:1")), &cfg); err != nil {
		t.Errorf("inspect -f '{{json .Config}}': %v", err)
	}
	if out := mustCLI(t, root, nil, "inspect", "-f", "{{.Size}} {{index .RepoTags 0}}", "app:1"); strings.Contains(out, "e+") || !strings.HasSuffix(out, " app:1\n") {
		t.Errorf("inspect -f with a number printed %q", out)
	}

	if out := mustCLI(t, root, nil, "history", "--format", "{{.ID}}|{{.CreatedBy}}", "app:1"); !strings.HasPrefix(out, id[7:19]+"|builder import") || strings.Contains(out, "CREATED BY") {
		t.Errorf("history --format printed %q", out)
	}
	if out := mustCLI(t, root, nil, "history", "--format", `table {{.ID}}\t{{.Size}}`, "app:1"); !strings.HasPrefix(out, "IMAGE ") || !strings.Contains(out, id[7:19]) {
		t.Errorf("history --format 'table ...' printed %q", out)
	}
	raw := mustCLI(t, root, nil, "history", "-H=false", "--format", "{{.CreatedSince}} {{.Size}}", "app:1")
	f := strings.Fields(raw)
	if len(f) != 2 {
		t.Fatalf("history -H=false printed %q", raw)
	}
	if _, err := time.Parse(time.RFC3339, f[0]); err != nil || strings.Trim(f[1], "0123456789") != "" || f[1] == "0" {
		t.Errorf("history -H=false: want an RFC 3339 date and a size in bytes, got %q", raw)
	}
	var h map[string]any
	if err := json.Unmarshal([]byte(mustCLI(t, root, nil, "history", "--format", "json", "app:1")), &h); err != nil || h["CreatedBy"] == nil || h["CreatedSince"] == nil {
		t.Errorf("history --format json: %v %v", h, err)
	}
	if _, errs := failCLI(t, root, 1, "history", "--format", "{{.Nope}}", "app:1"); !strings.Contains(errs, "Nope") {
		t.Errorf("history with a bad field: %q", errs)
	}
}

// TestImagesFilters checks that REPOSITORY[:TAG] and reference= list only
// the matching tags, and before= / since=.
func TestImagesFilters(t *testing.T) {
	root := t.TempDir()
	first := importImage(t, root, "app:1")
	mustCLI(t, root, nil, "tag", "app:1", "other:1")
	time.Sleep(10 * time.Millisecond)
	second := importImage(t, root, "app:2")
	time.Sleep(10 * time.Millisecond)
	third := importImage(t, root, "web:1")
	row := "{{.Repository}}:{{.Tag}}"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"app:1"}, "app:1\n"},
		{[]string{"other"}, "other:1\n"},
		{[]string{"app"}, "app:2\napp:1\n"},
		{[]string{"--filter", "reference=app:1"}, "app:1\n"},
		{[]string{"--filter", "reference=oth*"}, "other:1\n"},
		{[]string{"--filter", "before=app:2"}, "app:1\nother:1\n"},
		{[]string{"--filter", "since=app:2"}, "web:1\n"},
		{[]string{"--filter", "since=" + first, "--filter", "before=" + third}, "app:2\n"},
	} {
		if out := mustCLI(t, root, nil, append([]string{"images", "--format", row}, tc.args...)...); out != tc.want {
			t.Errorf("images %s printed %q, want %q", strings.Join(tc.args, " "), out, tc.want)
		}
	}
	_ = second
	if _, errs := failCLI(t, root, 1, "images", "--filter", "before=missing"); !strings.Contains(errs, "before=missing") {
		t.Errorf("before= of a missing image: %q", errs)
	}
}

// TestInspectMissingAndLoadQuiet: inspect prints what it found before
// reporting what it did not; load -q still says what it loaded.
func TestInspectMissingAndLoadQuiet(t *testing.T) {
	root := t.TempDir()
	id := importImage(t, root, "app:1")
	out, errs := failCLI(t, root, 1, "inspect", "app:1", "missing")
	var objs []map[string]any
	if err := json.Unmarshal([]byte(out), &objs); err != nil || len(objs) != 1 || objs[0]["Id"] != id {
		t.Errorf("inspect good missing printed %q (%v)", out, err)
	}
	if errs != "Error: No such object: missing\n" {
		t.Errorf("inspect good missing: stderr %q", errs)
	}
	out, errs = failCLI(t, root, 1, "inspect", "-f", "{{.Id}}", "missing", "app:1", "gone")
	if out != id+"\n" || errs != "Error: No such object: missing\nError: No such object: gone\n" {
		t.Errorf("inspect -f missing good gone printed %q, %q", out, errs)
	}
	if _, errs := failCLI(t, root, 1, "image", "inspect", "missing"); errs != "Error: No such image: missing\n" {
		t.Errorf("image inspect missing: %q", errs)
	}

	archive := filepath.Join(t.TempDir(), "app.tar")
	mustCLI(t, root, nil, "save", "-o", archive, "app:1")
	if out := mustCLI(t, t.TempDir(), nil, "load", "-q", "-i", archive); out != "Loaded image: app:1\n" {
		t.Errorf("load -q printed %q", out)
	}
}

// TestSaveOCIRefNames checks that images sharing a tag each get their own
// ref.name in an OCI archive, which skopeo finds, and that an image named
// twice is written once.
func TestSaveOCIRefNames(t *testing.T) {
	skopeo := testutil.RequireTool(t, "skopeo")
	root := t.TempDir()
	ids := map[string]string{"a": importImage(t, root, "a:latest"), "b": importImage(t, root, "example.com/b:latest")}
	dir := t.TempDir()
	archive := filepath.Join(dir, "both.tar")
	mustCLI(t, root, nil, "save", "--format", "oci", "-o", archive, "a:latest", "example.com/b:latest")
	for name, ref := range map[string]string{"a": "docker.io/library/a:latest", "b": "example.com/b:latest"} {
		out, err := exec.Command(skopeo, "inspect", "--raw", "--config", "oci-archive:"+archive+":"+ref).CombinedOutput()
		if err != nil {
			t.Fatalf("skopeo inspect %s: %v\n%s", ref, err, out)
		}
		if got := "sha256:" + digestOf(out); got != ids[name] {
			t.Errorf("skopeo found %s for %s, want %s", got, ref, ids[name])
		}
	}
	index := func(args ...string) []any {
		p := filepath.Join(dir, "x.tar")
		mustCLI(t, root, nil, append([]string{"save", "--format", "oci", "-o", p}, args...)...)
		data, err := exec.Command("tar", "-xOf", p, "index.json").Output()
		if err != nil {
			t.Fatal(err)
		}
		var idx struct{ Manifests []any }
		if err := json.Unmarshal(data, &idx); err != nil {
			t.Fatal(err)
		}
		return idx.Manifests
	}
	if m := index("a:latest", "a:latest"); len(m) != 1 {
		t.Errorf("save a a: %d index entries, want 1: %v", len(m), m)
	}
	if m := index("a:latest", ids["a"]); len(m) != 1 {
		t.Errorf("save a ID-of-a: %d index entries, want 1: %v", len(m), m)
	}
	if m := index("a:latest"); len(m) != 1 || !strings.Contains(mustJSON(t, m), `"org.opencontainers.image.ref.name":"latest"`) {
		t.Errorf("a lone image lost its tag-only ref.name: %v", m)
	}
}

// digestOf returns the hex sha256 of data.
func digestOf(data []byte) string {
	return fmt.Sprintf("%x", sha256.Sum256(data))
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
