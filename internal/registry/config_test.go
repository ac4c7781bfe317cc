package registry

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigFile(t *testing.T) {
	t.Parallel()
	cfg, err := loadConfig(writeConfig(t, `
insecure-registries = ["registry.lan:5000", "https://other.lan/", "plain.lan", "10.0.0.0/8"]

[registry-mirrors]
"docker.io" = ["https://mirror.example", "http://10.0.0.5:5000"]
"quay.io" = ["https://quay-mirror.example/"]

[build]
something = "for another package"
`))
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]bool{
		"registry.lan:5000": true, "registry.lan:5001": false, "registry.lan": false,
		"other.lan": true, "plain.lan": true, "plain.lan:443": true,
		"10.1.2.3:5000": true, "11.1.2.3:5000": false, "192.168.1.5": false,
		"localhost": true, "localhost:5000": true, "127.0.0.1:5000": true, "127.1.2.3": true, "[::1]:5000": true,
		"example.com": false, "docker.io": false,
	} {
		if got := cfg.isInsecure(host); got != want {
			t.Errorf("isInsecure(%s) = %t, want %t", host, got, want)
		}
	}
	if !cfg.allowsPlainHTTP("10.0.0.5:5000") || cfg.allowsPlainHTTP("mirror.example") {
		t.Error("plain HTTP is allowed to the wrong mirrors")
	}
	if m := cfg.mirrors["docker.io"]; len(m) != 2 || m[0].Host != "mirror.example" || m[1].Host != "10.0.0.5:5000" {
		t.Errorf("docker.io mirrors: %v", m)
	}
	if m := cfg.mirrors["quay.io"]; len(m) != 1 || m[0].String() != "https://quay-mirror.example/" {
		t.Errorf("quay.io mirrors: %v", m)
	}

	for _, bad := range []string{
		`insecure-registries = ["10.0.0.0/33"]`,
		`insecure-registries = [""]`,
		`[registry-mirrors]` + "\n" + `"docker.io" = ["ftp://mirror"]`,
		`[registry-mirrors]` + "\n" + `"docker.io" = ["https://mirror/v2/hub"]`,
		`insecure-registries = "not a list"`,
		"[registry-mirrors]\n\"docker.io\" = []\n\"index.docker.io\" = []", // one registry, two names
	} {
		if _, err := loadConfig(writeConfig(t, bad)); err == nil {
			t.Errorf("config %q accepted", bad)
		}
	}
	if _, err := loadConfig(filepath.Join(t.TempDir(), "missing.toml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing config file given explicitly: %v", err)
	}
}

func TestDefaultConfigFiles(t *testing.T) {
	dir := t.TempDir()
	old := systemConfigFile
	systemConfigFile = filepath.Join(dir, "etc.toml")
	defer func() { systemConfigFile = old }()
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "xdg"))

	// Neither exists: an empty config.
	cfg, err := loadConfig("")
	if err != nil || len(cfg.insecure) != 0 || len(cfg.mirrors) != 0 {
		t.Fatalf("no config files: %+v, %v", cfg, err)
	}
	os.WriteFile(systemConfigFile, []byte(`insecure-registries = ["sys.lan"]`+"\n[registry-mirrors]\n\"docker.io\" = [\"https://sys-mirror\"]\n\"quay.io\" = [\"https://q\"]\n"), 0o644)
	os.MkdirAll(filepath.Join(dir, "xdg", "builder"), 0o755)
	os.WriteFile(filepath.Join(dir, "xdg", "builder", "config.toml"), []byte(`insecure-registries = ["user.lan"]`+"\n[registry-mirrors]\n\"docker.io\" = [\"https://user-mirror\"]\n"), 0o644)
	cfg, err = loadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.isInsecure("sys.lan") || !cfg.isInsecure("user.lan") {
		t.Error("insecure-registries of both files are not merged")
	}
	if m := cfg.mirrors["docker.io"]; len(m) != 1 || m[0].Host != "user-mirror" {
		t.Errorf("the user's mirrors do not replace the system's: %v", m)
	}
	if len(cfg.mirrors["quay.io"]) != 1 {
		t.Error("the system's mirrors of another registry are lost")
	}
	os.WriteFile(systemConfigFile, []byte("not toml ["), 0o644)
	if _, err := loadConfig(""); err == nil || !strings.Contains(err.Error(), systemConfigFile) {
		t.Errorf("a broken system config: %v", err)
	}
}

func TestParseRef(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, full, repo, familiar string }{
		{"app", "docker.io/library/app:latest", "docker.io/library/app", "app:latest"},
		{"app:1", "docker.io/library/app:1", "docker.io/library/app", "app:1"},
		{"user/app", "docker.io/user/app:latest", "docker.io/user/app", "user/app:latest"},
		{"localhost:5000/x", "localhost:5000/x:latest", "localhost:5000/x", "localhost:5000/x:latest"},
		{"127.0.0.1:5000/a/b:2", "127.0.0.1:5000/a/b:2", "127.0.0.1:5000/a/b", "127.0.0.1:5000/a/b:2"},
		{"app@sha256:" + strings.Repeat("a", 64), "docker.io/library/app@sha256:" + strings.Repeat("a", 64), "docker.io/library/app", "app@sha256:" + strings.Repeat("a", 64)},
	} {
		r, err := parseRef(tc.in)
		if err != nil {
			t.Errorf("parseRef(%q): %v", tc.in, err)
			continue
		}
		if r.String() != tc.full || r.repo() != tc.repo || r.familiar() != tc.familiar {
			t.Errorf("parseRef(%q) = %s, %s, %s; want %s, %s, %s", tc.in, r, r.repo(), r.familiar(), tc.full, tc.repo, tc.familiar)
		}
	}
	for _, bad := range []string{"", "UPPER", "app:", "a@sha256:short"} {
		if _, err := parseRef(bad); err == nil {
			t.Errorf("parseRef(%q) accepted", bad)
		}
	}
}

// recordingTransport records the hosts it is asked for.
type recordingTransport struct{ hosts []string }

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r.hosts = append(r.hosts, req.URL.Host)
	return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: req}, nil
}

func TestPlainHTTPPolicy(t *testing.T) {
	t.Parallel()
	cfg, err := loadConfig(writeConfig(t, `insecure-registries = ["registry.lan:5000"]`+"\n[registry-mirrors]\n\"docker.io\" = [\"http://mirror.lan\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	rec := &recordingTransport{}
	pt := newPolicyTransport(rec, nil, cfg, false)
	for url, ok := range map[string]bool{
		"http://127.0.0.1:5000/v2/": true, "http://localhost:5000/v2/": true, "http://registry.lan:5000/v2/": true,
		"http://mirror.lan/v2/": true, "https://example.com/v2/": true,
		"http://10.0.0.5:5000/v2/": false, "http://example.com/v2/": false, "http://registry.lan:5001/v2/": false,
	} {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		_, err := pt.RoundTrip(req)
		if ok != (err == nil) || (!ok && !strings.Contains(err.Error(), "refusing plain HTTP")) {
			t.Errorf("%s: %v", url, err)
		}
	}
	all := newPolicyTransport(rec, nil, cfg, true)
	req, _ := http.NewRequest(http.MethodGet, "http://10.0.0.5:5000/v2/", nil)
	if _, err := all.RoundTrip(req); err != nil {
		t.Errorf("plain HTTP refused with Insecure: %v", err)
	}
}
