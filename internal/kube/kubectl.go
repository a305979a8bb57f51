package kube

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/instanceapi"
	"github.com/pgward/pgward/internal/kube/build"
)

// This file is the read side of `kubectl pgward status`: the Cluster's
// status, and each instance's own answer on its status port. The plugin
// is not the operator: it runs on a user's machine, which usually cannot
// reach pod IPs, so it reaches the status port through a port-forward
// (the API server relays bytes to the kubelet, which connects inside the
// pod's network namespace; the mutual TLS runs end to end through it, so
// neither the API server nor the kubelet sees the answer). It presents the
// operator's controller certificate, read from the cluster's
// <cluster>-controller secret: whoever may read that secret may already
// command the instances, so the plugin asks for no more than that.

// PodForwarder opens a local address that reaches port of a pod.
type PodForwarder interface {
	// Forward returns a loopback host:port that reaches port inside pod;
	// stop closes it.
	Forward(ctx context.Context, namespace, pod string, port int) (addr string, stop func(), err error)
}

// PortForwarder forwards through the API server (pods/portforward), as
// `kubectl port-forward` does.
type PortForwarder struct {
	Config *rest.Config
}

// Forward implements PodForwarder.
func (p PortForwarder) Forward(ctx context.Context, namespace, pod string, port int) (string, func(), error) {
	cs, err := kubernetes.NewForConfig(p.Config)
	if err != nil {
		return "", nil, err
	}
	url := cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(namespace).Name(pod).SubResource("portforward").URL()
	rt, upgrader, err := spdy.RoundTripperFor(p.Config)
	if err != nil {
		return "", nil, err
	}
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: rt}, http.MethodPost, url)
	fctx, cancel := context.WithCancel(ctx)
	ready := make(chan struct{})
	fw, err := portforward.NewOnAddressesWithContext(fctx, dialer, []string{"127.0.0.1"}, []string{"0:" + strconv.Itoa(port)}, ready, io.Discard, io.Discard)
	if err != nil {
		cancel()
		return "", nil, err
	}
	done := make(chan error, 1)
	go func() { done <- fw.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		if err == nil {
			err = errors.New("port-forward ended before it was ready")
		}
		return "", nil, fmt.Errorf("port-forward to pod %s: %w", pod, err)
	case <-ctx.Done():
		cancel()
		return "", nil, ctx.Err()
	}
	ports, err := fw.GetPorts()
	if err != nil {
		cancel()
		return "", nil, fmt.Errorf("port-forward to pod %s: %w", pod, err)
	}
	if len(ports) != 1 {
		cancel()
		return "", nil, fmt.Errorf("port-forward to pod %s: %d local ports", pod, len(ports))
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(int(ports[0].Local))), cancel, nil
}

// ClusterReport is what `kubectl pgward status -o json` prints: the
// Cluster's status as the operator wrote it, and each instance as it
// reports itself.
type ClusterReport struct {
	Cluster        string `json:"cluster"`
	Namespace      string `json:"namespace"`
	Phase          string `json:"phase"`
	Ready          string `json:"ready,omitempty"`
	Instances      int    `json:"instances"`
	ReadyInstances int    `json:"readyInstances"`
	CurrentPrimary string `json:"currentPrimary"`
	TargetPrimary  string `json:"targetPrimary"`
	TimelineID     int    `json:"timelineID,omitempty"`
	// Annotations are the day-2 requests pending on the Cluster
	// (switchover, fencing, hibernation), as set.
	Annotations map[string]string `json:"annotations,omitempty"`
	// Certificates are the ones the report could read, with their expiry.
	Certificates []CertificateReport `json:"certificates,omitempty"`
	Instance     []InstanceReport    `json:"instanceReports"`
	// Error says why no instance could be asked (a missing secret).
	Error string `json:"error,omitempty"`
}

// CertificateReport is one certificate and when it expires.
type CertificateReport struct {
	Name     string    `json:"name"`
	Subject  string    `json:"subject"`
	NotAfter time.Time `json:"notAfter"`
}

