package registry

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"
)

// fileConfig is the part of builder's config.toml this package reads.
type fileConfig struct {
	InsecureRegistries []string            `toml:"insecure-registries"`
	RegistryMirrors    map[string][]string `toml:"registry-mirrors"`
}

// config is what the config file says about registries, checked.
type config struct {
	// insecure holds "host:port" and "host" entries of insecure-registries.
	insecure map[string]bool
	// insecureNets holds its CIDR entries.
	insecureNets []*net.IPNet
	// mirrors maps a registry (docker.io, host:port) to its mirrors, in order.
	mirrors map[string][]*url.URL
	// plainHTTP holds the hosts of http:// mirrors.
	plainHTTP map[string]bool
}

// systemConfigFile is the config file read before the user's; tests move it.
var systemConfigFile = "/etc/builder/config.toml"

// defaultConfigFiles returns the config files read when Options.ConfigFile
// is empty, in order: the system's, then the user's.
func defaultConfigFiles() []string {
	files := []string{systemConfigFile}
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		if home, err := os.UserHomeDir(); err == nil {
			dir = filepath.Join(home, ".config")
		}
	}
	if dir != "" {
		files = append(files, filepath.Join(dir, "builder", "config.toml"))
	}
	return files
}

// loadConfig reads the config file path, which must exist, or, when path is
// "", the default files that exist.
func loadConfig(path string) (*config, error) {
	cfg := &config{insecure: map[string]bool{}, mirrors: map[string][]*url.URL{}, plainHTTP: map[string]bool{}}
	if path != "" {
		return cfg, cfg.read(path)
	}
	for _, p := range defaultConfigFiles() {
		if err := cfg.read(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	return cfg, nil
}

// read merges the config file path into cfg.
func (cfg *config) read(path string) error {
	var fc fileConfig
	if _, err := toml.DecodeFile(path, &fc); err != nil {
		return fmt.Errorf("reading registry config %s: %w", path, err)
	}
	for _, e := range fc.InsecureRegistries {
		if err := cfg.addInsecure(e); err != nil {
			return fmt.Errorf("reading registry config %s: insecure-registries: %w", path, err)
		}
	}
	seen := map[string]string{}
	for reg, list := range fc.RegistryMirrors {
		if other, dup := seen[canonicalRegistry(reg)]; dup {
			return fmt.Errorf("reading registry config %s: registry-mirrors: %q and %q name the same registry", path, other, reg)
		}
		seen[canonicalRegistry(reg)] = reg
		var urls []*url.URL
		for _, m := range list {
			u, err := parseMirror(m)
			if err != nil {
				return fmt.Errorf("reading registry config %s: registry-mirrors.%q: %w", path, reg, err)
			}
			if u.Scheme == "http" {
				cfg.plainHTTP[u.Host] = true
			}
			urls = append(urls, u)
		}
		cfg.mirrors[canonicalRegistry(reg)] = urls
	}
	return nil
}

// addInsecure records one insecure-registries entry.
func (cfg *config) addInsecure(e string) error {
	e = strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(e, "http://"), "https://"), "/")
	if strings.Contains(e, "/") {
		_, n, err := net.ParseCIDR(e)
		if err != nil {
			return fmt.Errorf("%q is neither host[:port] nor a CIDR", e)
		}
		cfg.insecureNets = append(cfg.insecureNets, n)
		return nil
	}
	if e == "" {
		return errors.New("empty entry")
	}
	cfg.insecure[canonicalRegistry(e)] = true
	return nil
}

// parseMirror checks a mirror URL: http or https, a host, no path.
func parseMirror(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("mirror %q: want an http:// or https:// URL", s)
	}
	if u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return nil, fmt.Errorf("mirror %q: want scheme://host[:port] with no path", s)
	}
	return u, nil
}

// isInsecure reports whether host (host[:port], as in a URL) is an insecure
// registry by the config file or by being a loopback address.
func (cfg *config) isInsecure(host string) bool {
	host = canonicalRegistry(host)
	if isLoopback(host) || cfg.insecure[host] {
		return true
	}
	h := hostOnly(host)
	if cfg.insecure[h] {
		return true
	}
	if ip := net.ParseIP(h); ip != nil {
		for _, n := range cfg.insecureNets {
			if n.Contains(ip) {
				return true
			}
		}
	}
	return false
}

// allowsPlainHTTP reports whether host may be spoken to over plain HTTP.
func (cfg *config) allowsPlainHTTP(host string) bool {
	return cfg.isInsecure(host) || cfg.plainHTTP[host]
}

// hostOnly strips the port from host[:port].
func hostOnly(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return strings.Trim(host, "[]")
}

// isLoopback reports whether host[:port] is localhost or a loopback address.
func isLoopback(host string) bool {
	h := hostOnly(host)
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// canonicalRegistry names Docker Hub "docker.io" whatever it was called.
func canonicalRegistry(host string) string {
	switch host {
	case "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com":
		return dockerHub
	}
	return host
}
