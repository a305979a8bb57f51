package kube

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/audit"
	"github.com/pgward/pgward/internal/audit/probe"
	"github.com/pgward/pgward/internal/instance"
	"github.com/pgward/pgward/internal/instanceapi"
	"github.com/pgward/pgward/internal/kube/build"
	"github.com/pgward/pgward/internal/pgconf"
	"github.com/pgward/pgward/internal/pki"
)

// This file is `kubectl pgward audit`: the Kubernetes adapter of
// internal/audit. What the API holds (pods as admitted, their projected
// secrets, NetworkPolicies, the cluster's certificates and secrets) is
// read from the API server; the attacks (a password for
// streaming_replica, TLS 1.2, an anonymous or foreign client on the status
// port) are tried from the user's machine through a port-forward, as an
// attacker inside the cluster's network would; what only the inside of a
// pod can see (processes, postgresql.auto.conf, the running settings, the
// rendered files) each instance manager reports on its status port
// (GET /pg/audit, the controller's certificate only), gathered with the
// same probes as `pgward local audit`. Every judgement is internal/audit's.

// AuditOptions configure Audit.
type AuditOptions struct {
	// Now is the time certificates are judged at (default time.Now).
	Now time.Time
	// Timeout bounds each instance's checks (default 10s).
	Timeout time.Duration
}

// kubeAuditor holds what every check reads once.
type kubeAuditor struct {
	cl    client.Client
	fw    PodForwarder
	c     *v1.Cluster
	names []string
	pods  map[string]*corev1.Pod
	// podErrs says why a pod could not be read.
	podErrs map[string]string
	tlsm    *ClientTLS
	tlsErr  error
	// secrets read once: name -> data, or the error.
	secrets   map[string]map[string][]byte
	secretErr map[string]error
	evidence  map[string]*instanceapi.AuditEvidence
	evErr     map[string]string
	now       time.Time
	timeout   time.Duration
}

// Audit checks the Cluster key against pgward's controls and returns one
// result per control, in a fixed order.
func Audit(ctx context.Context, cl client.Client, fw PodForwarder, key types.NamespacedName, o AuditOptions) ([]audit.Result, error) {
	var c v1.Cluster
	if err := cl.Get(ctx, key, &c); err != nil {
		return nil, fmt.Errorf("cluster %s: %w", key, err)
	}
	a := &kubeAuditor{cl: cl, fw: fw, c: &c, now: o.Now, timeout: o.Timeout,
		pods: map[string]*corev1.Pod{}, podErrs: map[string]string{},
		secrets: map[string]map[string][]byte{}, secretErr: map[string]error{},
		evidence: map[string]*instanceapi.AuditEvidence{}, evErr: map[string]string{}}
	if a.now.IsZero() {
		a.now = time.Now()
	}
	if a.timeout <= 0 {
		a.timeout = 10 * time.Second
	}
	a.names = c.Status.InstanceNames
	if len(a.names) == 0 {
		a.names = build.InstanceNames(&c)
	}
	for _, n := range a.names {
		var p corev1.Pod
		if err := cl.Get(ctx, types.NamespacedName{Namespace: c.Namespace, Name: n}, &p); err != nil {
			a.podErrs[n] = err.Error()
			continue
		}
		a.pods[n] = &p
	}
	a.tlsm, a.tlsErr = pluginTLS(ctx, cl, &c)
	return audit.Run(ctx, a.checks()), nil
}

const fixOperator = "the operator rebuilds what it owns: check that it runs (`kubectl -n pgward-system get pods`) and read its log; delete the pod to have it recreated from pgward's spec"

