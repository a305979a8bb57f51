package local

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/instanceapi"
	"github.com/pgward/pgward/internal/pki"
	"github.com/pgward/pgward/internal/secrets"
)

// RotateCAOptions configure `pgward local rotate-ca`.
type RotateCAOptions struct {
	Dir string
	// Finish ends a rotation: the server certificate moves to the new CA
	// and the old CA is no longer trusted.
	Finish bool
	// Timeout bounds each wait for the instance managers.
	Timeout time.Duration
	Out     io.Writer
}

// RotateCA replaces the cluster's generated CA in two steps, so that
// nothing fails during the change:
//
//  1. (start) A new CA signs from now on; the trust bundle (the CA secret's
//     ca.crt, which PostgreSQL's ssl_ca_file, the status ports, replicas and
//     clients read) holds the new CA and the old one. Once every running
//     PostgreSQL has reloaded the bundle, the client certificates
//     (replication, controller) are reissued under the new CA. The server
//     certificate stays on the old CA, so a client still holding the old
//     ca.crt keeps verifying the server.
//  2. (--finish, once clients have the new ca.crt) The server certificate
//     is reissued under the new CA; once every PostgreSQL serves it, the old
//     CA leaves the bundle, and the command waits until every PostgreSQL has
//     reloaded that.
//
// Only the CA pgward generated is rotated: a user-provided CA is the user's
// to change in its secret.
func RotateCA(ctx context.Context, o RotateCAOptions) error {
	l := Layout{Dir: o.Dir}
	c, st, err := loadClusterState(l)
	if err != nil {
		return err
	}
	names := tlsNamesFor(c)
	caSecret := c.Name + "-ca"
	if names.ServerCA != caSecret && names.ClientCA != caSecret {
		return errors.New("the cluster uses user-provided CAs (spec.certificates): replace them in their secrets")
	}
	say := func(s string) { _, _ = fmt.Fprintln(o.Out, s) }
	unlock, err := lockUp(ctx, l, say)
	if err != nil {
		return err
	}
	defer unlock()
	if !controllerRunning(l) {
		return errors.New("the cluster is not running: a CA rotation waits for every instance manager to confirm each step; run `pgward local up` first")
	}
	r := &caRotation{layout: l, cluster: c, state: st, names: names, caSecret: caSecret,
		store: secrets.DirStore{Root: l.SecretsDir()}, timeout: o.Timeout, say: say}
	if o.Finish {
		return r.finish(ctx)
	}
	return r.start(ctx)
}

// caRotation carries one run of RotateCA.
type caRotation struct {
	layout   Layout
	cluster  *v1.Cluster
	state    *State
	names    tlsSecrets
	caSecret string
	store    secrets.DirStore
	timeout  time.Duration
	say      func(string)
	// clock and confirm replace time.Now and waitAll in tests.
	clock   func() time.Time
	confirm func(ctx context.Context, what string, ok func(*instanceapi.Status) bool) error
}

func (r *caRotation) now() time.Time {
	if r.clock != nil {
		return r.clock()
	}
	return time.Now()
}

func (r *caRotation) wait(ctx context.Context, what string, ok func(*instanceapi.Status) bool) error {
	if r.confirm != nil {
		return r.confirm(ctx, what, ok)
	}
	return r.waitAll(ctx, what, ok)
}

func (r *caRotation) start(ctx context.Context) error {
	if err := r.begin(); err != nil {
		return err
	}
	if err := r.reissueClients(ctx); err != nil {
		return err
	}
	r.say("the server certificate stays on the old CA: clients holding the old ca.crt keep working. Give clients " +
		r.layout.SecretsDir() + "/" + r.caSecret + "/ca.crt (both CAs), then run `pgward local rotate-ca --finish`")
	return nil
}

