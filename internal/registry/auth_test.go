package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/builder-project/builder/internal/registry/registrytest"
)

// dockerConfig returns the auths of the docker config in DOCKER_CONFIG.
func dockerConfig(t *testing.T) map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(os.Getenv("DOCKER_CONFIG"), "config.json"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var cf struct {
		Auths map[string]any `json:"auths"`
	}
	if err := json.Unmarshal(data, &cf); err != nil {
		t.Fatal(err)
	}
	return cf.Auths
}

func TestLoginLogout(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	reg := registrytest.Start(t, registrytest.WithHtpasswd("alice", "s3cret"))
	ctx := context.Background()
	c := newClient(t, Options{}, nil)
	src := newStore(t)
	img := makeImage(t, src, twoLayers("auth"))
	ref := reg.Host + "/private/app:1"
	wantHint := fmt.Sprintf("authentication required for %s (run builder login %s)", reg.Host, reg.Host)

	_, err := c.Push(ctx, src, img.Manifest, ref, PushOptions{})
	if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "unauthorized: "+wantHint) {
		t.Fatalf("pushing without credentials: %v", err)
	}
	err = c.Login(ctx, reg.Host, "alice", "wrong")
	if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), reg.Host) {
		t.Fatalf("logging in with a wrong password: %v", err)
	}
	if auths := dockerConfig(t); len(auths) != 0 {
		t.Fatalf("a failed login stored %v", auths)
	}

	if err := c.Login(ctx, reg.Host, "alice", "s3cret"); err != nil {
		t.Fatal(err)
	}
	if _, ok := dockerConfig(t)[reg.Host]; !ok {
		t.Fatalf("no credentials for %s in the docker config: %v", reg.Host, dockerConfig(t))
	}
	pushImage(t, c, src, img, ref)
	// A new client (a new builder process) finds the stored credentials.
	c2 := newClient(t, Options{}, nil)
	dst := newStore(t)
	checkPulled(t, dst, pullOne(t, c2, dst, ref, PullOptions{}), img)

	if err := Logout(reg.Host); err != nil {
		t.Fatal(err)
	}
	if _, ok := dockerConfig(t)[reg.Host]; ok {
		t.Error("credentials left after logout")
	}
	_, err = newClient(t, Options{}, nil).Pull(ctx, newStore(t), ref, PullOptions{})
	if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), wantHint) {
		t.Errorf("pulling after logout: %v", err)
	}
	if err := Logout(reg.Host); err == nil || err.Error() != "Not logged in to "+reg.Host {
		t.Errorf("second logout: %v", err)
	}
}

func TestLoginHost(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, host, key string }{
		{"", "docker.io", "https://index.docker.io/v1/"},
		{"docker.io", "docker.io", "https://index.docker.io/v1/"},
		{"index.docker.io", "docker.io", "https://index.docker.io/v1/"},
		{"https://index.docker.io/v1/", "docker.io", "https://index.docker.io/v1/"},
		{"registry-1.docker.io", "docker.io", "https://index.docker.io/v1/"},
		{"localhost:5000", "localhost:5000", "localhost:5000"},
		{"https://ghcr.io", "ghcr.io", "ghcr.io"},
	} {
		if host, key := loginHost(tc.in); host != tc.host || key != tc.key {
			t.Errorf("loginHost(%q) = %q, %q; want %q, %q", tc.in, host, key, tc.host, tc.key)
		}
	}
}