func (a *kubeAuditor) checks() []audit.Check {
	return []audit.Check{
		audit.Func{Name: "pod-security-context", Fix: "find what changed the pod (an admission webhook, a hand-made pod) and delete the pod: the operator recreates it with pgward's security context", Fn: a.podSecurity},
		audit.Func{Name: "secret-projection-modes", Fix: "delete the pod: the operator recreates it projecting each key alone, mode 0400; never mount a whole secret, the CA or the controller secret into an instance", Fn: a.projections},
		audit.Func{Name: "network-policies", Fix: fixOperator + " (it recreates the NetworkPolicies of a Cluster that enables them)", Fn: a.networkPolicies},
		audit.Func{Name: "wal-directory", Fix: "delete the pod: the instance manager links pg_wal to the WAL volume and PostgreSQL owns the directory (a pg_wal left in the data volume needs the instance rebuilt: delete its PVCs and pod)", Fn: a.walDir},
		audit.Func{Name: "processes-not-root", Fix: "delete the pod: the operator recreates it running as uid 26; find what started a root process in the container", Fn: a.processes},
		audit.Func{Name: "certificate-expiry", Fix: "the operator renews generated certificates within the renewal window (check that it runs); replace user-provided ones", Fn: a.certExpiry},
		audit.Func{Name: "certificate-chain", Fix: "replace the certificate with one issued by the cluster's CA (delete a generated secret: the operator issues it again)", Fn: a.certChain},
		audit.Func{Name: "pg-hba-rules", Fix: "find who edited pg_hba.conf in the pod, then delete the pod (the instance manager renders it again at start)", Fn: a.hbaRules},
		audit.Func{Name: "postgresql-conf-enforced", Fix: "find who edited postgresql.conf in the pod, then delete the pod (the instance manager renders it again at start)", Fn: a.confEnforced},
		audit.Func{Name: "settings-running", Fix: "empty postgresql.auto.conf (ALTER SYSTEM RESET ALL) and SELECT pg_reload_conf() on the instance named, or restart it (`kubectl pgward restart`); ALTER ROLE/DATABASE ... RESET a fixed parameter set for a role or database", Fn: a.liveSettings},
		audit.Func{Name: "alter-system-drift", Fix: "run ALTER SYSTEM RESET ALL (then SELECT pg_reload_conf()) and put the setting in spec.postgresql.parameters; pgward also empties the file at the next start", Fn: a.autoConf},
		audit.Func{Name: "replication-streams", Fix: "restart the replica named (`kubectl pgward restart CLUSTER INSTANCE`): its primary_conninfo is rendered with TLS 1.3 and streaming_replica's certificate", Fn: a.streams},
		audit.Func{Name: "postgres-tls-1.3-only", Fix: "restart the instance (`kubectl pgward restart`): ssl_min_protocol_version is enforced", Fn: a.postgresTLS12},
		audit.Func{Name: "replication-needs-certificate", Fix: "restart the instance (its pg_hba.conf is rendered again): streaming_replica must authenticate with cert only", Fn: a.replicationPassword},
		audit.Func{Name: "superuser-no-password", Fix: "delete the superuser secret and ALTER ROLE postgres PASSWORD NULL (superuser access is off), or turn spec.enableSuperuserAccess on if a password is wanted", Fn: a.superuser},
		audit.Func{Name: "status-port-needs-certificate", Fix: "restart the instance with pgward's image: the status port must require the controller's client certificate", Fn: a.statusPort},
		audit.Func{Name: "status-port-tls-1.3-only", Fix: "restart the instance with pgward's image: the status port serves TLS 1.3 only", Fn: a.statusTLS12},
	}
}

// --- the API: pods, secrets, policies ---

func (a *kubeAuditor) missingPods() []audit.Part {
	var parts []audit.Part
	for _, n := range a.names {
		if e, ok := a.podErrs[n]; ok {
			parts = append(parts, audit.Part{Subject: n, Status: audit.Warn, Evidence: "pod not read: " + e})
		}
	}
	return parts
}

func (a *kubeAuditor) podSecurity(context.Context) audit.Result {
	var cs []audit.ContainerSecurity
	for _, n := range a.names {
		p, ok := a.pods[n]
		if !ok {
			continue
		}
		cs = append(cs, ContainerSecurities(p)...)
	}
	return audit.Combine(append(a.missingPods(), audit.DecidePodSecurity(cs, build.PostgresUID)))
}