// begin makes a new CA sign, with the trust bundle new + old.
func (r *caRotation) begin() error {
	data, err := r.store.Get(r.caSecret)
	if err != nil {
		return fmt.Errorf("CA secret %q: %w", r.caSecret, err)
	}
	old := pemCerts(data[keyCACert])
	if len(old) != 1 {
		return fmt.Errorf("a CA rotation is under way (%s holds %d CAs): finish it with `pgward local rotate-ca --finish`", r.caSecret, len(old))
	}
	now := r.now()
	// A name of its own, so that nothing can take one CA for the other.
	ca, err := pki.NewCA(rand.Reader, now, r.cluster.Name+" CA "+now.UTC().Format("20060102T150405Z"))
	if err != nil {
		return fmt.Errorf("creating the new CA: %w", err)
	}
	bundle := append(append([]byte{}, ca.CertPEM...), pem.EncodeToMemory(old[0])...)
	if err := r.store.Replace(r.caSecret, map[string][]byte{keyCACert: bundle, keyCAKey: ca.KeyPEM}); err != nil {
		return fmt.Errorf("storing the new CA: %w", err)
	}
	r.say("new CA " + fingerprintDER(ca.Cert.Raw)[:16] + " signs from now on; " + r.caSecret + "/ca.crt trusts it and the old one")
	return nil
}

// reissueClients waits until every PostgreSQL trusts the new CA, then
// moves the client certificates (replication, controller) to it. Leaves
// already signed by it are kept, so that it can run again after an
// interruption.
func (r *caRotation) reissueClients(ctx context.Context) error {
	data, err := r.store.Get(r.caSecret)
	if err != nil {
		return fmt.Errorf("CA secret %q: %w", r.caSecret, err)
	}
	ca, err := pki.ParseKeyPair(data[keyCACert], data[keyCAKey])
	if err != nil {
		return fmt.Errorf("CA secret %q: %w", r.caSecret, err)
	}
	newFP := fingerprintDER(ca.Cert.Raw)
	if err := r.waitClientCA(ctx, "every PostgreSQL trusting the new CA", func(s *instanceapi.Status) bool {
		return slices.Contains(s.ClientCAsSHA256, newFP)
	}); err != nil {
		return err
	}
	for _, leaf := range r.generatedLeaves() {
		if leaf.server {
			continue // clients holding the old ca.crt must still verify it
		}
		if _, err := r.reissueUnder(leaf, ca); err != nil {
			return err
		}
	}
	return nil
}

func (r *caRotation) finish(ctx context.Context) error {
	data, err := r.store.Get(r.caSecret)
	if err != nil {
		return fmt.Errorf("CA secret %q: %w", r.caSecret, err)
	}
	certs := pemCerts(data[keyCACert])
	if len(certs) < 2 {
		return errors.New("no CA rotation is under way: start one with `pgward local rotate-ca`")
	}
	ca, err := pki.ParseKeyPair(data[keyCACert], data[keyCAKey])
	if err != nil {
		return fmt.Errorf("CA secret %q: %w", r.caSecret, err)
	}
	newFP := fingerprintDER(ca.Cert.Raw)
	// Again, in case the start stopped before its confirmation.
	if err := r.waitClientCA(ctx, "every PostgreSQL trusting the new CA", func(s *instanceapi.Status) bool {
		return slices.Contains(s.ClientCAsSHA256, newFP)
	}); err != nil {
		return err
	}
	var serverFP string
	for _, leaf := range r.generatedLeaves() {
		fp, err := r.reissueUnder(leaf, ca)
		if err != nil {
			return err
		}
		if leaf.server {
			serverFP = fp
		}
	}
	if serverFP != "" {
		if err := r.wait(ctx, "every PostgreSQL serving the new server certificate", func(s *instanceapi.Status) bool {
			return s.ServerCertSHA256 == serverFP
		}); err != nil {
			return err
		}
	}
	only := pem.EncodeToMemory(certs[0])
	if err := r.store.Replace(r.caSecret, map[string][]byte{keyCACert: only, keyCAKey: data[keyCAKey]}); err != nil {
		return fmt.Errorf("dropping the old CA: %w", err)
	}
	if err := r.waitClientCA(ctx, "every PostgreSQL trusting the new CA alone", func(s *instanceapi.Status) bool {
		return slices.Equal(s.ClientCAsSHA256, []string{newFP})
	}); err != nil {
		return err
	}
	r.say("CA rotation finished: every certificate is under CA " + newFP[:16] + ", and the old CA is trusted nowhere")
	return nil
}

