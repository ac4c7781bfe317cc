package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// retryBackoff paces retries of failed requests and restarted transfers:
// waits of 1 s, 2 s and 4 s, then the error stands. Tests shorten it.
var retryBackoff = transport.Backoff{Duration: time.Second, Factor: 2, Jitter: 0.1, Steps: 4}

// retryStatus are the answers a request is retried on.
var retryStatus = []int{
	http.StatusRequestTimeout,
	http.StatusTooManyRequests,
	http.StatusInternalServerError,
	http.StatusBadGateway,
	http.StatusServiceUnavailable,
	http.StatusGatewayTimeout,
}

// policyTransport enforces which hosts may be spoken to over plain HTTP and
// which get unverified TLS, and sends each request through the matching
// base transport.
type policyTransport struct {
	cfg *config
	// all makes every host insecure (Options.Insecure).
	all bool
	// verified and unverified differ only in certificate verification.
	verified, unverified http.RoundTripper
}

// newPolicyTransport wraps base (nil: a clone of http.DefaultTransport).
// When base is an *http.Transport, the verified copy trusts roots (nil: the
// system's) and the unverified copy skips verification; any other base is
// used as it is for both.
func newPolicyTransport(base http.RoundTripper, roots *x509.CertPool, cfg *config, all bool) *policyTransport {
	if base == nil {
		base = http.DefaultTransport
	}
	pt := &policyTransport{cfg: cfg, all: all, verified: base, unverified: base}
	if ht, ok := base.(*http.Transport); ok {
		v, u := ht.Clone(), ht.Clone()
		v.TLSClientConfig = tlsConfig(v.TLSClientConfig)
		if roots != nil {
			v.TLSClientConfig.RootCAs = roots
		}
		u.TLSClientConfig = tlsConfig(u.TLSClientConfig)
		u.TLSClientConfig.InsecureSkipVerify = true
		pt.verified, pt.unverified = v, u
	}
	return pt
}

// tlsConfig returns a copy of c, or a new config.
func tlsConfig(c *tls.Config) *tls.Config {
	if c == nil {
		return &tls.Config{}
	}
	return c.Clone()
}

// RoundTrip implements http.RoundTripper.
func (t *policyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	host := req.URL.Host
	insecure := t.all || t.cfg.isInsecure(host)
	if req.URL.Scheme == "http" && !insecure && !t.cfg.plainHTTP[host] {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("refusing plain HTTP to %s: %s", host, insecureHint)
	}
	if insecure {
		return t.unverified.RoundTrip(req)
	}
	return t.verified.RoundTrip(req)
}

// insecureHint tells how to let builder speak plain HTTP to a registry.
const insecureHint = "it is not an insecure registry (list it in insecure-registries of builder's config.toml, or use --tls-verify=false)"

// explainHTTPS adds insecureHint to err when host answered HTTPS in plain
// HTTP and is not allowed plain HTTP.
func (t *policyTransport) explainHTTPS(err error, host string) error {
	if err != nil && !t.allowsPlainHTTP(host) && strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		return fmt.Errorf("%w: %s speaks plain HTTP, but %s", err, host, insecureHint)
	}
	return err
}

// allowsPlainHTTP reports whether host may be spoken to over plain HTTP.
func (t *policyTransport) allowsPlainHTTP(host string) bool {
	return t.all || t.cfg.allowsPlainHTTP(host)
}

// bodilessRetry retries requests without a body through retry and sends the
// others, whose body a retry could not replay, through plain: their callers
// start the whole transfer again instead.
type bodilessRetry struct {
	retry, plain http.RoundTripper
}

func newBodilessRetry(base http.RoundTripper) *bodilessRetry {
	return &bodilessRetry{
		retry: transport.NewRetry(base, transport.WithRetryBackoff(retryBackoff),
			transport.WithRetryPredicate(retryable), transport.WithRetryStatusCodes(retryStatus...)),
		plain: base,
	}
}

// RoundTrip implements http.RoundTripper.
func (t *bodilessRetry) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return t.retry.RoundTrip(req)
	}
	return t.plain.RoundTrip(req)
}

// temporary reports whether err is a network failure worth trying again:
// a reset or broken connection, a body cut short, a timeout. A refused
// connection is not: nothing listens there.
func temporary(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed)
}

// retryable reports whether a failed transfer is worth starting again:
// a temporary network failure, or an answer in retryStatus.
func retryable(err error) bool {
	var te *transport.Error
	if errors.As(err, &te) {
		for _, code := range retryStatus {
			if te.StatusCode == code {
				return true
			}
		}
		return false
	}
	return temporary(err)
}

// sleep waits for the n-th (from 0) backoff step, or until ctx is done.
func sleep(ctx context.Context, n int) error {
	d := retryBackoff.Duration
	for range n {
		d = time.Duration(float64(d) * retryBackoff.Factor)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