// ContainerSecurities reduces a pod to the effective security context of
// each of its containers, init containers included.
func ContainerSecurities(p *corev1.Pod) []audit.ContainerSecurity {
	psc := p.Spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	var out []audit.ContainerSecurity
	all := append(append([]corev1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...)
	for _, c := range all {
		sc := c.SecurityContext
		if sc == nil {
			sc = &corev1.SecurityContext{}
		}
		e := audit.ContainerSecurity{
			Pod: p.Name, Container: c.Name,
			RunAsNonRoot: orPod(sc.RunAsNonRoot, psc.RunAsNonRoot), RunAsUser: orPod(sc.RunAsUser, psc.RunAsUser),
			AllowPrivilegeEscalation: sc.AllowPrivilegeEscalation, Privileged: sc.Privileged,
			ReadOnlyRootFilesystem: sc.ReadOnlyRootFilesystem,
			HostNetwork:            p.Spec.HostNetwork, HostPID: p.Spec.HostPID, HostIPC: p.Spec.HostIPC,
			AutomountServiceAccountToken: p.Spec.AutomountServiceAccountToken,
		}
		if sc.Capabilities != nil {
			for _, d := range sc.Capabilities.Drop {
				e.CapDrop = append(e.CapDrop, string(d))
			}
			for _, d := range sc.Capabilities.Add {
				e.CapAdd = append(e.CapAdd, string(d))
			}
		}
		if sp := orPod(sc.SeccompProfile, psc.SeccompProfile); sp != nil {
			e.Seccomp = string(sp.Type)
		}
		out = append(out, e)
	}
	return out
}

func orPod[T any](c, p *T) *T {
	if c != nil {
		return c
	}
	return p
}

func (a *kubeAuditor) projections(context.Context) audit.Result {
	var ps []audit.Projection
	for _, n := range a.names {
		if p, ok := a.pods[n]; ok {
			ps = append(ps, SecretProjections(p)...)
		}
	}
	n := build.Secrets(a.c)
	return audit.Combine(append(a.missingPods(), audit.DecideProjectionModes(ps, []string{n.CA + "/" + build.KeyCAKey, n.Controller})))
}

// SecretProjections lists every secret a pod mounts, key by key with the
// file's effective mode (a whole secret as one entry with no key).
func SecretProjections(p *corev1.Pod) []audit.Projection {
	mode := func(item, def *int32) int32 {
		switch {
		case item != nil:
			return *item
		case def != nil:
			return *def
		}
		return corev1.SecretVolumeSourceDefaultMode
	}
	var out []audit.Projection
	for _, v := range p.Spec.Volumes {
		switch {
		case v.Secret != nil:
			if len(v.Secret.Items) == 0 {
				out = append(out, audit.Projection{Pod: p.Name, Volume: v.Name, Secret: v.Secret.SecretName, Mode: mode(nil, v.Secret.DefaultMode)})
			}
			for _, it := range v.Secret.Items {
				out = append(out, audit.Projection{Pod: p.Name, Volume: v.Name, Secret: v.Secret.SecretName, Key: it.Key, Mode: mode(it.Mode, v.Secret.DefaultMode)})
			}
		case v.Projected != nil:
			for _, s := range v.Projected.Sources {
				if s.Secret == nil {
					continue
				}
				if len(s.Secret.Items) == 0 {
					out = append(out, audit.Projection{Pod: p.Name, Volume: v.Name, Secret: s.Secret.Name, Mode: mode(nil, v.Projected.DefaultMode)})
				}
				for _, it := range s.Secret.Items {
					out = append(out, audit.Projection{Pod: p.Name, Volume: v.Name, Secret: s.Secret.Name, Key: it.Key, Mode: mode(it.Mode, v.Projected.DefaultMode)})
				}
			}
		}
	}
	return out
}

func (a *kubeAuditor) networkPolicies(ctx context.Context) audit.Result {
	if !build.NetworkPolicyEnabled(a.c) {
		return audit.Combine([]audit.Part{audit.DecideNetworkPolicies(false, nil)})
	}
	var checks []audit.PolicyCheck
	var parts []audit.Part
	for _, want := range build.NetworkPolicies(a.c, build.Options{}) {
		var got networkingv1.NetworkPolicy
		err := a.cl.Get(ctx, types.NamespacedName{Namespace: a.c.Namespace, Name: want.Name}, &got)
		switch {
		case apierrors.IsNotFound(err):
			checks = append(checks, audit.PolicyCheck{Name: want.Name})
			continue
		case err != nil:
			parts = append(parts, audit.Part{Subject: want.Name, Status: audit.Warn, Evidence: "not read: " + err.Error()})
			continue
		}
		checks = append(checks, audit.PolicyCheck{Name: want.Name, Found: true, Differs: policyDiff(a.c, want, &got)})
	}
	return audit.Combine(append(parts, audit.DecideNetworkPolicies(true, checks)))
}

// policyDiff says how got differs from pgward's policy want. The status
// policy admits the operator's namespace, which the plugin does not know:
// it takes the one got names and compares the rest.
func policyDiff(c *v1.Cluster, want, got *networkingv1.NetworkPolicy) string {
	if want.Name == build.StatusPolicyName(c) {
		for _, r := range got.Spec.Ingress {
			for _, f := range r.From {
				if f.NamespaceSelector != nil {
					if ns, ok := f.NamespaceSelector.MatchLabels[corev1.LabelMetadataName]; ok {
						want = build.NetworkPolicies(c, build.Options{OperatorNamespace: ns})[1]
					}
				}
			}
		}
	}
	var d []string
	if !equality.Semantic.DeepEqual(want.Spec.PodSelector, got.Spec.PodSelector) {
		d = append(d, "pod selector")
	}
	if !equality.Semantic.DeepEqual(want.Spec.PolicyTypes, got.Spec.PolicyTypes) {
		d = append(d, "policy types")
	}
	if !equality.Semantic.DeepEqual(want.Spec.Ingress, got.Spec.Ingress) {
		d = append(d, "ingress rules")
	}
	if !equality.Semantic.DeepEqual(want.Spec.Egress, got.Spec.Egress) {
		d = append(d, "egress rules")
	}
	return strings.Join(d, ", ")
}

func (a *kubeAuditor) secret(ctx context.Context, name string) (map[string][]byte, error) {
	if d, ok := a.secrets[name]; ok {
		return d, nil
	}
	if err, ok := a.secretErr[name]; ok {
		return nil, err
	}
	var s corev1.Secret
	if err := a.cl.Get(ctx, types.NamespacedName{Namespace: a.c.Namespace, Name: name}, &s); err != nil {
		err = fmt.Errorf("secret %s: %w", name, err)
		a.secretErr[name] = err
		return nil, err
	}
	a.secrets[name] = s.Data
	return s.Data, nil
}

// certificates reads the cluster's CAs and leaf certificates. The CA is
// read from the controller secret's ca.crt (the CA secret holds its key,
// which the audit has no business reading), or from the user's CA secrets.
func (a *kubeAuditor) certificates(ctx context.Context) ([]audit.Cert, []audit.Part) {
	n := build.Secrets(a.c)
	caSecret := func(s string) string {
		if s == n.CA {
			return n.Controller
		}
		return s
	}
	return probe.Certificates(a.secretData(ctx),
		[]probe.CA{{Name: n.ServerCA, ReadFrom: caSecret(n.ServerCA)}, {Name: n.ClientCA, ReadFrom: caSecret(n.ClientCA)}},
		[]probe.Leaf{
			{Secret: n.ServerTLS, CA: n.ServerCA, Usage: x509.ExtKeyUsageServerAuth},
			{Secret: n.Replication, CA: n.ClientCA, Usage: x509.ExtKeyUsageClientAuth},
			{Secret: n.Controller, CA: n.ClientCA, Usage: x509.ExtKeyUsageClientAuth},
		})
}

// secretData reads secrets for the shared certificate checks.
func (a *kubeAuditor) secretData(ctx context.Context) probe.SecretData {
	return func(name string) (map[string][]byte, error) { return a.secret(ctx, name) }
}

func (a *kubeAuditor) certExpiry(ctx context.Context) audit.Result {
	certs, parts := a.certificates(ctx)
	return probe.CertExpiry(certs, parts, a.now)
}

func (a *kubeAuditor) certChain(ctx context.Context) audit.Result {
	certs, parts := a.certificates(ctx)
	return probe.CertChain(a.secretData(ctx), certs, parts)
}

func (a *kubeAuditor) superuser(ctx context.Context) audit.Result {
	access := build.SuperuserAccess(a.c)
	name := build.GeneratedSuperuserSecret(a.c)
	if a.c.Spec.SuperuserSecret != nil {
		name = a.c.Spec.SuperuserSecret.Name
	}
	parts := a.missingPods()
	if access {
		return audit.Combine([]audit.Part{audit.DecideSuperuserSecret(true, name, false)})
	}
	// Metadata only: the audit asks whether the secret exists, never for
	// a password.
	meta := &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}}
	err := a.cl.Get(ctx, types.NamespacedName{Namespace: a.c.Namespace, Name: name}, meta)
	switch {
	case err == nil:
		parts = append(parts, audit.DecideSuperuserSecret(false, name, true))
	case apierrors.IsNotFound(err):
		parts = append(parts, audit.DecideSuperuserSecret(false, name, false))
	default:
		parts = append(parts, audit.Part{Subject: name, Status: audit.Warn, Evidence: "could not tell whether it exists: " + err.Error()})
	}
	pw := probe.RandomPassword()
	a.eachRunning(ctx, build.PostgresPort, &parts, func(ictx context.Context, n, addr string) []audit.Part {
		at := a.pgAttempt(ictx, addr, "user=postgres dbname=postgres", pw, 0)
		out := []audit.Part{audit.DecideRefusal(n+" login as postgres with a password over TLS", at)}
		if ev, p := a.evidenceOf(ictx, n); p != nil {
			out = append(out, *p)
		} else if ev.SuperuserHasPassword != nil {
			out = append(out, audit.DecideSuperuserPassword(n, *ev.SuperuserHasPassword))
		} else {
			out = append(out, audit.Part{Subject: n, Status: audit.Warn, Evidence: "pg_authid not read: " + ev.SettingsError})
		}
		return out
	})
	return audit.Combine(parts)
}

