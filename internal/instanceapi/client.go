package instanceapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Client queries instance managers over mutual TLS.
type Client struct {
	http *http.Client
	// watch shares http's connections but not its timeout: a watch is
	// held open up to WatchWait, bounded by its context.
	watch *http.Client
}

// NewClient returns a client that trusts serverCA for the instances'
// certificates and presents clientCert. ServerName is what the instances'
// certificate is verified against (e.g. "localhost").
func NewClient(serverCA *x509.CertPool, clientCert tls.Certificate, serverName string, timeout time.Duration) *Client {
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		RootCAs:      serverCA,
		Certificates: []tls.Certificate{clientCert},
		ServerName:   serverName,
	}
	tr := &http.Transport{
		TLSClientConfig:     cfg,
		DialContext:         (&net.Dialer{Timeout: timeout}).DialContext,
		TLSHandshakeTimeout: timeout,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     30 * time.Second,
	}
	return &Client{http: &http.Client{Transport: tr, Timeout: timeout}, watch: &http.Client{Transport: tr}}
}

// Watch waits until the digest of the instance at addr differs from since
// ("" answers at once) or WatchWait passes, and returns the digest then.
// ctx should allow WatchWait plus a request's time.
func (c *Client) Watch(ctx context.Context, addr, since string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+PathWatch+"?"+SinceParam+"="+url.QueryEscape(since), nil)
	if err != nil {
		return "", fmt.Errorf("building watch request for %s: %w", addr, err)
	}
	resp, err := c.watch.Do(req)
	if err != nil {
		return "", fmt.Errorf("watching instance at %s: %w", addr, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if err != nil {
		return "", fmt.Errorf("reading watch answer from %s: %w", addr, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", &HTTPError{Code: resp.StatusCode, Body: string(body)}
	}
	var a WatchAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return "", fmt.Errorf("decoding watch answer from %s: %w", addr, err)
	}
	return a.Digest, nil
}

// Status fetches /pg/status from the instance listening on addr (host:port).
// ack is the RequestID of the previous answer received from it (0 if none).
func (c *Client) Status(ctx context.Context, addr string, ack uint64) (*Status, error) {
	var st Status
	path := PathStatus
	if ack != 0 {
		path += "?" + AckParam + "=" + strconv.FormatUint(ack, 10)
	}
	if err := c.do(ctx, http.MethodGet, addr, path, nil, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// Command asks the instance at addr to reach a state. The instance accepts
// it and works asynchronously; Status shows the progress.
func (c *Client) Command(ctx context.Context, addr string, cmd Command) error {
	body, err := json.Marshal(cmd)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodPost, addr, PathCommand, body, nil)
}

// Reload asks the instance at addr to apply its configuration now; it
// accepts at once and Status's Reload shows the outcome of req.ID.
func (c *Client) Reload(ctx context.Context, addr string, req ReloadRequest) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodPost, addr, PathReload, body, nil)
}

// Config fetches the configuration files the instance at addr runs with.
func (c *Client) Config(ctx context.Context, addr string) (*ConfigFiles, error) {
	var f ConfigFiles
	if err := c.do(ctx, http.MethodGet, addr, PathConfig, nil, &f); err != nil {
		return nil, err
	}
	return &f, nil
}

// StartBackup asks the primary at addr to take a base backup and returns
// the run as it started; Status's Backup shows its progress, the same
// run while its Started matches.
func (c *Client) StartBackup(ctx context.Context, addr string) (*BackupRun, error) {
	var run BackupRun
	if err := c.do(ctx, http.MethodPost, addr, PathBackup, []byte("{}"), &run); err != nil {
		return nil, err
	}
	return &run, nil
}

// Backups lists the backups in the object store, as the instance at addr
// sees them.
func (c *Client) Backups(ctx context.Context, addr string) (*BackupList, error) {
	var l BackupList
	if err := c.do(ctx, http.MethodGet, addr, PathBackup, nil, &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// CloseIdle releases pooled connections.
func (c *Client) CloseIdle() { c.http.CloseIdleConnections() }

func (c *Client) do(ctx context.Context, method, addr, path string, body []byte, into any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "https://"+addr+path, rd)
	if err != nil {
		return fmt.Errorf("building request for %s%s: %w", addr, path, err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("querying instance at %s: %w", addr, err)
	}
	defer func() { _ = resp.Body.Close() }()
	respBody, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("reading %s%s: %w", addr, path, err)
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted {
		return &HTTPError{Code: resp.StatusCode, Body: string(respBody)}
	}
	if into == nil {
		return nil
	}
	if err := json.Unmarshal(respBody, into); err != nil {
		return fmt.Errorf("decoding %s%s: %w", addr, path, err)
	}
	return nil
}

// HTTPError is a non-200 answer from an instance manager.
type HTTPError struct {
	Code int
	Body string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("instance answered %d: %s", e.Code, e.Body)
}

// IsForbidden reports whether err is the instance refusing our identity.
func IsForbidden(err error) bool {
	var he *HTTPError
	return errors.As(err, &he) && (he.Code == http.StatusForbidden || he.Code == http.StatusUnauthorized)
}
