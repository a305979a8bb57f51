package local

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/instanceapi"
	"github.com/pgward/pgward/internal/pki"
	"github.com/pgward/pgward/internal/secrets"
)

func newCA(t *testing.T, at time.Time, name string) *pki.KeyPair {
	t.Helper()
	ca, err := pki.NewCA(rand.Reader, at, name)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func TestDecideCA(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	old := newCA(t, t0, "old").Cert
	due := t0.Add(pki.Validity - pki.RenewBefore)
	fresh := newCA(t, due, "new").Cert
	finishAt := old.NotAfter.Add(-caFinishMargin)
	for _, tc := range []struct {
		name         string
		bundle       []*x509.Certificate
		clientsOnNew bool
		now          time.Time
		want         caStep
	}{
		{"no CA: ensurePKI creates it", nil, false, t0, caNothing},
		{"a fresh CA", []*x509.Certificate{old}, false, t0.Add(time.Hour), caNothing},
		{"an hour before it is due", []*x509.Certificate{old}, false, due.Add(-time.Hour), caNothing},
		{"due", []*x509.Certificate{old}, false, due, caStart},
		{"due, an hour before expiry", []*x509.Certificate{old}, false, old.NotAfter.Add(-time.Hour), caStart},
		{"expired: ensurePKI replaces it at once, nothing verifies against it", []*x509.Certificate{old}, false, old.NotAfter, caNothing},
		{"not valid yet (the clock went back): replaced at once", []*x509.Certificate{old}, false, t0.Add(-time.Hour), caNothing},
		{"overlap, clients not moved", []*x509.Certificate{fresh, old}, false, due.Add(time.Minute), caClients},
		{"overlap, clients not moved, past the finish time: clients first", []*x509.Certificate{fresh, old}, false, finishAt, caClients},
		{"overlap, clients moved", []*x509.Certificate{fresh, old}, true, due.Add(time.Hour), caOverlap},
		{"overlap, a second before the finish", []*x509.Certificate{fresh, old}, true, finishAt.Add(-time.Second), caOverlap},
		{"the finish time", []*x509.Certificate{fresh, old}, true, finishAt, caFinish},
		{"the old CA expired meanwhile (controller down)", []*x509.Certificate{fresh, old}, true, old.NotAfter.Add(time.Hour), caFinish},
	} {
		d := decideCA(tc.bundle, tc.clientsOnNew, tc.now)
		if d.step != tc.want {
			t.Errorf("%s: step %v, want %v", tc.name, d.step, tc.want)
		}
		if len(tc.bundle) > 1 && (!d.finishAt.Equal(finishAt) || !d.finishAt.Before(old.NotAfter)) {
			t.Errorf("%s: finish at %v, want %v (before the old CA's expiry %v)", tc.name, d.finishAt, finishAt, old.NotAfter)
		}
	}
	// The overlap a renewal started when due gives clients: the rest of
	// the renewal window less the margin.
	if got := finishAt.Sub(due); got != pki.RenewBefore-caFinishMargin {
		t.Errorf("overlap %v", got)
	}
}

// renewal drives autoRenewCA on a store with a fake clock and confirmations.
type renewal struct {
	t       *testing.T
	store   secrets.DirStore
	cluster *v1.Cluster
	now     time.Time
	// unconfirmed makes every wait for the instances fail.
	unconfirmed bool
	// refuse makes the waits whose description contains it fail.
	refuse string
	waits  []string
}

func (rn *renewal) step() (time.Duration, error) {
	// A new caRotation each time, as a restarted controller makes: what
	// it knows comes from the secrets.
	r := generatedCARotation(Layout{Dir: rn.t.TempDir()}, rn.cluster, &State{}, rn.store)
	if r == nil {
		rn.t.Fatal("no rotation for the generated CA")
	}
	r.clock = func() time.Time { return rn.now }
	r.confirm = func(_ context.Context, what string, _ func(*instanceapi.Status) bool) error {
		rn.waits = append(rn.waits, what)
		if rn.unconfirmed || (rn.refuse != "" && strings.Contains(what, rn.refuse)) {
			return errors.New("not confirmed")
		}
		return nil
	}
	next, err := r.autoRenewCA(context.Background())
	// The controller then renews the leaves due, as every check does.
	if _, _, perr := ensurePKI(rn.store, rn.cluster, rand.Reader, rn.now); perr != nil {
		rn.t.Fatal(perr)
	}
	return next, err
}

func (rn *renewal) cas() []*x509.Certificate {
	data, err := rn.store.Get("demo-ca")
	if err != nil {
		rn.t.Fatal(err)
	}
	return bundleCerts(data[keyCACert])
}

func (rn *renewal) leaf(name string) *x509.Certificate {
	data, err := rn.store.Get(name)
	if err != nil {
		rn.t.Fatal(err)
	}
	c, err := pki.ParseCertificatePEM(data[keyTLSCert])
	if err != nil {
		rn.t.Fatal(err)
	}
	return c
}

func signedBy(c, ca *x509.Certificate) bool { return c.CheckSignatureFrom(ca) == nil }

// TestAutoRenewCA follows the controller's renewal of the generated CA from
// the day it is due to the finish, restarting between every step.
func TestAutoRenewCA(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rn := &renewal{t: t, store: secrets.DirStore{Root: t.TempDir()}, cluster: cluster(t, nil), now: t0}
	if _, _, err := ensurePKI(rn.store, rn.cluster, rand.Reader, t0); err != nil {
		t.Fatal(err)
	}
	old := rn.cas()[0]
	oldServer := rn.leaf("demo-server")

	rn.now = t0.Add(time.Hour)
	if next, err := rn.step(); err != nil || next != pkiCheckInterval || len(rn.cas()) != 1 || !rn.cas()[0].Equal(old) {
		t.Fatalf("a fresh CA: next %v, %v, %d CAs", next, err, len(rn.cas()))
	}

	// Due; the instances do not confirm they trust the new CA (yet).
	rn.now = old.NotAfter.Add(-pki.RenewBefore).Add(time.Minute)
	rn.unconfirmed = true
	next, err := rn.step()
	if err == nil || next != pkiRetryInterval {
		t.Fatalf("unconfirmed start: next %v, err %v", next, err)
	}
	cas := rn.cas()
	if len(cas) != 2 || !cas[1].Equal(old) {
		t.Fatalf("after the start the bundle holds %d CAs, want new + old", len(cas))
	}
	newCA := cas[0]
	for _, s := range []string{"demo-server", "demo-replication", "demo-controller"} {
		if !signedBy(rn.leaf(s), old) {
			t.Errorf("%s left the old CA before every instance trusts the new one", s)
		}
	}

	// Restarted, confirmed: the client certificates move, the server's stays.
	rn.unconfirmed = false
	rn.now = rn.now.Add(pkiRetryInterval)
	finishAt := old.NotAfter.Add(-caFinishMargin)
	if next, err := rn.step(); err != nil || next != pkiCheckInterval {
		t.Fatalf("clients step: next %v, %v", next, err)
	}
	for _, s := range []string{"demo-replication", "demo-controller"} {
		if !signedBy(rn.leaf(s), newCA) {
			t.Errorf("%s is not on the new CA", s)
		}
	}
	if !rn.leaf("demo-server").Equal(oldServer) {
		t.Fatal("the server certificate changed at the start of the overlap (it is due, but held)")
	}
	if len(rn.cas()) != 2 {
		t.Fatal("the overlap ended early")
	}
	replication := rn.leaf("demo-replication")

	// Every check during the overlap changes nothing (idempotent), and
	// the check before the finish comes at the finish time.
	for _, at := range []time.Time{rn.now.Add(time.Hour), finishAt.Add(-2 * time.Hour), finishAt.Add(-30 * time.Minute)} {
		rn.now = at
		next, err := rn.step()
		if err != nil || len(rn.cas()) != 2 || !rn.leaf("demo-server").Equal(oldServer) || !rn.leaf("demo-replication").Equal(replication) {
			t.Fatalf("at %v during the overlap: %v, %d CAs", at, err, len(rn.cas()))
		}
		if want := min(pkiCheckInterval, finishAt.Sub(at)); next != want {
			t.Errorf("at %v: next check in %v, want %v", at, next, want)
		}
	}

	// The finish: the server certificate moves, the old CA goes.
	rn.waits = nil
	rn.now = finishAt
	if next, err := rn.step(); err != nil || next != pkiCheckInterval {
		t.Fatalf("finish: next %v, %v", next, err)
	}
	cas = rn.cas()
	if len(cas) != 1 || !cas[0].Equal(newCA) {
		t.Fatalf("after the finish the bundle holds %d CAs", len(cas))
	}
	if s := rn.leaf("demo-server"); !signedBy(s, newCA) || !rn.now.Before(old.NotAfter) {
		t.Error("the server certificate is not on the new CA before the old CA's expiry")
	}
	if !strings.Contains(strings.Join(rn.waits, "; "), "every PostgreSQL trusting the new CA alone") {
		t.Errorf("the finish did not wait for the instances: %q", rn.waits)
	}

	// Done: the next checks change nothing until the new CA is due.
	server := rn.leaf("demo-server")
	rn.now = rn.now.Add(time.Hour)
	if next, err := rn.step(); err != nil || next != pkiCheckInterval || len(rn.cas()) != 1 || !rn.leaf("demo-server").Equal(server) {
		t.Fatalf("after the finish: next %v, %v", next, err)
	}
}

// TestAutoRenewCALate: a controller that was down through the renewal
// window finds a CA with hours left: the overlap cannot outlive the old CA,
// so the renewal finishes at once.
func TestAutoRenewCALate(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rn := &renewal{t: t, store: secrets.DirStore{Root: t.TempDir()}, cluster: cluster(t, nil), now: t0}
	if _, _, err := ensurePKI(rn.store, rn.cluster, rand.Reader, t0); err != nil {
		t.Fatal(err)
	}
	old := rn.cas()[0]
	rn.now = old.NotAfter.Add(-10 * time.Hour)
	if _, err := rn.step(); err != nil {
		t.Fatal(err)
	}
	cas := rn.cas()
	if len(cas) != 1 || cas[0].Equal(old) {
		t.Fatal("the renewal did not finish")
	}
	for _, s := range []string{"demo-server", "demo-replication", "demo-controller"} {
		if !signedBy(rn.leaf(s), cas[0]) {
			t.Errorf("%s is not on the new CA", s)
		}
	}
}

// TestAutoRenewCALeavesUserCAs: user-provided CAs are never renewed, even
// when due; when only the server CA is the user's, the generated client CA
// is renewed and the user's secrets stay as they are.
func TestAutoRenewCALeavesUserCAs(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	store := secrets.DirStore{Root: t.TempDir()}
	ca := newCA(t, t0, "my CA")
	srv, err := ca.IssueServer(rand.Reader, t0, "db", []string{"localhost"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Put("my-ca", map[string][]byte{"ca.crt": ca.CertPEM, "ca.key": ca.KeyPEM}); err != nil {
		t.Fatal(err)
	}
	if err := store.Put("my-server", map[string][]byte{"tls.crt": srv.CertPEM, "tls.key": srv.KeyPEM}); err != nil {
		t.Fatal(err)
	}
	both := &v1.CertificatesConfiguration{ServerCASecret: "my-ca", ServerTLSSecret: "my-server", ClientCASecret: "my-ca"}
	if generatedCARotation(Layout{Dir: t.TempDir()}, cluster(t, both), &State{}, store) != nil {
		t.Fatal("a rotation was prepared for user-provided CAs")
	}

	serverOnly := &v1.CertificatesConfiguration{ServerCASecret: "my-ca", ServerTLSSecret: "my-server"}
	rn := &renewal{t: t, store: store, cluster: cluster(t, serverOnly), now: t0}
	if _, _, err := ensurePKI(store, rn.cluster, rand.Reader, t0); err != nil {
		t.Fatal(err)
	}
	old := rn.cas()[0]
	for _, at := range []time.Time{old.NotAfter.Add(-pki.RenewBefore), old.NotAfter.Add(-caFinishMargin)} {
		rn.now = at
		if _, err := rn.step(); err != nil {
			t.Fatal(err)
		}
	}
	if cas := rn.cas(); len(cas) != 1 || cas[0].Equal(old) || !signedBy(rn.leaf("demo-replication"), cas[0]) {
		t.Error("the generated client CA was not renewed")
	}

	// The user provides the client CA; the generated CA is the server CA
	// alone. PostgreSQL never loads it as a client CA, so the renewal must
	// not wait for that (it would never come).
	clientOnly := &v1.CertificatesConfiguration{ClientCASecret: "my-ca", ReplicationTLSSecret: "my-replication"}
	repl, err := ca.IssueClient(rand.Reader, t0, "streaming_replica")
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Put("my-replication", map[string][]byte{"tls.crt": repl.CertPEM, "tls.key": repl.KeyPEM}); err != nil {
		t.Fatal(err)
	}
	rn = &renewal{t: t, store: secrets.DirStore{Root: t.TempDir()}, cluster: cluster(t, clientOnly), now: t0, refuse: "trusting"}
	for _, name := range []string{"my-ca", "my-replication"} {
		data, _ := store.Get(name)
		if err := rn.store.Put(name, data); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := ensurePKI(rn.store, rn.cluster, rand.Reader, t0); err != nil {
		t.Fatal(err)
	}
	old = rn.cas()[0]
	for _, at := range []time.Time{old.NotAfter.Add(-pki.RenewBefore), old.NotAfter.Add(-caFinishMargin)} {
		rn.now = at
		if _, err := rn.step(); err != nil {
			t.Fatalf("generated server CA alone: %v (waits %q)", err, rn.waits)
		}
	}
	if cas := rn.cas(); len(cas) != 1 || cas[0].Equal(old) || !signedBy(rn.leaf("demo-server"), cas[0]) {
		t.Error("the generated server CA was not renewed")
	}
	if !strings.Contains(strings.Join(rn.waits, "; "), "serving the new server certificate") {
		t.Errorf("the finish did not wait for the new server certificate: %q", rn.waits)
	}

	for name, want := range map[string][]byte{"my-ca": ca.CertPEM, "my-server": srv.CertPEM} {
		got, err := store.Get(name)
		key := "ca.crt"
		if name == "my-server" {
			key = "tls.crt"
		}
		if err != nil || string(got[key]) != string(want) {
			t.Errorf("the user's secret %s changed", name)
		}
	}
}

// TestCertificateCheckYieldsTheLock: the controller's check never runs
// beside `up`, `down` or `rotate-ca`, and does not wait for them.
func TestCertificateCheckYieldsTheLock(t *testing.T) {
	l := Layout{Dir: t.TempDir()}
	if err := os.MkdirAll(l.SecretsDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	c := cluster(t, nil)
	store := secrets.DirStore{Root: l.SecretsDir()}
	t0 := time.Now().Add(-(pki.Validity - time.Hour)) // due, an hour left
	if _, _, err := ensurePKI(store, c, rand.Reader, t0); err != nil {
		t.Fatal(err)
	}
	before, _ := store.Get("demo-ca")
	unlock, err := lockUp(context.Background(), l, func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	h := &haLoop{layout: l, cluster: c, state: &State{}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	start := time.Now()
	if next := h.checkCertificates(context.Background()); next != pkiRetryInterval || time.Since(start) > time.Second {
		t.Errorf("with the lock held: next %v after %v", next, time.Since(start))
	}
	if after, _ := store.Get("demo-ca"); string(after["ca.crt"]) != string(before["ca.crt"]) {
		t.Error("the check changed the CA while another command held the lock")
	}
	unlock()
	if _, ok, err := tryLockUp(l); !ok || err != nil {
		t.Errorf("after release: %v %v", ok, err)
	}
}