// InstanceReport is one instance's line, with the layout of
// `pgward local status`.
type InstanceReport struct {
	Name        string `json:"name"`
	Pod         string `json:"pod"`
	PodPhase    string `json:"podPhase,omitempty"`
	Node        string `json:"node,omitempty"`
	Role        string `json:"role"`
	State       string `json:"state"`
	Fenced      bool   `json:"fenced,omitempty"`
	Timeline    uint32 `json:"timeline,omitempty"`
	CurrentLSN  string `json:"currentLSN,omitempty"`
	ReceivedLSN string `json:"receivedLSN,omitempty"`
	ReplayedLSN string `json:"replayedLSN,omitempty"`
	// LagBytes is the replica's replay lag as the primary sees it.
	LagBytes *int64 `json:"lagBytes,omitempty"`
	// TLS is the replication connection's protocol as the primary sees it.
	TLS      string `json:"tls,omitempty"`
	ClientDN string `json:"clientDN,omitempty"`
	// ServerCertNotAfter is when the certificate the instance presented
	// on its status port expires (it is PostgreSQL's server certificate).
	ServerCertNotAfter *time.Time             `json:"serverCertNotAfter,omitempty"`
	Archive            *instanceapi.Archive   `json:"archive,omitempty"`
	Backup             *instanceapi.BackupRun `json:"backup,omitempty"`
	Error              string                 `json:"error,omitempty"`
}

// reportAnnotations are the Cluster annotations the report shows.
var reportAnnotations = []string{v1.SwitchoverAnnotation, v1.RestartAnnotation, v1.FencedInstancesAnnotation, v1.HibernationAnnotation}

// Report gathers c's status. The instances are asked in parallel, each
// within timeout; an instance that cannot be asked is reported with the
// reason, never fails the report.
func Report(ctx context.Context, cl client.Client, fw PodForwarder, key types.NamespacedName, timeout time.Duration) (*ClusterReport, error) {
	var c v1.Cluster
	if err := cl.Get(ctx, key, &c); err != nil {
		return nil, fmt.Errorf("cluster %s: %w", key, err)
	}
	st := c.Status
	r := &ClusterReport{
		Cluster: c.Name, Namespace: c.Namespace, Phase: st.Phase, Instances: st.Instances, ReadyInstances: st.ReadyInstances,
		CurrentPrimary: st.CurrentPrimary, TargetPrimary: st.TargetPrimary, TimelineID: st.TimelineID,
	}
	if cond := meta.FindStatusCondition(st.Conditions, ConditionReady); cond != nil {
		r.Ready = string(cond.Status) + " (" + cond.Reason + "): " + cond.Message
	}
	for _, a := range reportAnnotations {
		if v, ok := c.Annotations[a]; ok {
			if r.Annotations == nil {
				r.Annotations = map[string]string{}
			}
			r.Annotations[a] = v
		}
	}
	names := st.InstanceNames
	if len(names) == 0 {
		names = build.InstanceNames(&c)
	}
	tlsm, err := pluginTLS(ctx, cl, &c)
	if err != nil {
		r.Error = err.Error()
	} else {
		r.Certificates = certReports(tlsm)
	}
	r.Instance = make([]InstanceReport, len(names))
	answers := make([]*instanceapi.Status, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		r.Instance[i] = InstanceReport{Name: n, Pod: n, Role: instanceapi.RoleUnknown, State: "unreachable"}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ictx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			answers[i] = askInstance(ictx, cl, fw, &c, tlsm, &r.Instance[i])
		}()
	}
	wg.Wait()
	peers := map[string]instanceapi.Peer{}
	for _, s := range answers {
		if s != nil && s.Role == instanceapi.RolePrimary && s.PostmasterRunning && !s.Fenced {
			for _, p := range s.Replication {
				peers[p.ApplicationName] = p
			}
		}
	}
	for i := range r.Instance {
		ir := &r.Instance[i]
		if p, ok := peers[ir.Name]; ok {
			lag := p.LagBytes
			ir.LagBytes = &lag
			ir.TLS, ir.ClientDN = p.TLSVersion, p.ClientDN
			if !p.SSL {
				ir.TLS = "none"
			}
		}
	}
	return r, nil
}

