package registry

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Options configure a Client. The zero value is a client with docker's
// defaults.
type Options struct {
	// Insecure allows plain HTTP and unverified TLS for every registry
	// (--tls-verify=false). Without it only loopback registries, those
	// listed in the config file and http:// mirrors get either.
	Insecure bool
	// ConfigFile is builder's config.toml, which must exist when given.
	// "" reads /etc/builder/config.toml and then
	// $XDG_CONFIG_HOME/builder/config.toml (else
	// ~/.config/builder/config.toml), each if it exists. See the package
	// documentation for the keys read.
	ConfigFile string
	// Progress receives transfer updates; nil discards them. Calls are
	// serialized, never concurrent, but may come from any goroutine.
	Progress func(Progress)
	// Jobs bounds concurrent blob transfers per pull or push; ≤ 0 means 4.
	Jobs int
	// Transport is the base HTTP transport (tests); nil is a clone of
	// http.DefaultTransport. When it is an *http.Transport, its TLS config is
	// kept, with RootCAs set for verified hosts and verification turned off
	// for insecure ones; any other RoundTripper is used as it is.
	Transport http.RoundTripper
	// RootCAs are the certificate authorities trusted for verified HTTPS;
	// nil means the system's (which honour SSL_CERT_FILE and SSL_CERT_DIR).
	RootCAs *x509.CertPool
	// HubSearchURL is Docker Hub's search endpoint, which Search queries for
	// docker.io; "" is https://index.docker.io/v1/search. Tests point it at a
	// fake.
	HubSearchURL string
}

// defaultHubSearchURL is Docker Hub's search API.
const defaultHubSearchURL = "https://index.docker.io/v1/search"

// Client talks to registries on behalf of builder. It is safe for concurrent
// use; authenticated connections are cached per registry and scope.
type Client struct {
	opts     Options
	cfg      *config
	policy   *policyTransport
	retrying http.RoundTripper
	progress *emitter

	mu      sync.Mutex
	clients map[string]*http.Client
}

// New returns a client configured by opts, reading the config file now.
func New(opts Options) (*Client, error) {
	cfg, err := loadConfig(opts.ConfigFile)
	if err != nil {
		return nil, err
	}
	if opts.Jobs <= 0 {
		opts.Jobs = 4
	}
	if opts.HubSearchURL == "" {
		opts.HubSearchURL = defaultHubSearchURL
	}
	base := opts.Transport
	if base == nil {
		base = http.DefaultTransport.(*http.Transport).Clone()
	}
	policy := newPolicyTransport(base, opts.RootCAs, cfg, opts.Insecure)
	return &Client{
		opts:     opts,
		cfg:      cfg,
		policy:   policy,
		retrying: newBodilessRetry(policy),
		progress: &emitter{fn: opts.Progress},
		clients:  map[string]*http.Client{},
	}, nil
}

// endpoint is one place a repository is reached at: a mirror of its
// registry, or the registry itself.
type endpoint struct {
	repo   name.Repository
	mirror bool
}

// host names the endpoint in errors: docker.io, host:port.
func (ep endpoint) host() string { return canonicalRegistry(ep.repo.RegistryStr()) }

// ref is r's tag or digest in ep's repository.
func (ep endpoint) ref(r imageRef) name.Reference {
	if r.digest != "" {
		return ep.repo.Digest(r.digest.String())
	}
	return ep.repo.Tag(r.tag)
}

// endpoints returns where r's repository is reached: with mirrors, each
// mirror of its registry in the config file's order, then the registry.
func (c *Client) endpoints(r imageRef, mirrors bool) ([]endpoint, error) {
	var eps []endpoint
	if mirrors {
		for _, u := range c.cfg.mirrors[r.domain] {
			repo, err := c.repository(u.Host, r.path)
			if err != nil {
				return nil, fmt.Errorf("mirror %s of %s: %w", u, r.domain, err)
			}
			eps = append(eps, endpoint{repo: repo, mirror: true})
		}
	}
	repo, err := c.repository(r.domain, r.path)
	if err != nil {
		return nil, err
	}
	return append(eps, endpoint{repo: repo}), nil
}

// origin returns the registry itself as r's only endpoint.
func (c *Client) origin(r imageRef) (endpoint, error) {
	eps, err := c.endpoints(r, false)
	if err != nil {
		return endpoint{}, err
	}
	return eps[0], nil
}

// registry returns go-containerregistry's name for host, marked insecure
// (so that its ping falls back to plain HTTP) when the policy allows it.
func (c *Client) registry(host string) (name.Registry, error) {
	var opts []name.Option
	if c.policy.allowsPlainHTTP(host) {
		opts = append(opts, name.Insecure)
	}
	return name.NewRegistry(host, opts...)
}

// repository returns go-containerregistry's name for path on host.
func (c *Client) repository(host, path string) (name.Repository, error) {
	reg, err := c.registry(host)
	if err != nil {
		return name.Repository{}, err
	}
	return reg.Repo(path), nil
}

// client returns an HTTP client authenticated for scopes at ep's registry,
// with credentials from the docker config: the ping and token dance happen
// on first use, and the client is kept for later calls. Requests to the
// registry itself are retried (see bodilessRetry); requests to a mirror are
// not, since falling back to the registry is faster.
func (c *Client) client(ctx context.Context, ep endpoint, scopes ...string) (*http.Client, error) {
	key := fmt.Sprintf("%t %s %s", ep.mirror, ep.repo.RegistryStr(), strings.Join(scopes, " "))
	c.mu.Lock()
	hc := c.clients[key]
	c.mu.Unlock()
	if hc != nil {
		return hc, nil
	}
	auth, err := authn.Resolve(ctx, authn.DefaultKeychain, ep.repo)
	if err != nil {
		return nil, fmt.Errorf("reading credentials for %s: %w", ep.host(), err)
	}
	base := c.retrying
	if ep.mirror {
		base = c.policy
	}
	tr, err := transport.NewWithContext(ctx, ep.repo.Registry, auth, base, scopes)
	if err != nil {
		return nil, c.policy.explainHTTPS(unauthorized(err, ep.host()), ep.repo.RegistryStr())
	}
	hc = &http.Client{Transport: tr}
	c.mu.Lock()
	c.clients[key] = hc
	c.mu.Unlock()
	return hc, nil
}

// forget drops every cached client, so that new credentials take effect.
func (c *Client) forget() {
	c.mu.Lock()
	c.clients = map[string]*http.Client{}
	c.mu.Unlock()
}

// remoteOptions are the options of a go-containerregistry call made through
// hc: its authenticated transport, used as it is.
func remoteOptions(ctx context.Context, hc *http.Client) []remote.Option {
	return []remote.Option{remote.WithContext(ctx), remote.WithTransport(hc.Transport)}
}

// pullScope is the token scope for reading ep's repository.
func pullScope(ep endpoint) string { return ep.repo.Scope(transport.PullScope) }

// blobURL is the URL of blob d in ep's repository. The scheme is
// go-containerregistry's guess; its transport replaces it with the one the
// ping found.
func blobURL(ep endpoint, d fmt.Stringer) string {
	return fmt.Sprintf("%s://%s/v2/%s/blobs/%s", ep.repo.Scheme(), ep.repo.RegistryStr(), ep.repo.RepositoryStr(), d)
}
