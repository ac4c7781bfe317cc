package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	dockerconfig "github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/configfile"
	"github.com/docker/cli/cli/config/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// ErrUnauthorized means a registry refused the credentials builder sent, or
// wanted some and got none. Errors wrapping it read "unauthorized:
// authentication required for REGISTRY (run builder login REGISTRY)".
var ErrUnauthorized = errors.New("unauthorized")

// unauthorized turns a registry's 401 into an error wrapping ErrUnauthorized
// that names host; other errors pass unchanged.
func unauthorized(err error, host string) error {
	if !isUnauthorized(err) {
		return err
	}
	return fmt.Errorf("%w: authentication required for %s (run builder login %s)", ErrUnauthorized, host, host)
}

// isUnauthorized reports whether err is a registry's or token server's 401.
func isUnauthorized(err error) bool {
	var te *transport.Error
	if !errors.As(err, &te) {
		return false
	}
	if te.StatusCode == http.StatusUnauthorized {
		return true
	}
	for _, d := range te.Errors {
		if d.Code == transport.UnauthorizedErrorCode {
			return true
		}
	}
	return false
}

// Login checks user and password against registry ("" or docker.io for
// Docker Hub, else host[:port]) with a /v2/ ping and whatever token dance it
// asks for, then stores them in the docker config ($DOCKER_CONFIG/config.json,
// else ~/.docker/config.json), through the credential helper its credsStore
// or credHelpers name when there is one, as docker login does. Refused
// credentials give an error wrapping ErrUnauthorized that names the registry.
func (c *Client) Login(ctx context.Context, registry, user, password string) error {
	host, key := loginHost(registry)
	if err := c.checkLogin(ctx, host, user, password); err != nil {
		return fmt.Errorf("logging in to %s: %w", host, err)
	}
	cf, err := loadDockerConfig()
	if err != nil {
		return fmt.Errorf("logging in to %s: %w", host, err)
	}
	auth := types.AuthConfig{Username: user, Password: password, ServerAddress: key}
	if helper := credentialHelper(cf, key); helper != "" {
		err = cf.GetCredentialsStore(key).Store(auth)
	} else {
		// The file store of docker/cli would print a warning on stderr;
		// writing the entry ourselves keeps the library quiet.
		cf.GetAuthConfigs()[key] = auth
		err = cf.Save()
	}
	if err != nil {
		return fmt.Errorf("storing credentials for %s in %s: %w", host, cf.Filename, err)
	}
	c.forget()
	return nil
}

// checkLogin pings host's /v2/ with user and password.
func (c *Client) checkLogin(ctx context.Context, host, user, password string) error {
	reg, err := c.registry(host)
	if err != nil {
		return err
	}
	auth := authn.FromConfig(authn.AuthConfig{Username: user, Password: password})
	tr, err := transport.NewWithContext(ctx, reg, auth, c.retrying, nil)
	if err != nil {
		if isUnauthorized(err) {
			return fmt.Errorf("%w: incorrect username or password for %s", ErrUnauthorized, host)
		}
		return c.policy.explainHTTPS(err, reg.RegistryStr())
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, reg.Scheme()+"://"+reg.RegistryStr()+"/v2/", nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		if isUnauthorized(err) {
			return fmt.Errorf("%w: incorrect username or password for %s", ErrUnauthorized, host)
		}
		return err
	}
	return nil
}

// Logout removes the credentials stored for registry (as given to Login),
// from the credential helper too when one holds them. It is an error when
// none are stored, as in docker: "Not logged in to REGISTRY". A Client that
// has already spoken to the registry keeps the credentials it used.
func Logout(registry string) error {
	host, key := loginHost(registry)
	cf, err := loadDockerConfig()
	if err != nil {
		return fmt.Errorf("logging out of %s: %w", host, err)
	}
	store := cf.GetCredentialsStore(key)
	_, inFile := cf.GetAuthConfigs()[key]
	stored, err := store.Get(key)
	if err != nil {
		return fmt.Errorf("logging out of %s: %w", host, err)
	}
	if !inFile && stored == (types.AuthConfig{ServerAddress: stored.ServerAddress}) {
		return fmt.Errorf("Not logged in to %s", host) // docker's words
	}
	if err := store.Erase(key); err != nil {
		return fmt.Errorf("logging out of %s: %w", host, err)
	}
	return nil
}

// loadDockerConfig reads the docker config from $DOCKER_CONFIG, else
// ~/.docker. A missing file is an empty config, saved there when changed.
func loadDockerConfig() (*configfile.ConfigFile, error) {
	dir := os.Getenv("DOCKER_CONFIG")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, fmt.Errorf("finding the docker config: %w", err)
		}
		dir = filepath.Join(home, ".docker")
	}
	return dockerconfig.Load(dir)
}

// credentialHelper is the credential helper the docker config names for key,
// "" when credentials live in the file itself.
func credentialHelper(cf *configfile.ConfigFile, key string) string {
	if h := cf.CredentialHelpers[key]; h != "" {
		return h
	}
	return cf.CredentialsStore
}