// askInstance fills ir from the pod and the instance's own status; it
// returns the status, or nil when the instance could not be asked (the
// reason is in ir.Error).
func askInstance(ctx context.Context, cl client.Client, fw PodForwarder, c *v1.Cluster, tlsm *ClientTLS, ir *InstanceReport) *instanceapi.Status {
	var pod corev1.Pod
	if err := cl.Get(ctx, types.NamespacedName{Namespace: c.Namespace, Name: ir.Pod}, &pod); err != nil {
		ir.State, ir.Error = "no pod", err.Error()
		return nil
	}
	ir.PodPhase, ir.Node = string(pod.Status.Phase), pod.Spec.NodeName
	if tlsm == nil {
		ir.Error = "not asked: no client certificate (see the cluster's error)"
		return nil
	}
	if pod.Status.Phase != corev1.PodRunning {
		ir.Error = "not asked: the pod is " + orUnknown(string(pod.Status.Phase))
		return nil
	}
	addr, stop, err := fw.Forward(ctx, c.Namespace, pod.Name, build.StatusPort)
	if err != nil {
		ir.Error = err.Error()
		return nil
	}
	defer stop()
	st, notAfter, err := statusOver(ctx, addr, build.ServerName(c), tlsm)
	if err != nil {
		ir.Error = err.Error()
		return nil
	}
	ir.ServerCertNotAfter = notAfter
	ir.Role, ir.Timeline, ir.Fenced = st.Role, st.Timeline, st.Fenced
	ir.CurrentLSN, ir.ReceivedLSN, ir.ReplayedLSN = st.CurrentLSN, st.ReceivedLSN, st.ReplayedLSN
	ir.Archive, ir.Backup = st.Archive, st.Backup
	ir.State = instanceapi.StateOf(st)
	ir.Error = st.Error
	if st.ConfigError != "" {
		ir.Error = joinNonEmpty(ir.Error, st.ConfigError)
	}
	return st
}