// --- through a port-forward ---

// eachRunning runs f for each running instance with a forwarded address
// of port; an instance that cannot be reached adds a WARN (a pod that
// could not be read is the caller's to report, once: missingPods).
func (a *kubeAuditor) eachRunning(ctx context.Context, port int, parts *[]audit.Part, f func(ctx context.Context, name, addr string) []audit.Part) {
	for _, n := range a.names {
		p, ok := a.pods[n]
		if !ok {
			continue
		}
		if p.Status.Phase != corev1.PodRunning {
			*parts = append(*parts, audit.Part{Subject: n, Status: audit.Warn, Evidence: "not tried: the pod is " + orUnknown(string(p.Status.Phase))})
			continue
		}
		func() {
			ictx, cancel := context.WithTimeout(ctx, a.timeout)
			defer cancel()
			addr, stop, err := a.fw.Forward(ictx, a.c.Namespace, n, port)
			if err != nil {
				*parts = append(*parts, audit.Part{Subject: n, Status: audit.Warn, Evidence: "not tried: " + err.Error()})
				return
			}
			defer stop()
			*parts = append(*parts, f(ictx, n, addr)...)
		}()
	}
}

func (a *kubeAuditor) serverRoots() (*x509.CertPool, error) {
	if a.tlsm == nil {
		return nil, a.tlsErr
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(a.tlsm.ServerCA) {
		return nil, errors.New("the server CA holds no PEM certificate")
	}
	return pool, nil
}

// pgAttempt connects to PostgreSQL at addr over TLS verified for the
// cluster's server name, with password, offering at most maxVersion (0:
// any).
func (a *kubeAuditor) pgAttempt(ctx context.Context, addr, rest, password string, maxVersion uint16) audit.Attempt {
	roots, err := a.serverRoots()
	if err != nil {
		return audit.Attempt{Unknown: "no server CA to verify with: " + err.Error()}
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return audit.Attempt{Unknown: err.Error()}
	}
	return probe.Connect(ctx, "host="+host+" port="+port+" sslmode=require connect_timeout=3 "+rest, func(cc *pgconn.Config) {
		cc.Password = password
		cc.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: maxVersion, RootCAs: roots, ServerName: build.ServerName(a.c)} // #nosec G402 -- an attack: offering old TLS is the point
	})
}

