package instance

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
	"os"
	"path/filepath"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pgward/pgward/internal/instanceapi"
)

// LeaseRenewer renews the cluster's primary Lease on behalf of this
// instance (the primary).
type LeaseRenewer interface {
	// Renew sets the Lease's renewTime if this instance holds it. It
	// returns nil only once the API server stored the renewal.
	Renew(ctx context.Context) error
}

// ErrNotHolder means the Lease names another instance (the operator moved it at
// a promotion); renewing it would be claiming a primacy this instance lost.
var ErrNotHolder = errors.New("the lease is held by another instance")

// apiLease renews a coordination.k8s.io/v1 Lease through the API server
// with the pod's own ServiceAccount token. It is a few lines of HTTP rather
// than client-go: the instance manager needs two requests on one object.
type apiLease struct {
	client    *http.Client
	url       string // the Lease's resource URL
	tokenFile string
	holder    string
}

// newAPILease builds the renewer for cfg from the pod's environment: the
// API server's address (KUBERNETES_SERVICE_HOST/PORT, set by the kubelet
// in every pod) and cfg.TokenDir's token and ca.crt.
func newAPILease(cfg *instanceapi.LeaseConfig, holder string) (LeaseRenewer, error) {
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return nil, errors.New("lease: KUBERNETES_SERVICE_HOST/PORT are not set (not in a pod)")
	}
	ca, err := os.ReadFile(filepath.Join(cfg.TokenDir, "ca.crt")) // #nosec G304 -- the operator-configured token directory
	if err != nil {
		return nil, fmt.Errorf("lease: reading the API server's CA: %w", err)
	}
	return NewLeaseClient("https://"+net.JoinHostPort(host, port), ca, filepath.Join(cfg.TokenDir, "token"),
		cfg.Namespace, cfg.Name, holder)
}

// NewLeaseClient renews Lease ns/name as holder on the API server at base,
// trusting caPEM, with the bearer token read from tokenFile at each request
// (the kubelet rotates it). The instance manager builds it from the pod's
// environment; internal/kube's tests drive it against a real API server.
func NewLeaseClient(base string, caPEM []byte, tokenFile, ns, name, holder string) (LeaseRenewer, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("lease: no certificate in the API server's CA")
	}
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		// No proxy from the environment: the token goes to the API server only.
		Proxy:               nil,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     time.Minute,
	}
	return &apiLease{
		client:    &http.Client{Transport: tr},
		url:       strings.TrimSuffix(base, "/") + "/apis/coordination.k8s.io/v1/namespaces/" + url.PathEscape(ns) + "/leases/" + url.PathEscape(name),
		tokenFile: tokenFile,
		holder:    holder,
	}, nil
}

// Renew reads the Lease and, if this instance holds it, writes it back
// with a new renewTime. The write carries the resourceVersion read, so it
// fails if the operator moved the Lease in between: a renewal can never
// land after a takeover (see plan.FenceTiming).
func (a *apiLease) Renew(ctx context.Context) error {
	var l coordinationv1.Lease
	if err := a.do(ctx, http.MethodGet, nil, &l); err != nil {
		return fmt.Errorf("reading the lease: %w", err)
	}
	if h := l.Spec.HolderIdentity; h == nil || *h != a.holder {
		held := ""
		if h != nil {
			held = *h
		}
		return fmt.Errorf("%w (%q)", ErrNotHolder, held)
	}
	now := metav1.NewMicroTime(time.Now())
	l.Spec.RenewTime = &now
	if err := a.do(ctx, http.MethodPut, &l, nil); err != nil {
		return fmt.Errorf("renewing the lease: %w", err)
	}
	return nil
}

func (a *apiLease) do(ctx context.Context, method string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.url, body)
	if err != nil {
		return err
	}
	token, err := os.ReadFile(a.tokenFile)
	if err != nil {
		return fmt.Errorf("reading the service account token: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.client.Do(req) // #nosec G704 -- the API server's in-cluster address
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		// The API server's Status message names the object and the reason
		// (forbidden, conflict); it never echoes the token.
		var st metav1.Status
		if json.Unmarshal(b, &st) == nil && st.Message != "" {
			return fmt.Errorf("%s: %s", resp.Status, st.Message)
		}
		return errors.New(resp.Status)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// renewLease renews the Lease every period while this instance runs as an
// unfenced primary. A renewal counts as contact from the moment it was
// sent (contactTracker.renewed), and only once the API server stored it.
func (m *Manager) renewLease(ctx context.Context, period, timeout time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := m.renewOnce(ctx, timeout)
		switch {
		case err != nil && !failing:
			m.log.Warn("cannot renew the primary lease; self-fencing counts on the controller alone", "err", err)
		case err == nil && failing:
			m.log.Info("primary lease renewed again")
		}
		failing = err != nil
	}
}

// renewOnce renews the Lease once if this instance is a running, unfenced
// primary: a replica never renews. The contact time is taken before the
// first request, so it precedes the API server's write of the renewal.
func (m *Manager) renewOnce(ctx context.Context, timeout time.Duration) error {
	m.mu.Lock()
	primary, fenced := m.pm != nil && m.primary, m.st.Fenced
	m.mu.Unlock()
	if !primary || fenced {
		return nil
	}
	sent := time.Now()
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := m.lease.Renew(rctx); err != nil {
		return err
	}
	m.contact.renewed(sent)
	return nil
}