// waitClientCA waits for what PostgreSQL reports of its client CAs
// (ssl_ca_file): only when the generated CA is one. When it is the server CA
// alone (the user provides the client CA), PostgreSQL never loads it, no
// client certificate comes from it, and the status has nothing to confirm.
func (r *caRotation) waitClientCA(ctx context.Context, what string, ok func(*instanceapi.Status) bool) error {
	if r.names.ClientCA != r.caSecret {
		return nil
	}
	return r.wait(ctx, what, ok)
}

// generatedLeaves lists the leaves pgward issues from the generated CA.
func (r *caRotation) generatedLeaves() []leafSpec {
	var out []leafSpec
	for _, leaf := range leafSpecs(r.cluster, r.names) {
		if !leaf.userGiven && leaf.ca == r.caSecret {
			out = append(out, leaf)
		}
	}
	return out
}

// reissueUnder makes sure leaf is signed by ca, reissuing it if not, and
// returns its certificate's fingerprint.
func (r *caRotation) reissueUnder(leaf leafSpec, ca *pki.KeyPair) (string, error) {
	if data, err := r.store.Get(leaf.secret); err == nil {
		if kp, err := pki.ParseKeyPair(data[keyTLSCert], data[keyTLSKey]); err == nil && kp.Cert.CheckSignatureFrom(ca.Cert) == nil {
			return fingerprintDER(kp.Cert.Raw), nil
		}
	}
	if _, err := ensureLeaf(r.store, leaf.secret, leaf.ca, leaf.cn, leaf.server, leaf.dns, true, rand.Reader, r.now()); err != nil {
		return "", err
	}
	r.say("reissued " + leaf.secret + " (" + leaf.cn + ") under the new CA")
	data, err := r.store.Get(leaf.secret)
	if err != nil {
		return "", err
	}
	kp, err := pki.ParseKeyPair(data[keyTLSCert], data[keyTLSKey])
	if err != nil {
		return "", err
	}
	return fingerprintDER(kp.Cert.Raw), nil
}

// waitAll polls every instance until each one whose PostgreSQL runs
// satisfies ok (one that is down reads the files when it starts). It
// builds the status client from the files at every round: they are what
// the rotation changes.
func (r *caRotation) waitAll(ctx context.Context, what string, ok func(*instanceapi.Status) bool) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	var pending []string
	for {
		pending = pending[:0]
		cl, err := newStatusClient(r.layout, r.cluster.Name, 2*time.Second)
		if err != nil {
			return err
		}
		sts, errs := observe(ctx, cl, r.state)
		for i, st := range sts {
			switch {
			case errs[i] != nil:
				pending = append(pending, r.state.Instances[i].Name+" (unreachable)")
			case st.PostmasterRunning && !ok(st):
				pending = append(pending, st.Name)
			}
		}
		if len(pending) == 0 {
			r.say(what + ": confirmed by every instance")
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: still not confirmed by %s after %s (the rotation stopped here; run the same command again)",
				what, strings.Join(pending, ", "), r.timeout)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// loadClusterState reads the stored manifest and state of the cluster in l.
func loadClusterState(l Layout) (*v1.Cluster, *State, error) {
	manifest, err := os.ReadFile(l.ClusterFile())
	if err != nil {
		return nil, nil, err
	}
	c, err := v1.LoadAndValidate(manifest)
	if err != nil {
		return nil, nil, err
	}
	st, err := LoadState(l)
	if err != nil {
		return nil, nil, err
	}
	return c, st, nil
}

// pemCerts returns the CERTIFICATE blocks of a PEM bundle.
func pemCerts(bundle []byte) []*pem.Block {
	var out []*pem.Block
	for {
		var block *pem.Block
		block, bundle = pem.Decode(bundle)
		if block == nil {
			return out
		}
		if block.Type == "CERTIFICATE" {
			out = append(out, block)
		}
	}
}

// fingerprintDER is the hex SHA-256 of a certificate's DER, as the
// instance managers report it.
func fingerprintDER(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}
