package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/builder-project/builder/internal/registry/registrytest"
)

// TestRegistryCommands runs login, push, pull, search and logout against a
// real registry with htpasswd authentication on loopback, as a user would.
func TestRegistryCommands(t *testing.T) {
	reg := registrytest.Start(t, registrytest.WithHtpasswd("alice", "s3cret"))
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	root := t.TempDir()
	tarball := filepath.Join(t.TempDir(), "rootfs.tar")
	writeFile(t, tarball, randomTar(t, 3, 1000))
	ref := reg.Host + "/team/app:1"
	id := strings.TrimSpace(mustCLI(t, root, nil, "import", tarball, ref))

	// Without credentials the registry refuses, and says how to log in.
	out, err := cli(root, "push", ref).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "builder login "+reg.Host) {
		t.Fatalf("push without login: %v\n%s", err, out)
	}
	login := cli(root, "login", "-u", "alice", "--password-stdin", reg.Host)
	login.Stdin = strings.NewReader("wrong\n")
	out, err = login.CombinedOutput()
	if err == nil || !strings.Contains(string(out), reg.Host) {
		t.Fatalf("login with a wrong password: %v\n%s", err, out)
	}
	if got := mustCLI(t, root, []byte("s3cret\n"), "login", "-u", "alice", "--password-stdin", reg.Host); !strings.Contains(got, "Login Succeeded") {
		t.Fatalf("login printed %q", got)
	}

	pushed := mustCLI(t, root, nil, "push", "--digestfile", filepath.Join(root, "digest"), ref)
	for _, want := range []string{"The push refers to repository [" + reg.Host + "/team/app]", ": Pushed", "1: digest: sha256:"} {
		if !strings.Contains(pushed, want) {
			t.Errorf("push output lacks %q:\n%s", want, pushed)
		}
	}
	digest, err := os.ReadFile(filepath.Join(root, "digest"))
	if err != nil || !strings.HasPrefix(string(digest), "sha256:") {
		t.Fatalf("digest file: %q, %v", digest, err)
	}

	other := t.TempDir()
	pulled := mustCLI(t, other, nil, "pull", ref)
	for _, want := range []string{"1: Pulling from team/app", ": Pull complete", "Digest: " + string(digest), "Status: Downloaded newer image for " + ref, reg.Host + "/team/app:1"} {
		if !strings.Contains(pulled, want) {
			t.Errorf("pull output lacks %q:\n%s", want, pulled)
		}
	}
	if got := strings.TrimSpace(mustCLI(t, other, nil, "images", "-q", "--no-trunc")); got != id {
		t.Errorf("pulled image %q, want %s", got, id)
	}
	if got := mustCLI(t, other, nil, "images", "--digests"); !strings.Contains(got, string(digest)) {
		t.Errorf("images --digests lacks the repo digest:\n%s", got)
	}
	if got := mustCLI(t, other, nil, "pull", ref); !strings.Contains(got, "Image is up to date") {
		t.Errorf("second pull:\n%s", got)
	}
	if got := mustCLI(t, other, nil, "search", reg.Host+"/app"); !strings.Contains(got, reg.Host+"/team/app") || !strings.Contains(got, "NAME") {
		t.Errorf("search:\n%s", got)
	}
	if got := mustCLI(t, other, nil, "search", "--format", "{{.Name}}", reg.Host+"/app"); got != reg.Host+"/team/app\n" {
		t.Errorf("search --format printed %q", got)
	}
	if got := mustCLI(t, other, nil, "search", "--list-tags", reg.Host+"/team/app"); !strings.Contains(got, "1") {
		t.Errorf("search --list-tags:\n%s", got)
	}

	mustCLI(t, root, nil, "logout", reg.Host)
	if out, err := cli(root, "logout", reg.Host).CombinedOutput(); err == nil || !strings.Contains(string(out), "Not logged in") {
		t.Errorf("second logout: %v\n%s", err, out)
	}
}
