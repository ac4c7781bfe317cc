package registry

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
)

func TestSearchCatalog(t *testing.T) {
	reg, c, src := start(t)
	img := makeImage(t, src, imageSpec{author: "search", files: []fileLayer{{"f", []byte("f")}}})
	for _, repo := range []string{"team/web", "team/api", "other/db", "web-legacy", "zz/website"} {
		pushImage(t, c, src, img, reg.Host+"/"+repo+":1")
	}
	old := catalogPage
	catalogPage = 2 // several pages
	defer func() { catalogPage = old }()
	ctx := context.Background()

	res, err := c.Search(ctx, reg.Host+"/WEB", SearchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range res {
		names = append(names, r.Name)
	}
	want := []string{reg.Host + "/team/web", reg.Host + "/web-legacy", reg.Host + "/zz/website"}
	if !slices.Equal(names, want) {
		t.Errorf("search found %v, want %v", names, want)
	}
	if res, err := c.Search(ctx, reg.Host+"/web", SearchOptions{Limit: 1}); err != nil || len(res) != 1 {
		t.Errorf("search with limit 1: %v, %v", res, err)
	}
	if res, err := c.Search(ctx, reg.Host+"/", SearchOptions{}); err != nil || len(res) != 5 {
		t.Errorf("search for everything: %v, %v", res, err)
	}
}

func TestSearchDockerHub(t *testing.T) {
	t.Parallel()
	var gotQuery, gotN string
	hub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/search" {
			http.NotFound(w, r)
			return
		}
		gotQuery, gotN = r.URL.Query().Get("q"), r.URL.Query().Get("n")
		json.NewEncoder(w).Encode(map[string]any{"num_results": 2, "results": []map[string]any{
			{"name": "nginx", "description": "Official build of Nginx.", "star_count": 20000, "is_official": true},
			{"name": "bitnami/nginx", "description": "Bitnami nginx", "star_count": 190, "is_official": false},
		}})
	}))
	defer hub.Close()
	c := newClient(t, Options{HubSearchURL: hub.URL + "/v1/search"}, nil)
	res, err := c.Search(context.Background(), "nginx", SearchOptions{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	want := []SearchResult{
		{Name: "nginx", Description: "Official build of Nginx.", Stars: 20000, Official: true},
		{Name: "bitnami/nginx", Description: "Bitnami nginx", Stars: 190},
	}
	if !slices.Equal(res, want) || gotQuery != "nginx" || gotN != "10" {
		t.Errorf("search gave %+v for q=%q n=%q", res, gotQuery, gotN)
	}
	if res, err := c.Search(context.Background(), "docker.io/nginx", SearchOptions{Limit: 1}); err != nil || len(res) != 1 || gotN != "1" {
		t.Errorf("search docker.io/nginx: %+v, %v", res, err)
	}
}
