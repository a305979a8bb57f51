package local

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/pgward/pgward/internal/instanceapi"
	"github.com/pgward/pgward/internal/secrets"
)

// newStatusClient builds the controller's mTLS client from the state
// directory: it trusts the cluster's server CA and presents the
// controller's client certificate.
func newStatusClient(l Layout, clusterName string, timeout time.Duration) (*instanceapi.Client, error) {
	store := secrets.DirStore{Root: l.SecretsDir()}
	ctl, err := store.Get(clusterName + "-controller")
	if err != nil {
		return nil, fmt.Errorf("reading the controller's certificate: %w", err)
	}
	cert, err := tls.X509KeyPair(ctl[keyTLSCert], ctl[keyTLSKey])
	if err != nil {
		return nil, fmt.Errorf("the controller's certificate: %w", err)
	}
	srv, err := store.Get(serverCASecretName(l, clusterName))
	if err != nil {
		return nil, fmt.Errorf("reading the server CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(srv[keyCACert]) {
		return nil, fmt.Errorf("the server CA holds no certificate")
	}
	return instanceapi.NewClient(pool, cert, localhost, timeout), nil
}

// serverCASecretName reads which secret holds the server CA from the
// instance configs written by prepare.
func serverCASecretName(l Layout, clusterName string) string {
	st, err := LoadState(l)
	if err == nil && len(st.Instances) > 0 {
		if cfg, err := loadInstanceConfig(l, st.Instances[0].Name); err == nil {
			return cfg.Secrets.ServerCA
		}
	}
	return clusterName + "-ca"
}

// observe queries every instance concurrently; an unreachable one yields a
// nil status and its error.
func observe(ctx context.Context, cl *instanceapi.Client, st *State) ([]*instanceapi.Status, []error) {
	out := make([]*instanceapi.Status, len(st.Instances))
	errs := make([]error, len(st.Instances))
	done := make(chan struct{})
	for i, is := range st.Instances {
		go func() {
			defer func() { done <- struct{}{} }()
			out[i], errs[i] = cl.Status(ctx, net.JoinHostPort(loopback, strconv.Itoa(is.StatusPort)), 0)
		}()
	}
	for range st.Instances {
		<-done
	}
	return out, errs
}