func (a *kubeAuditor) postgresTLS12(ctx context.Context) audit.Result {
	parts := a.missingPods()
	a.eachRunning(ctx, build.PostgresPort, &parts, func(ictx context.Context, n, addr string) []audit.Part {
		at := probe.TLS12Handshake(a.pgAttempt(ictx, addr, "user=pgward_audit dbname=postgres", "", tls.VersionTLS12))
		return []audit.Part{audit.DecideRefusal(n+" TLS 1.2", at, "protocol version")}
	})
	return audit.Combine(parts)
}

func (a *kubeAuditor) replicationPassword(ctx context.Context) audit.Result {
	parts := a.missingPods()
	pw := probe.RandomPassword()
	// One port-forward per attempt: a forward whose pod end closes the
	// connection first (PostgreSQL's FATAL) may not carry the next one.
	for _, c := range []struct{ what, conninfo string }{
		{"password over TLS", "dbname=postgres"},
		{"replication with a password over TLS", "dbname=replication replication=true"},
	} {
		var ps []audit.Part
		a.eachRunning(ctx, build.PostgresPort, &ps, func(ictx context.Context, n, addr string) []audit.Part {
			at := a.pgAttempt(ictx, addr, "user=streaming_replica "+c.conninfo, pw, 0)
			return []audit.Part{audit.DecideRefusal(n+" "+c.what, at, "certificate")}
		})
		parts = append(parts, ps...)
	}
	return audit.Combine(parts)
}

