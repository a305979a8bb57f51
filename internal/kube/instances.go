package kube

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pgward/pgward/internal/instanceapi"
)

// Instance is how the operator reaches one instance manager.
type Instance struct {
	// Cluster is the cluster's namespace/name.
	Cluster string
	// Name is the instance (and pod) name.
	Name string
	// Addr is the pod's IP and status port, "" while the pod has no IP.
	Addr string
	// ServerName is what the instance's certificate is verified against.
	ServerName string
	// TLS is the operator's client identity for this cluster.
	TLS *ClientTLS
}

// ClientTLS is the material the operator presents to a cluster's instances
// and the CA it trusts for their certificate.
type ClientTLS struct {
	ServerCA   []byte // PEM
	ClientCert []byte // PEM, CN pgward-controller
	ClientKey  []byte // PEM
}

// fingerprint identifies the material, so a renewed certificate gets a new
// connection pool.
func (t *ClientTLS) fingerprint() [32]byte {
	h := sha256.New()
	for _, b := range [][]byte{t.ServerCA, t.ClientCert, t.ClientKey} {
		_, _ = fmt.Fprintf(h, "%d:", len(b))
		_, _ = h.Write(b)
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

// InstanceClient talks to instance managers. The operator uses
// MTLSInstances; tests feed simulated statuses through their own
// implementation, since no kubelet runs pods in them.
type InstanceClient interface {
	// Status asks the instance for its status; ack is the RequestID of its
	// previous answer (0 if none), which the instance counts as contact.
	Status(ctx context.Context, in Instance, ack uint64) (*instanceapi.Status, error)
	// Command asks the instance to reach a state.
	Command(ctx context.Context, in Instance, cmd instanceapi.Command) error
}

// MTLSInstances is the real InstanceClient: HTTPS with TLS 1.3 to each
// pod's status port, presenting the operator's client certificate for the
// cluster and verifying the instance's certificate against the cluster's
// server CA. Connections are pooled per cluster and identity.
type MTLSInstances struct {
	// Timeout bounds each request, connection included.
	Timeout time.Duration

	mu      sync.Mutex
	clients map[string]pooled
}

type pooled struct {
	fp     [32]byte
	client *instanceapi.Client
}

var _ InstanceClient = (*MTLSInstances)(nil)

// errNoAddress is an instance whose pod has no IP yet (not scheduled, or
// no kubelet): it counts as unreachable.
var errNoAddress = errors.New("the pod has no IP address yet")

// Status implements InstanceClient.
func (m *MTLSInstances) Status(ctx context.Context, in Instance, ack uint64) (*instanceapi.Status, error) {
	c, err := m.client(in)
	if err != nil {
		return nil, err
	}
	st, err := c.Status(ctx, in.Addr, ack)
	if err != nil {
		return nil, fmt.Errorf("status of %s: %w", in.Name, err)
	}
	return st, nil
}

// Command implements InstanceClient.
func (m *MTLSInstances) Command(ctx context.Context, in Instance, cmd instanceapi.Command) error {
	c, err := m.client(in)
	if err != nil {
		return err
	}
	if err := c.Command(ctx, in.Addr, cmd); err != nil {
		return fmt.Errorf("%s to %s: %w", cmd.Kind, in.Name, err)
	}
	return nil
}

// Forget drops the pooled connections of a cluster that is gone.
func (m *MTLSInstances) Forget(cluster string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p, ok := m.clients[cluster]; ok {
		p.client.CloseIdle()
		delete(m.clients, cluster)
	}
}

func (m *MTLSInstances) client(in Instance) (*instanceapi.Client, error) {
	if in.Addr == "" {
		return nil, fmt.Errorf("instance %s: %w", in.Name, errNoAddress)
	}
	if in.TLS == nil {
		return nil, fmt.Errorf("instance %s: no client certificate for cluster %s", in.Name, in.Cluster)
	}
	fp := in.TLS.fingerprint()
	m.mu.Lock()
	defer m.mu.Unlock()
	if p, ok := m.clients[in.Cluster]; ok && p.fp == fp {
		return p.client, nil
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(in.TLS.ServerCA) {
		return nil, fmt.Errorf("cluster %s: the server CA holds no PEM certificate", in.Cluster)
	}
	cert, err := tls.X509KeyPair(in.TLS.ClientCert, in.TLS.ClientKey)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: operator client certificate: %w", in.Cluster, err)
	}
	c := instanceapi.NewClient(pool, cert, in.ServerName, m.Timeout)
	if m.clients == nil {
		m.clients = map[string]pooled{}
	}
	if old, ok := m.clients[in.Cluster]; ok {
		old.client.CloseIdle()
	}
	m.clients[in.Cluster] = pooled{fp: fp, client: c}
	return c, nil
}
