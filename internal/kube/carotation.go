package kube

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube/build"
	"github.com/pgward/pgward/internal/pki"
)

// The renewal of the generated CA keeps an overlap, so that nothing fails
// during the change (the local runtime's `rotate-ca` does the same by hand):
//
//  1. (caTrust) A new CA signs from now on; the CA secret's ca.crt, which
//     PostgreSQL's ssl_ca_file, the status port's client-CA pool, replicas
//     and clients read, becomes the bundle new + old. Every leaf stays
//     where it is.
//  2. (caClients) Once every instance reports that PostgreSQL loaded the
//     bundle, the client certificates (replication, controller, metrics)
//     are reissued under the new CA. The server certificate stays on the
//     old CA, so a client still holding the old ca.crt keeps verifying it.
//  3. (caServer) After MinCAOverlap (never later than CAFinishMargin
//     before the old CA expires), and with every instance still
//     confirming, the server certificate is reissued under the new CA.
//     Once every instance serves it, the old CA leaves the bundle and the
//     rotation is over.
//
// The state is the CA secret itself: its ca.crt holds two CAs during a
// rotation, and two annotations say which step it is at and when it
// started, so an operator restart resumes it. A user-provided CA lives in
// another secret and is never touched. A new value of the Cluster's
// annotation pgward.io/rotate-ca starts the same rotation before the CA is
// due (the overlap is the same).
const (
	// caRotationAnnotation holds the step of a rotation under way.
	caRotationAnnotation = "pgward.io/ca-rotation"
	// caRotationStartedAnnotation is when it started (RFC 3339).
	caRotationStartedAnnotation = "pgward.io/ca-rotation-started"
	// caRotateHandledAnnotation is the last value of the Cluster's
	// v1.RotateCAAnnotation acted on.
	caRotateHandledAnnotation = "pgward.io/rotate-ca-handled"

	// MinCAOverlap is how long clients have to fetch the new ca.crt before
	// the server certificate moves to the new CA. Three days of the
	// 7-day renewal window: enough for a client that copies ca.crt by a
	// daily job to catch up twice, and it leaves four days before the old
	// CA expires for the last step to complete (it waits on every
	// instance). Clients that mount the secret see it within minutes.
	MinCAOverlap = 3 * 24 * time.Hour
	// CAFinishMargin is how long before the old CA's expiry the server
	// certificate moves at the latest (the overlap is cut short rather
	// than let the served certificate expire).
	CAFinishMargin = 24 * time.Hour
)

// caPhase is a step of a CA rotation.
type caPhase string

const (
	caTrust   caPhase = "trust"
	caClients caPhase = "clients"
	caServer  caPhase = "server"
)

// caState is a rotation under way as read from the CA secret.
type caState struct {
	phase   caPhase
	started time.Time
	old     *x509.Certificate // the CA being replaced
	newFP   string            // fingerprint of the new CA
}

// keepsOld reports whether a leaf still signed by the old CA is kept at
// this step (while valid): the server certificate until caServer, the
// client certificates until caClients.
func (s *caState) keepsOld(server bool) bool {
	if s == nil {
		return false
	}
	if server {
		return s.phase != caServer
	}
	return s.phase == caTrust
}

// overlapEnd is the earliest the server certificate may move.
func (s *caState) overlapEnd() time.Time {
	end := s.started.Add(MinCAOverlap)
	if latest := s.old.NotAfter.Add(-CAFinishMargin); latest.Before(end) {
		end = latest
	}
	return end
}

// caInstance is what one instance told about the certificates its
// PostgreSQL last loaded; answered is false when it did not answer, or
// its PostgreSQL does not run (it would read the files when it starts,
// but the kubelet may not have updated them yet: not a confirmation).
type caInstance struct {
	name       string
	answered   bool
	clientCAs  []string
	serverCert string
}

// caStep is what a rotation does next.
type caStep int

const (
	caWait      caStep = iota
	caToClients        // reissue the client certificates
	caToServer         // reissue the server certificate
	caDropOld          // drop the old CA: the rotation is over
)

// decideCARotation is the rotation's decision, pure: from the state, what
// every instance reports and the time, the next step (or why it waits).
// serverFP is the fingerprint of the server certificate in its secret,
// serverOnNew whether the new CA signed it.
func decideCARotation(s *caState, insts []caInstance, serverFP string, serverOnNew bool, now time.Time) (caStep, string) {
	var untrusting []string
	for _, in := range insts {
		if !in.answered || !slices.Contains(in.clientCAs, s.newFP) {
			untrusting = append(untrusting, in.name)
		}
	}
	if len(insts) == 0 {
		untrusting = append(untrusting, "(no instance)")
	}
	if len(untrusting) > 0 {
		return caWait, "waiting for " + strings.Join(untrusting, ", ") + " to load the new CA"
	}
	switch s.phase {
	case caTrust:
		return caToClients, "every instance trusts the new CA"
	case caClients:
		if end := s.overlapEnd(); now.Before(end) {
			return caWait, "overlap: the server certificate moves to the new CA at " + end.UTC().Format(time.RFC3339)
		}
		return caToServer, "the overlap is over"
	case caServer:
		if !serverOnNew {
			return caWait, "waiting for the server certificate to be reissued under the new CA"
		}
		var stale []string
		for _, in := range insts {
			if in.serverCert != serverFP {
				stale = append(stale, in.name)
			}
		}
		if len(stale) > 0 {
			return caWait, "waiting for " + strings.Join(stale, ", ") + " to serve the new server certificate"
		}
		return caDropOld, "every instance serves the new server certificate"
	}
	return caWait, "unknown step " + string(s.phase)
}