// --- the status port ---

func (a *kubeAuditor) statusPort(ctx context.Context) audit.Result {
	parts := a.missingPods()
	roots, err := a.serverRoots()
	if err != nil {
		return audit.Result{Status: audit.Warn, Evidence: "no server CA to verify with: " + err.Error()}
	}
	// A certificate of the cluster's client CA that is not the
	// controller's (streaming_replica's), and the controller's name from
	// a CA of the audit's own making.
	var repl []tls.Certificate
	if data, err := a.secret(ctx, build.Secrets(a.c).Replication); err != nil {
		parts = append(parts, audit.Part{Status: audit.Warn, Evidence: "streaming_replica's certificate not tried: " + err.Error()})
	} else if c, err := tls.X509KeyPair(data[build.KeyTLSCert], data[build.KeyTLSKey]); err != nil {
		parts = append(parts, audit.Part{Status: audit.Warn, Evidence: "streaming_replica's certificate not tried: " + err.Error()})
	} else {
		repl = append(repl, c)
	}
	foreign, err := foreignControllerCert(a.now)
	if err != nil {
		return audit.Result{Status: audit.Warn, Evidence: "making a certificate of another CA: " + err.Error()}
	}
	sn := build.ServerName(a.c)
	type try struct {
		what, method, path string
		cert               []tls.Certificate
		want               []string
	}
	tries := []try{
		{"GET /pg/status without a certificate", http.MethodGet, instanceapi.PathStatus, nil, []string{"HTTP 401"}},
		{"POST /pg/command without a certificate", http.MethodPost, instanceapi.PathCommand, nil, []string{"HTTP 401"}},
		{"GET /pg/audit without a certificate", http.MethodGet, instanceapi.PathAudit, nil, []string{"HTTP 401"}},
		{"POST /pg/command with a pgward-controller certificate of another CA", http.MethodPost, instanceapi.PathCommand, []tls.Certificate{foreign}, []string{"tls: "}},
	}
	if len(repl) > 0 {
		tries = append(tries, try{"POST /pg/command with streaming_replica's certificate", http.MethodPost, instanceapi.PathCommand, repl, []string{"HTTP 403", "tls: "}})
	}
	// One port-forward per attempt: after the instance refused a
	// certificate in the handshake (it closes first), the same forward
	// may not carry another connection.
	for _, tr := range tries {
		var ps []audit.Part
		a.eachRunning(ctx, build.StatusPort, &ps, func(ictx context.Context, n, addr string) []audit.Part {
			return []audit.Part{audit.DecideRefusal(n+" "+tr.what, probe.StatusRequest(ictx, addr, sn, roots, tr.method, tr.path, tls.VersionTLS13, tr.cert...), tr.want...)}
		})
		parts = append(parts, ps...)
	}
	return audit.Combine(parts)
}

// foreignControllerCert is a client certificate named like the
// controller's, issued by a CA the audit makes and throws away.
func foreignControllerCert(now time.Time) (tls.Certificate, error) {
	ca, err := pki.NewCA(rand.Reader, now, "pgward-audit-foreign-ca")
	if err != nil {
		return tls.Certificate{}, err
	}
	kp, err := ca.IssueClient(rand.Reader, now, pki.ControllerCommonName)
	if err != nil {
		return tls.Certificate{}, err
	}
	return kp.TLSCertificate(), nil
}

func (a *kubeAuditor) statusTLS12(ctx context.Context) audit.Result {
	parts := a.missingPods()
	roots, err := a.serverRoots()
	if err != nil {
		return audit.Result{Status: audit.Warn, Evidence: "no server CA to verify with: " + err.Error()}
	}
	a.eachRunning(ctx, build.StatusPort, &parts, func(ictx context.Context, n, addr string) []audit.Part {
		return []audit.Part{audit.DecideRefusal(n+" TLS 1.2", probe.StatusRequest(ictx, addr, build.ServerName(a.c), roots, http.MethodGet, instanceapi.PathHealthz, tls.VersionTLS12), "protocol version")}
	})
	return audit.Combine(parts)
}

