package local

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/pgward/pgward/internal/instance"
	"github.com/pgward/pgward/internal/secrets"
)

// MetricsOptions configure `pgward local metrics`.
type MetricsOptions struct {
	Dir string
	// Instance limits the scrape to one instance; empty: every instance.
	Instance string
	Timeout  time.Duration
	Out      io.Writer
}

// MetricsURL is where an instance's exporter answers.
func MetricsURL(is InstanceState) string {
	return "https://" + net.JoinHostPort(loopback, strconv.Itoa(is.MetricsPort)) + instance.MetricsPath
}

// Metrics scrapes each instance's exporter once, over TLS 1.3 with the
// cluster's metrics client certificate (secret <cluster>-metrics),
// verifying the exporter's server certificate against the server CA, and
// prints the exposition text, each instance's under a comment naming it.
func Metrics(ctx context.Context, o MetricsOptions) error {
	l := Layout{Dir: o.Dir}
	st, err := LoadState(l)
	if err != nil {
		return err
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	cl, err := newMetricsClient(l, st.Cluster, o.Timeout)
	if err != nil {
		return err
	}
	defer cl.CloseIdleConnections()
	var errs []error
	found := false
	for _, is := range st.Instances {
		if o.Instance != "" && is.Name != o.Instance {
			continue
		}
		found = true
		if is.MetricsPort == 0 {
			errs = append(errs, fmt.Errorf("%s: no metrics port yet (run `pgward local up` again to add one)", is.Name))
			continue
		}
		body, err := scrape(ctx, cl, MetricsURL(is))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", is.Name, err))
			continue
		}
		_, _ = fmt.Fprintf(o.Out, "# pgward instance %s (%s)\n", is.Name, MetricsURL(is))
		if _, err := o.Out.Write(body); err != nil {
			return err
		}
	}
	if !found {
		return fmt.Errorf("no instance %q in %s", o.Instance, l.Dir)
	}
	return errors.Join(errs...)
}

func scrape(ctx context.Context, cl *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := cl.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s: %s", url, resp.Status, body)
	}
	return body, nil
}

// newMetricsClient presents the metrics certificate and trusts the
// cluster's server CA for the name every local instance carries.
func newMetricsClient(l Layout, clusterName string, timeout time.Duration) (*http.Client, error) {
	store := secrets.DirStore{Root: l.SecretsDir()}
	mc, err := store.Get(clusterName + "-metrics")
	if err != nil {
		return nil, fmt.Errorf("reading the metrics certificate (run `pgward local up` again to issue it): %w", err)
	}
	cert, err := tls.X509KeyPair(mc[keyTLSCert], mc[keyTLSKey])
	if err != nil {
		return nil, fmt.Errorf("the metrics certificate: %w", err)
	}
	srv, err := store.Get(serverCASecretName(l, clusterName))
	if err != nil {
		return nil, fmt.Errorf("reading the server CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(srv[keyCACert]) {
		return nil, errors.New("the server CA holds no certificate")
	}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{
				MinVersion:   tls.VersionTLS13,
				RootCAs:      pool,
				ServerName:   localhost,
				Certificates: []tls.Certificate{cert},
			},
		},
	}, nil
}
