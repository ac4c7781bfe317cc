package registry

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	digest "github.com/opencontainers/go-digest"
)

// faultProxy is a loopback HTTP proxy in front of a registry that injects
// faults into the requests they match, and logs every request.
type faultProxy struct {
	// Host is where it listens: 127.0.0.1:PORT.
	Host   string
	target string
	tr     *http.Transport

	mu       sync.Mutex
	faults   []*fault
	requests []string
}

// fault is what happens to the requests match selects, times times (< 0:
// always). With status set the request is answered with it; otherwise it is
// forwarded and the other fields change what happens.
type fault struct {
	match func(*http.Request) bool
	times int
	// status answers the request without forwarding it.
	status int
	// cutResponse drops the connection after this many bytes of the
	// response body.
	cutResponse int64
	// cutRequest drops the connection after reading this many bytes of the
	// request body, without forwarding it.
	cutRequest int64
	// flip changes one byte in the middle of the response body.
	flip bool
	// header is added to the response.
	header http.Header
}

// startProxy starts a faultProxy in front of target (host:port), stopped
// when t ends.
func startProxy(t *testing.T, target string) *faultProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{Host: l.Addr().String(), target: target, tr: &http.Transport{}}
	srv := &http.Server{Handler: p}
	go srv.Serve(l)
	t.Cleanup(func() {
		srv.Close()
		p.tr.CloseIdleConnections()
	})
	return p
}

// inject adds faults.
func (p *faultProxy) inject(fs ...*fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = append(p.faults, fs...)
}

// clear removes every fault.
func (p *faultProxy) clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = nil
}

// checkSpent fails t unless every fault with a limited count was met as
// often as it says.
func (p *faultProxy) checkSpent(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, f := range p.faults {
		if f.times > 0 {
			t.Errorf("fault %d was met %d times fewer than planned", i, f.times)
		}
	}
}

// count returns how many logged requests contain every one of parts.
func (p *faultProxy) count(parts ...string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, r := range p.requests {
		all := true
		for _, s := range parts {
			all = all && strings.Contains(r, s)
		}
		if all {
			n++
		}
	}
	return n
}

// take logs r and returns the fault it meets, if any.
func (p *faultProxy) take(r *http.Request) *fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests = append(p.requests, fmt.Sprintf("%s %s range=%q content-range=%q", r.Method, r.URL.Path, r.Header.Get("Range"), r.Header.Get("Content-Range")))
	for _, f := range p.faults {
		if f.times != 0 && f.match(r) {
			f.times--
			return f
		}
	}
	return nil
}

// ServeHTTP implements http.Handler.
func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f := p.take(r)
	if f == nil {
		f = &fault{}
	}
	switch {
	case f.status != 0:
		http.Error(w, "injected fault", f.status)
		return
	case f.cutRequest > 0:
		io.CopyN(io.Discard, r.Body, f.cutRequest)
		panic(http.ErrAbortHandler)
	}
	out := r.Clone(r.Context())
	out.URL.Scheme, out.URL.Host, out.RequestURI = "http", p.target, ""
	out.Host = r.Host // so that the registry's Location headers point back here
	if r.ContentLength == 0 {
		out.Body = nil
	}
	resp, err := p.tr.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	for k, v := range f.header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	switch {
	case f.cutResponse > 0:
		io.CopyN(w, resp.Body, f.cutResponse)
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	case f.flip:
		body, _ := io.ReadAll(resp.Body)
		if len(body) > 0 {
			body[len(body)/2] ^= 0xff
		}
		w.Write(body)
	default:
		io.Copy(w, resp.Body)
	}
}

// blobGet matches GETs of the blob d.
func blobGet(d digest.Digest) func(*http.Request) bool {
	return func(r *http.Request) bool {
		return r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+d.String())
	}
}

// manifestGet matches GETs of any manifest.
func manifestGet(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/manifests/")
}

// method matches requests of method m.
func method(m string) func(*http.Request) bool {
	return func(r *http.Request) bool { return r.Method == m }
}

// uploadStart matches the POST that opens an upload session.
func uploadStart(r *http.Request) bool {
	return r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/blobs/uploads/")
}
