package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/sethvargo/go-envconfig"
)

// healthcheckTimeout bounds the whole check: a container runtime runs it
// every few seconds, and a hung relay must fail it, not stall it.
const healthcheckTimeout = 2 * time.Second

// healthConfig is all healthcheck reads of the environment: where serve
// would serve /healthz. It needs no DATABASE_URL and ignores the rest, so
// that a health check never fails on a setting serve does not use here.
type healthConfig struct {
	ListenAddr  string `env:"BELLHOP_LISTEN_ADDR, default=:8080"`
	OpsAddr     string `env:"BELLHOP_OPS_ADDR"`
	TLSCertFile string `env:"BELLHOP_TLS_CERT_FILE"`
}

// healthcheck asks a running relay's /healthz and fails unless it answers
// 200. It is the container image's health check: the image has no shell
// and no curl. The address is --url, else BELLHOP_OPS_ADDR (where serve
// moves /healthz when it is set), else BELLHOP_LISTEN_ADDR, with an
// unspecified host (":8080", "0.0.0.0:8080") asked on loopback.
func healthcheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	rawURL := fs.String("url", "", "the URL to ask, e.g. http://127.0.0.1:9090/healthz (default: /healthz on BELLHOP_OPS_ADDR, else BELLHOP_LISTEN_ADDR)")
	timeout := fs.Duration("timeout", healthcheckTimeout, "how long to wait for the answer")
	if err := parseFlags(fs, args, stdout, "healthcheck [--url URL] [--timeout 2s]",
		"exit 0 when a running relay's /healthz answers 200 (the container image's health check)."); err != nil {
		return err
	}
	target, source, self, err := healthURL(ctx, *rawURL)
	if err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %s: %w", source, err)
	}
	client := &http.Client{
		// The relay is asked directly: an HTTP_PROXY in the container's
		// environment is for the application, not for this.
		// Its own HTTPS listener is asked on loopback, which its certificate
		// does not name: the answer is checked, not the certificate.
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true, TLSClientConfig: &tls.Config{InsecureSkipVerify: self}},
		// A redirect is not an answer from /healthz.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	res, err := client.Do(req)
	if err != nil {
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			return fmt.Errorf("healthcheck: GET %s: connection refused: no relay listens there (the address comes from %s; is `relay serve` running with the same settings?)", target, source)
		case errors.Is(err, context.DeadlineExceeded):
			return fmt.Errorf("healthcheck: GET %s: no answer within %s (the address comes from %s)", target, *timeout, source)
		}
		return fmt.Errorf("healthcheck: GET %s (from %s): %w", target, source, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 512))
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: GET %s answered %s, want 200 OK: %s", target, res.Status, strings.TrimSpace(string(body)))
	}
	fmt.Fprintf(stdout, "healthy: GET %s answered %s\n", target, res.Status)
	return nil
}

// healthURL is the URL to ask and where it came from, for the messages;
// self when it is serve's own HTTPS listener (BELLHOP_TLS_CERT_FILE set
// and no BELLHOP_OPS_ADDR, which stays plain HTTP).
func healthURL(ctx context.Context, rawURL string) (target, source string, self bool, err error) {
	if rawURL != "" {
		u, err := url.Parse(rawURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return "", "", false, fmt.Errorf("healthcheck: --url %q is not an http:// or https:// URL, e.g. http://127.0.0.1:8080/healthz", rawURL)
		}
		if u.Path == "" || u.Path == "/" {
			u.Path = "/healthz"
		}
		return u.String(), "--url", false, nil
	}
	var hc healthConfig
	if err := envconfig.Process(ctx, &hc); err != nil {
		return "", "", false, fmt.Errorf("healthcheck: configuration: %w", err)
	}
	addr, source, scheme := hc.ListenAddr, "BELLHOP_LISTEN_ADDR", "http"
	if hc.TLSCertFile != "" {
		source, scheme = "BELLHOP_LISTEN_ADDR, with BELLHOP_TLS_CERT_FILE", "https"
	}
	if hc.OpsAddr != "" {
		addr, source, scheme = hc.OpsAddr, "BELLHOP_OPS_ADDR", "http"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", "", false, fmt.Errorf("healthcheck: %s=%q is not host:port, e.g. :8080: %w", source, addr, err)
	}
	// serve listening on every interface is asked on loopback: the check
	// runs beside it (in its container, on its machine).
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	u := url.URL{Scheme: scheme, Host: net.JoinHostPort(host, port), Path: "/healthz"}
	return u.String(), source, scheme == "https", nil
}