// evidenceOf asks instance n for its audit evidence (once), over mutual
// TLS with the controller's certificate through a port-forward. A part
// is returned when it could not.
func (a *kubeAuditor) evidenceOf(ctx context.Context, n string) (*instanceapi.AuditEvidence, *audit.Part) {
	if ev, ok := a.evidence[n]; ok {
		return ev, nil
	}
	if e, ok := a.evErr[n]; ok {
		return nil, &audit.Part{Subject: n, Status: audit.Warn, Evidence: e}
	}
	ev, err := a.askEvidence(ctx, n)
	if err != nil {
		a.evErr[n] = "could not ask the instance: " + err.Error()
		return nil, &audit.Part{Subject: n, Status: audit.Warn, Evidence: a.evErr[n]}
	}
	a.evidence[n] = ev
	return ev, nil
}

func (a *kubeAuditor) askEvidence(ctx context.Context, n string) (*instanceapi.AuditEvidence, error) {
	if a.tlsm == nil {
		return nil, a.tlsErr
	}
	p, ok := a.pods[n]
	switch {
	case !ok:
		return nil, errors.New("pod not read: " + a.podErrs[n])
	case p.Status.Phase != corev1.PodRunning:
		return nil, errors.New("the pod is " + orUnknown(string(p.Status.Phase)))
	}
	ictx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	addr, stop, err := a.fw.Forward(ictx, a.c.Namespace, n, build.StatusPort)
	if err != nil {
		return nil, err
	}
	defer stop()
	roots, err := a.serverRoots()
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(a.tlsm.ClientCert, a.tlsm.ClientKey)
	if err != nil {
		return nil, fmt.Errorf("controller certificate: %w", err)
	}
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: roots, Certificates: []tls.Certificate{cert}, ServerName: build.ServerName(a.c)},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ictx, http.MethodGet, "https://"+addr+instanceapi.PathAudit, nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("status port: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, fmt.Errorf("status port: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status port: %s: %s (an instance manager older than the audit?)", resp.Status, strings.TrimSpace(string(body)))
	}
	var ev instanceapi.AuditEvidence
	if err := json.Unmarshal(body, &ev); err != nil {
		return nil, fmt.Errorf("status port: %w", err)
	}
	return &ev, nil
}

// eachEvidence runs f on each instance's evidence.
func (a *kubeAuditor) eachEvidence(ctx context.Context, f func(n string, ev *instanceapi.AuditEvidence) audit.Part) audit.Result {
	parts := a.missingPods()
	for _, n := range a.names {
		if _, ok := a.pods[n]; !ok {
			continue
		}
		ev, p := a.evidenceOf(ctx, n)
		if p != nil {
			parts = append(parts, *p)
			continue
		}
		parts = append(parts, f(n, ev))
	}
	return audit.Combine(parts)
}

func (a *kubeAuditor) processes(ctx context.Context) audit.Result {
	return a.eachEvidence(ctx, func(n string, ev *instanceapi.AuditEvidence) audit.Part {
		if ev.ProcessesError != "" {
			return audit.Part{Subject: n, Status: audit.Warn, Evidence: "processes not listed: " + ev.ProcessesError}
		}
		var procs []audit.Proc
		for _, p := range ev.Processes {
			procs = append(procs, audit.Proc{PID: p.PID, UID: p.UID, Name: p.Name})
		}
		p := audit.DecideProcesses(procs)
		p.Subject = n
		return p
	})
}

// walDir checks each instance's WAL directory, with spec.walStorage.
func (a *kubeAuditor) walDir(ctx context.Context) audit.Result {
	if a.c.Spec.WalStorage == nil {
		return audit.Combine([]audit.Part{{Status: audit.Pass, Evidence: "no spec.walStorage: the WAL is in the data volume"}})
	}
	return a.eachEvidence(ctx, func(n string, ev *instanceapi.AuditEvidence) audit.Part {
		w := ev.WalDir
		switch {
		case w == nil:
			return audit.Part{Subject: n, Status: audit.Fail, Evidence: "the instance reports no WAL directory: its configuration has none"}
		case w.Error != "":
			return audit.Part{Subject: n, Status: audit.Fail, Evidence: "WAL directory not read: " + w.Error}
		}
		return audit.DecideWalDir(n, audit.WalDir{Dir: w.Dir, Link: w.Link, Mode: fs.FileMode(w.Mode), UID: w.UID}, int(build.PostgresUID))
	})
}