// readCAState parses a CA secret: the CA that signs (the first of ca.crt,
// with ca.key) and, during a rotation, its state.
func readCAState(sec *corev1.Secret) (*pki.KeyPair, *caState, error) {
	bundle := sec.Data[build.KeyCACert]
	kp, err := pki.ParseKeyPair(bundle, sec.Data[build.KeyCAKey])
	if err != nil {
		return nil, nil, err
	}
	certs := bundleCerts(bundle)
	if len(certs) < 2 {
		return kp, nil, nil
	}
	s := &caState{phase: caPhase(sec.Annotations[caRotationAnnotation]), old: certs[len(certs)-1], newFP: fingerprint(kp.Cert)}
	switch s.phase {
	case caTrust, caClients, caServer:
	default:
		s.phase = caTrust // the safest step: nothing has moved yet
	}
	if t, err := time.Parse(time.RFC3339, sec.Annotations[caRotationStartedAnnotation]); err == nil {
		s.started = t
	} else {
		s.started = kp.Cert.NotBefore
	}
	return kp, s, nil
}

// advanceCARotation moves a rotation of the generated CA on by one step
// when what the instances report allows it. It runs after each
// observation; the next reconcile's ensurePKI reissues what the new step
// calls for.
func (r *ClusterReconciler) advanceCARotation(ctx context.Context, c *v1.Cluster, obs []observation) error {
	n := build.Secrets(c)
	if n.ServerCA != n.CA && n.ClientCA != n.CA {
		return nil
	}
	var sec corev1.Secret
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: c.Namespace, Name: n.CA}, &sec); err != nil {
		return fmt.Errorf("reading secret %s: %w", n.CA, err)
	}
	kp, s, err := readCAState(&sec)
	if err != nil || s == nil {
		return nil // ensureCA reports a broken secret
	}
	insts := make([]caInstance, 0, len(obs))
	for _, o := range obs {
		in := caInstance{name: o.plan.Name}
		if o.wire != nil && o.wire.PostmasterRunning {
			in.answered, in.clientCAs, in.serverCert = true, o.wire.ClientCAsSHA256, o.wire.ServerCertSHA256
		}
		insts = append(insts, in)
	}
	var serverFP string
	serverOnNew := false
	if n.ServerCA == n.CA && n.ServerTLS == c.Name+"-server" {
		var srv corev1.Secret
		if err := r.Client.Get(ctx, types.NamespacedName{Namespace: c.Namespace, Name: n.ServerTLS}, &srv); err == nil {
			if cert, err := pki.ParseCertificatePEM(srv.Data[build.KeyTLSCert]); err == nil {
				serverFP = fingerprint(cert)
				serverOnNew = cert.CheckSignatureFrom(kp.Cert) == nil
			}
		}
	} else {
		serverOnNew = true // nothing of pgward's is served: only the trust moves
		serverFP = ""
		for i := range insts {
			insts[i].serverCert = ""
		}
	}
	step, why := decideCARotation(s, insts, serverFP, serverOnNew, r.now())
	logger := log.FromContext(ctx)
	before := sec.DeepCopy()
	if sec.Annotations == nil {
		sec.Annotations = map[string]string{}
	}
	switch step {
	case caWait:
		if r.firstIn(client.ObjectKeyFromObject(c).String()+" ca "+why, 10*time.Minute) {
			logger.Info("CA rotation", "step", string(s.phase), "status", why)
		}
		return nil
	case caToClients:
		sec.Annotations[caRotationAnnotation] = string(caClients)
	case caToServer:
		sec.Annotations[caRotationAnnotation] = string(caServer)
	case caDropOld:
		sec.Data[build.KeyCACert] = certPEM(kp.Cert) // kp.CertPEM is the bundle it was read from
		delete(sec.Annotations, caRotationAnnotation)
		delete(sec.Annotations, caRotationStartedAnnotation)
	}
	if err := r.Client.Patch(ctx, &sec, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("CA rotation: updating secret %s: %w", n.CA, err)
	}
	msg := map[caStep]string{
		caToClients: "every instance loaded the new CA: the client certificates move to it",
		caToServer:  "the overlap is over: the server certificate moves to the new CA",
		caDropOld:   "every instance serves the new server certificate: the old CA is no longer trusted",
	}[step]
	logger.Info("CA rotation", "step", msg)
	r.event(c, "CARotation", msg)
	return nil
}

// event records a Normal event on the Cluster when a recorder is set.
func (r *ClusterReconciler) event(c *v1.Cluster, reason, msg string) {
	if r.Recorder != nil {
		r.Recorder.Eventf(c, nil, corev1.EventTypeNormal, reason, reason, "%s", msg)
	}
}

// bundleCerts parses every certificate of a PEM bundle, in order.
func bundleCerts(bundle []byte) []*x509.Certificate {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, bundle = pem.Decode(bundle)
		if block == nil {
			return out
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		if c, err := x509.ParseCertificate(block.Bytes); err == nil {
			out = append(out, c)
		}
	}
}

// certPEM encodes one certificate.
func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// fingerprint is the hex SHA-256 of a certificate's DER, as the instance
// managers report it.
func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}