// statusOver asks the instance at addr for its status over mutual TLS,
// verifying its certificate against the cluster's server CA for
// serverName, and returns when the certificate it presented expires. The
// request acknowledges no earlier answer (ack 0), so it never counts as the
// operator's contact: a primary cut off from the operator still fences
// itself however often a user runs status.
func statusOver(ctx context.Context, addr, serverName string, tlsm *ClientTLS) (*instanceapi.Status, *time.Time, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(tlsm.ServerCA) {
		return nil, nil, errors.New("the server CA holds no PEM certificate")
	}
	cert, err := tls.X509KeyPair(tlsm.ClientCert, tlsm.ClientKey)
	if err != nil {
		return nil, nil, fmt.Errorf("controller certificate: %w", err)
	}
	// One connection, one request: the answer's TLS state gives the
	// certificate the instance presented.
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool, Certificates: []tls.Certificate{cert}, ServerName: serverName},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+instanceapi.PathStatus, nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("status port: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	var notAfter *time.Time
	if resp.TLS != nil && len(resp.TLS.PeerCertificates) > 0 {
		t := resp.TLS.PeerCertificates[0].NotAfter.UTC()
		notAfter = &t
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, notAfter, fmt.Errorf("status port: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, notAfter, fmt.Errorf("status port: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	var st instanceapi.Status
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, notAfter, fmt.Errorf("status port: %w", err)
	}
	return &st, notAfter, nil
}

// pluginTLS reads the controller certificate and the CA the instances'
// certificates chain to. With the generated CA (the default) the
// controller secret's ca.crt is that CA, and only that one secret is read;
// with a user-provided server CA, its secret's ca.crt too.
func pluginTLS(ctx context.Context, cl client.Client, c *v1.Cluster) (*ClientTLS, error) {
	n := build.Secrets(c)
	var ctl corev1.Secret
	if err := cl.Get(ctx, types.NamespacedName{Namespace: c.Namespace, Name: n.Controller}, &ctl); err != nil {
		return nil, fmt.Errorf("reading the controller certificate (secret %s): %w", n.Controller, err)
	}
	t := &ClientTLS{ServerCA: ctl.Data[build.KeyCACert], ClientCert: ctl.Data[build.KeyTLSCert], ClientKey: ctl.Data[build.KeyTLSKey]}
	if n.ServerCA != n.ClientCA {
		var ca corev1.Secret
		if err := cl.Get(ctx, types.NamespacedName{Namespace: c.Namespace, Name: n.ServerCA}, &ca); err != nil {
			return nil, fmt.Errorf("reading the server CA (secret %s, spec.certificates.serverCASecret): %w", n.ServerCA, err)
		}
		t.ServerCA = ca.Data[build.KeyCACert]
	}
	return t, nil
}

// certReports lists the certificates of t with their expiry.
func certReports(t *ClientTLS) []CertificateReport {
	var out []CertificateReport
	add := func(name string, data []byte) {
		for len(data) > 0 {
			var b *pem.Block
			b, data = pem.Decode(data)
			if b == nil {
				return
			}
			cert, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				continue
			}
			out = append(out, CertificateReport{Name: name, Subject: cert.Subject.CommonName, NotAfter: cert.NotAfter.UTC()})
		}
	}
	add("controller client certificate", t.ClientCert)
	add("server CA", t.ServerCA)
	return out
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func joinNonEmpty(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + " " + b
}

// SetFencing adds instance to (on) or removes it from the Cluster's
// cnpg.io/fencedInstances list (v1.FenceAll: every instance; off with
// FenceAll clears the list). The new list is checked as the webhook checks
// it before the patch, which carries the read resourceVersion so that a
// concurrent change is not overwritten. The operator does the rest.
func SetFencing(ctx context.Context, cl client.Client, key types.NamespacedName, instance string, on bool) error {
	return patchAnnotations(ctx, cl, key, func(c *v1.Cluster) error {
		cur, err := c.Fenced()
		if err != nil {
			return fmt.Errorf("the Cluster's %s: %w", v1.FencedInstancesAnnotation, err)
		}
		switch {
		case on && !slices.Contains(cur, instance):
			cur = append(cur, instance)
		case !on && instance == v1.FenceAll:
			cur = nil
		case !on:
			cur = slices.DeleteFunc(cur, func(n string) bool { return n == instance })
		}
		if len(cur) == 0 {
			delete(c.Annotations, v1.FencedInstancesAnnotation)
			return nil
		}
		b, err := json.Marshal(cur)
		if err != nil {
			return err
		}
		c.Annotations[v1.FencedInstancesAnnotation] = string(b)
		if _, err := c.Fenced(); err != nil {
			return fmt.Errorf("instance: %w", err)
		}
		return nil
	})
}

// SetHibernation sets the Cluster's cnpg.io/hibernation to on or off.
func SetHibernation(ctx context.Context, cl client.Client, key types.NamespacedName, on bool) error {
	return patchAnnotations(ctx, cl, key, func(c *v1.Cluster) error {
		c.Annotations[v1.HibernationAnnotation] = map[bool]string{true: "on", false: "off"}[on]
		return nil
	})
}

func patchAnnotations(ctx context.Context, cl client.Client, key types.NamespacedName, change func(*v1.Cluster) error) error {
	var c v1.Cluster
	if err := cl.Get(ctx, key, &c); err != nil {
		return fmt.Errorf("cluster %s: %w", key, err)
	}
	before := c.DeepCopy()
	if c.Annotations == nil {
		c.Annotations = map[string]string{}
	}
	if err := change(&c); err != nil {
		return err
	}
	if err := cl.Patch(ctx, &c, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("cluster %s: %w", key, err)
	}
	return nil
}