func (a *kubeAuditor) autoConf(ctx context.Context) audit.Result {
	return a.eachEvidence(ctx, func(n string, ev *instanceapi.AuditEvidence) audit.Part {
		if ev.AutoConfError != "" {
			return audit.Part{Subject: n, Status: audit.Warn, Evidence: "postgresql.auto.conf not read: " + ev.AutoConfError}
		}
		return audit.DecideAutoConfNames(n, ev.AutoConf)
	})
}

// enforced is what pgward enforces in a pod's postgresql.conf. The
// archive command names pgward's binary where the instance manager found
// it, which the plugin cannot know: archive_mode is checked, not the
// command.
func (a *kubeAuditor) enforced(n string) (map[string]string, string) {
	cfg := build.InstanceConfig(a.c, n, "", build.Options{})
	want := instance.EnforcedSettings(a.c, &cfg)
	delete(want, "archive_command")
	return want, cfg.OSUser
}

func (a *kubeAuditor) confEnforced(ctx context.Context) audit.Result {
	return a.eachEvidence(ctx, func(n string, ev *instanceapi.AuditEvidence) audit.Part {
		if ev.PostgresConf == "" {
			return audit.Part{Subject: n, Status: audit.Warn, Evidence: "postgresql.conf not read: " + ev.FilesError}
		}
		want, _ := a.enforced(n)
		return audit.DecidePostgresConf(n, ev.PostgresConf, want)
	})
}

func (a *kubeAuditor) hbaRules(ctx context.Context) audit.Result {
	return a.eachEvidence(ctx, func(n string, ev *instanceapi.AuditEvidence) audit.Part {
		if ev.HBA == "" {
			return audit.Part{Subject: n, Status: audit.Warn, Evidence: "pg_hba.conf not read: " + ev.FilesError}
		}
		_, osUser := a.enforced(n)
		want, err := pgconf.RenderHBA(a.c, osUser)
		if err != nil {
			return audit.Part{Subject: n, Status: audit.Warn, Evidence: "rendering the expected pg_hba.conf: " + err.Error()}
		}
		return audit.DecideHBA(n, ev.HBA, string(want))
	})
}

func (a *kubeAuditor) liveSettings(ctx context.Context) audit.Result {
	return a.eachEvidence(ctx, func(n string, ev *instanceapi.AuditEvidence) audit.Part {
		if ev.SettingsError != "" {
			return audit.Part{Subject: n, Status: audit.Warn, Evidence: "pg_settings not read: " + ev.SettingsError}
		}
		var rows []audit.LiveSetting
		for _, s := range ev.Settings {
			rows = append(rows, audit.LiveSetting{Name: s.Name, Setting: s.Setting, Source: s.Source, SourceFile: s.SourceFile})
		}
		var roles []audit.RoleSetting
		for _, r := range ev.RoleSettings {
			roles = append(roles, audit.RoleSetting{Database: r.Database, Role: r.Role, Name: r.Name})
		}
		want, _ := a.enforced(n)
		delete(want, "unix_socket_permissions") // shown as a number by pg_settings
		return audit.DecideLiveSettings(n, rows, roles, want, ev.ConfFile)
	})
}

// streams reads each primary's replication connections from its status
// (pg_stat_replication joined with pg_stat_ssl, as the local audit reads it).
func (a *kubeAuditor) streams(ctx context.Context) audit.Result {
	parts := a.missingPods()
	for _, n := range a.names {
		p, ok := a.pods[n]
		if !ok {
			continue
		}
		ir := InstanceReport{Name: n, Pod: n}
		ictx, cancel := context.WithTimeout(ctx, a.timeout)
		st := askInstance(ictx, a.cl, a.fw, a.c, a.tlsm, &ir)
		cancel()
		if st == nil {
			parts = append(parts, audit.Part{Subject: n, Status: audit.Warn, Evidence: "status not read (pod " + orUnknown(string(p.Status.Phase)) + "): " + ir.Error})
			continue
		}
		var ss []audit.Stream
		for _, peer := range st.Replication {
			ss = append(ss, audit.Stream{Application: peer.ApplicationName, SSL: peer.SSL, Version: peer.TLSVersion, ClientDN: peer.ClientDN})
		}
		parts = append(parts, audit.DecideStreams(n, ss))
	}
	return audit.Combine(parts)
}
