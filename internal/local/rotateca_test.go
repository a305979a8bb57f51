package local

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/pgward/pgward/internal/pki"
	"github.com/pgward/pgward/internal/secrets"
)

// TestEnsurePKIKeepsTheOverlap: during a CA rotation the CA secret holds
// the new CA (signing) and the old one; the renewal check (the controller's
// hourly one, any `up`) must leave the server certificate on the old CA,
// or clients still holding the old ca.crt would fail before --finish.
func TestEnsurePKIKeepsTheOverlap(t *testing.T) {
	store := secrets.DirStore{Root: t.TempDir()}
	now := time.Now()
	if _, _, err := ensurePKI(store, cluster(t, nil), rand.Reader, now); err != nil {
		t.Fatal(err)
	}
	before, err := store.Get("demo-server")
	if err != nil {
		t.Fatal(err)
	}
	old, err := store.Get("demo-ca")
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.NewCA(rand.Reader, now, "demo CA new")
	if err != nil {
		t.Fatal(err)
	}
	bundle := append(append([]byte{}, ca.CertPEM...), old["ca.crt"]...)
	if err := store.Replace("demo-ca", map[string][]byte{"ca.crt": bundle, "ca.key": ca.KeyPEM}); err != nil {
		t.Fatal(err)
	}
	if _, notes, err := ensurePKI(store, cluster(t, nil), rand.Reader, now.Add(time.Hour)); err != nil || len(notes) != 0 {
		t.Fatalf("during the overlap the renewal check reissued %v (%v)", notes, err)
	}
	after, _ := store.Get("demo-server")
	if string(after["tls.crt"]) != string(before["tls.crt"]) {
		t.Error("the server certificate left the old CA before --finish")
	}
	// A leaf due for renewal during the overlap is left to the rotation's
	// steps while it has more than caFinishMargin left...
	due := now.Add(pki.Validity - pki.RenewBefore + time.Hour)
	if issued, err := ensureLeaf(store, "demo-server", "demo-ca", "demo-rw", true, []string{"localhost"}, false, rand.Reader, due); err != nil || issued {
		t.Fatalf("a leaf on the old CA, due, during the overlap: issued %v (%v)", issued, err)
	}
	// ...and issued by the new CA when it nears its expiry.
	later := now.Add(pki.Validity - caFinishMargin + time.Hour)
	if _, err := ensureLeaf(store, "demo-server", "demo-ca", "demo-rw", true, []string{"localhost"}, false, rand.Reader, later); err != nil {
		t.Fatal(err)
	}
	renewed, _ := store.Get("demo-server")
	kp, err := pki.ParseKeyPair(renewed["tls.crt"], renewed["tls.key"])
	if err != nil || kp.Cert.CheckSignatureFrom(ca.Cert) != nil {
		t.Errorf("a renewal during the overlap: %v, signed by the new CA: %v", err, err == nil && kp.Cert.CheckSignatureFrom(ca.Cert) == nil)
	}
}

func TestSignedByOneOf(t *testing.T) {
	now := time.Now()
	a, _ := pki.NewCA(rand.Reader, now, "a")
	b, _ := pki.NewCA(rand.Reader, now, "b")
	c, _ := pki.NewCA(rand.Reader, now, "c")
	leaf, err := b.IssueClient(rand.Reader, now, "x")
	if err != nil {
		t.Fatal(err)
	}
	if !signedByOneOf(leaf.Cert, append(append([]byte{}, a.CertPEM...), b.CertPEM...)) {
		t.Error("a leaf of the bundle's second CA was refused")
	}
	if signedByOneOf(leaf.Cert, append(append([]byte{}, a.CertPEM...), c.CertPEM...)) {
		t.Error("a leaf of a CA outside the bundle was accepted")
	}
	if len(pemCerts(append(append([]byte{}, a.CertPEM...), b.CertPEM...))) != 2 {
		t.Error("pemCerts does not see both certificates")
	}
}
