package registry

import (
	"context"
	"strings"
	"testing"

	"github.com/builder-project/builder/internal/registry/registrytest"
)

func TestTLSRegistry(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.WithTLS("registry.test"))
	_, port, _ := strings.Cut(reg.Host, ":")
	host := "registry.test:" + port // not loopback by name: HTTPS, verified
	dial := map[string]string{host: reg.Host}
	src := newStore(t)
	img := makeImage(t, src, twoLayers("tls"))
	ctx := context.Background()

	c := newClient(t, Options{RootCAs: reg.CA}, dial)
	pushImage(t, c, src, img, host+"/app:1")
	dst := newStore(t)
	checkPulled(t, dst, pullOne(t, c, dst, host+"/app:1", PullOptions{}), img)

	_, err := newClient(t, Options{}, dial).Pull(ctx, newStore(t), host+"/app:1", PullOptions{})
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("pulling from a registry with an unknown CA: %v", err)
	}
	checkPullsWith(t, host+"/app:1", img, dial, map[string]Options{
		"--tls-verify=false":  {Insecure: true},
		"insecure-registries": {ConfigFile: writeConfig(t, `insecure-registries = ["`+host+`"]`)},
	})
	// Loopback registries are insecure by default, as in docker: their
	// certificate is not checked.
	dst = newStore(t)
	checkPulled(t, dst, pullOne(t, newClient(t, Options{}, nil), dst, reg.Host+"/app:1", PullOptions{}), img)
}

func TestPlainHTTPOnlyWhereAllowed(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t)
	_, port, _ := strings.Cut(reg.Host, ":")
	host := "plain.test:" + port
	dial := map[string]string{host: reg.Host}
	src := newStore(t)
	img := makeImage(t, src, twoLayers("plain"))
	pushImage(t, newClient(t, Options{}, nil), src, img, reg.Host+"/app:1")
	ctx := context.Background()

	_, err := newClient(t, Options{}, dial).Pull(ctx, newStore(t), host+"/app:1", PullOptions{})
	if err == nil || !strings.Contains(err.Error(), host+" speaks plain HTTP, but it is not an insecure registry") {
		t.Errorf("pulling over plain HTTP from a secure registry: %v", err)
	}
	checkPullsWith(t, host+"/app:1", img, dial, map[string]Options{
		"--tls-verify=false":            {Insecure: true},
		"insecure-registries host:port": {ConfigFile: writeConfig(t, `insecure-registries = ["`+host+`"]`)},
		"insecure-registries host":      {ConfigFile: writeConfig(t, `insecure-registries = ["plain.test"]`)},
	})
}

// checkPullsWith pulls ref into a new store with a client made with each of
// opts and checks that img arrives.
func checkPullsWith(t *testing.T, ref string, img testImage, dial map[string]string, opts map[string]Options) {
	t.Helper()
	for name, o := range opts {
		dst := newStore(t)
		ps, err := newClient(t, o, dial).Pull(context.Background(), dst, ref, PullOptions{})
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		checkPulled(t, dst, ps[0], img)
	}
}
