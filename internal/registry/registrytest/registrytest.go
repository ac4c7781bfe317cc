// Package registrytest runs a real registry for tests: the CNCF Distribution
// registry (docker-registry), on 127.0.0.1, for one test, over plain HTTP,
// with htpasswd authentication, or over TLS with a certificate from a CA
// made for the test.
package registrytest

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/builder-project/builder/internal/testutil"
)

// Registry is a running docker-registry.
type Registry struct {
	// Host is where it listens: 127.0.0.1:PORT.
	Host string
	// Dir holds its config, storage, htpasswd file and certificates.
	Dir string
	// CA is the certificate authority its TLS certificate is signed by;
	// nil without WithTLS.
	CA *x509.CertPool
	// CAFile is CA in PEM; "" without WithTLS.
	CAFile string
}

// settings are what Options change.
type settings struct {
	user, password string
	tlsNames       []string
	tls            bool
}

// Option configures Start.
type Option func(*settings)

// WithHtpasswd makes the registry require user and password (basic
// authentication against an htpasswd file made with htpasswd -Bbn).
func WithHtpasswd(user, password string) Option {
	return func(s *settings) { s.user, s.password = user, password }
}

// WithTLS makes the registry serve HTTPS with a certificate for 127.0.0.1,
// localhost and names, signed by a CA made for the test (Registry.CA).
func WithTLS(names ...string) Option {
	return func(s *settings) { s.tls, s.tlsNames = true, names }
}

// Start runs docker-registry serve on a free port of 127.0.0.1 with a fresh
// storage directory, waits until /v2/ answers, and stops it when t ends.
// Without docker-registry (or htpasswd, for WithHtpasswd) on PATH the test
// is skipped, or fails under CI=true.
func Start(t testing.TB, opts ...Option) *Registry {
	t.Helper()
	var s settings
	for _, o := range opts {
		o(&s)
	}
	bin := testutil.RequireTool(t, "docker-registry")
	dir := t.TempDir()
	reg := &Registry{Dir: dir}
	cfg := "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n" +
		"storage:\n  filesystem:\n    rootdirectory: " + filepath.Join(dir, "data") + "\n  delete:\n    enabled: true\n" +
		"  maintenance:\n    uploadpurging:\n      enabled: false\n"
	httpCfg := "http:\n  secret: registrytest\n"
	if s.user != "" {
		htpasswd := testutil.RequireTool(t, "htpasswd")
		out, err := exec.Command(htpasswd, "-Bbn", s.user, s.password).Output()
		if err != nil {
			t.Fatalf("htpasswd: %v", err)
		}
		write(t, filepath.Join(dir, "htpasswd"), out)
		cfg += "auth:\n  htpasswd:\n    realm: registrytest\n    path: " + filepath.Join(dir, "htpasswd") + "\n"
	}
	scheme := "http"
	if s.tls {
		scheme = "https"
		reg.CAFile, reg.CA = makeCerts(t, dir, append([]string{"localhost"}, s.tlsNames...))
		httpCfg += "  tls:\n    certificate: " + filepath.Join(dir, "server.pem") + "\n    key: " + filepath.Join(dir, "server-key.pem") + "\n"
	}

	var lastErr error
	for range 5 {
		reg.Host = net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
		conf := filepath.Join(dir, "config.yml")
		write(t, conf, []byte(cfg+httpCfg+"  addr: "+reg.Host+"\n"))
		if lastErr = reg.run(t, bin, conf, scheme); lastErr == nil {
			return reg
		}
	}
	t.Fatalf("starting docker-registry: %v", lastErr)
	return nil
}

// run starts the registry and waits for it; a registry that exits first
// (its port taken meanwhile) is an error.
func (reg *Registry) run(t testing.TB, bin, conf, scheme string) error {
	var logs testutil.SyncBuffer
	cmd := exec.Command(bin, "serve", conf)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: reg.CA}}}
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("docker-registry exited (%v): %s", err, logs.String())
		default:
		}
		if resp, err := client.Get(scheme + "://" + reg.Host + "/v2/"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				break
			}
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			return fmt.Errorf("docker-registry did not answer on %s: %s", reg.Host, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if out := strings.TrimSpace(logs.String()); t.Failed() && out != "" {
			lines := strings.Split(out, "\n")
			t.Logf("docker-registry on %s said, last:\n%s", reg.Host, strings.Join(lines[max(0, len(lines)-20):], "\n"))
		}
	})
	return nil
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func write(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
