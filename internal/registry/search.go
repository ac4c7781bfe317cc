package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// SearchOptions configure Search.
type SearchOptions struct {
	// Limit is the most results returned; ≤ 0 means 25, as in docker.
	Limit int
}

// SearchResult is one repository found by Search.
type SearchResult struct {
	// Name is the repository: as Docker Hub names it (nginx,
	// bitnami/nginx), or host:port/path for another registry, so that it
	// can be pulled as it is.
	Name string
	// Description, Stars and Official come from Docker Hub; other
	// registries leave them empty.
	Description string
	Stars       int
	Official    bool
}

// catalogPage is how many repositories Search asks a registry for at once;
// tests shrink it.
var catalogPage = 100

// Search finds repositories matching a term. registryAndTerm is the term
// ("nginx", searched on Docker Hub), or a registry and a term
// ("host:5000/web"). Docker Hub is asked through its search API
// (Options.HubSearchURL); any other registry has its catalog (/v2/_catalog)
// read page by page and filtered to the names containing the term, case
// ignored.
func (c *Client) Search(ctx context.Context, registryAndTerm string, opts SearchOptions) ([]SearchResult, error) {
	host, term := dockerHub, registryAndTerm
	if i := strings.Index(registryAndTerm, "/"); i > 0 {
		if h := registryAndTerm[:i]; strings.ContainsAny(h, ".:") || h == "localhost" {
			host, term = canonicalRegistry(h), registryAndTerm[i+1:]
		}
	}
	if opts.Limit <= 0 {
		opts.Limit = 25
	}
	var res []SearchResult
	var err error
	if host == dockerHub {
		res, err = c.searchHub(ctx, term, opts.Limit)
	} else {
		res, err = c.searchCatalog(ctx, host, term, opts.Limit)
	}
	if err != nil {
		return nil, fmt.Errorf("searching %s for %q: %w", host, term, err)
	}
	return res, nil
}

// searchHub asks Docker Hub's search API.
func (c *Client) searchHub(ctx context.Context, term string, limit int) ([]SearchResult, error) {
	u := c.opts.HubSearchURL + "?" + url.Values{"q": {term}, "n": {strconv.Itoa(min(limit, 100))}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Transport: c.retrying}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		return nil, err
	}
	var body struct {
		Results []struct {
			Name        string `json:"name"`
			Description string `json:"description"`
			StarCount   int    `json:"star_count"`
			IsOfficial  bool   `json:"is_official"`
		} `json:"results"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("decoding Docker Hub's answer: %w", err)
	}
	var res []SearchResult
	for _, r := range body.Results {
		if len(res) == limit {
			break
		}
		res = append(res, SearchResult{Name: r.Name, Description: r.Description, Stars: r.StarCount, Official: r.IsOfficial})
	}
	return res, nil
}

// searchCatalog reads host's catalog until limit names contain term.
func (c *Client) searchCatalog(ctx context.Context, host, term string, limit int) ([]SearchResult, error) {
	reg, err := c.registry(host)
	if err != nil {
		return nil, err
	}
	ep := endpoint{repo: reg.Repo("")}
	hc, err := c.client(ctx, ep, reg.Scope("*"))
	if err != nil {
		return nil, err
	}
	term = strings.ToLower(term)
	var res []SearchResult
	last := ""
	for len(res) < limit {
		page, err := remote.CatalogPage(reg, last, catalogPage, remoteOptions(ctx, hc)...)
		if err != nil {
			return nil, unauthorized(err, host)
		}
		for _, name := range page {
			if len(res) < limit && strings.Contains(strings.ToLower(name), term) {
				res = append(res, SearchResult{Name: host + "/" + name})
			}
		}
		if len(page) < catalogPage {
			break
		}
		last = page[len(page)-1]
	}
	return res, nil
}

// ListTags returns the tags of the repository repo (app, host:5000/x),
// every page of them, from the registry itself, sorted.
func (c *Client) ListTags(ctx context.Context, repo string) ([]string, error) {
	r, err := parseRepo(repo)
	if err != nil {
		return nil, fmt.Errorf("listing tags: %w", err)
	}
	ep, err := c.origin(r)
	if err != nil {
		return nil, fmt.Errorf("listing tags of %s: %w", r.repo(), err)
	}
	hc, err := c.client(ctx, ep, pullScope(ep))
	if err != nil {
		return nil, fmt.Errorf("listing tags of %s: %w", r.repo(), err)
	}
	tags, err := remote.List(ep.repo, remoteOptions(ctx, hc)...)
	if err != nil {
		return nil, fmt.Errorf("listing tags of %s: %w", r.repo(), unauthorized(err, ep.host()))
	}
	slices.Sort(tags)
	return tags, nil
}
