package kube_test

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/instanceapi"
	"github.com/pgward/pgward/internal/kube"
	"github.com/pgward/pgward/internal/pki"
	"github.com/pgward/pgward/internal/plan/plantest"
)

// caSimInstances adds to simInstances what each instance's PostgreSQL
// last loaded (the fingerprints of the client CAs and of the server
// certificate), which the test sets as the kubelet and the instance
// managers would: by reading the secrets.
type caSimInstances struct {
	*simInstances
	mu     sync.Mutex
	loaded map[string][2][]string // name -> {client CAs, {server cert}}
}

func (s *caSimInstances) Status(ctx context.Context, in kube.Instance, ack uint64) (*instanceapi.Status, error) {
	st, err := s.simInstances.Status(ctx, in, ack)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, ok := s.loaded[in.Name]; ok && st.PostmasterRunning {
		st.ClientCAsSHA256 = l[0]
		if len(l[1]) == 1 {
			st.ServerCertSHA256 = l[1][0]
		}
	}
	return st, nil
}

// TestCARotationOverlap: a Cluster whose generated CA falls due goes
// through the overlap: the bundle first, the client certificates once
// every instance loaded it, the server certificate after MinCAOverlap,
// the old CA dropped once every instance serves the new server
// certificate. A client holding only the old ca.crt verifies the server
// until the last step, and no instance is restarted.
func TestCARotationOverlap(t *testing.T) {
	ns := newNamespace(t, true)
	ctx := ctxFor(t)
	c := sampleCluster(t, ns)
	c.Name = "rot"
	createCluster(t, c)
	names := []string{"rot-1", "rot-2", "rot-3"}

	var mu sync.Mutex
	clock := time.Now().UTC().Truncate(time.Second)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	sim := plantest.NewSim(clock, kube.DefaultTiming().SelfFence, names...)
	advance := func(d time.Duration) {
		mu.Lock()
		clock = clock.Add(d)
		mu.Unlock()
		sim.Now = now()
		sim.Step()
	}
	instances := &caSimInstances{simInstances: &simInstances{sim: sim}, loaded: map[string][2][]string{}}
	r := newReconciler(instances, now)

	secret := func(name string) *corev1.Secret {
		var s corev1.Secret
		if err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &s); err != nil {
			t.Fatal(err)
		}
		return &s
	}
	fp := func(der []byte) string { sum := sha256.Sum256(der); return hex.EncodeToString(sum[:]) }
	caCerts := func() []*x509.Certificate {
		var out []*x509.Certificate
		rest := secret("rot-ca").Data["ca.crt"]
		for {
			var b *pem.Block
			b, rest = pem.Decode(rest)
			if b == nil {
				return out
			}
			out = append(out, parseCert(t, pem.EncodeToMemory(b)))
		}
	}
	// load makes instances read the files as the secrets now are.
	load := func(which ...string) {
		var cas []string
		for _, ca := range caCerts() {
			cas = append(cas, fp(ca.Raw))
		}
		server := fp(parseCert(t, secret("rot-server").Data["tls.crt"]).Raw)
		instances.mu.Lock()
		defer instances.mu.Unlock()
		for _, n := range which {
			instances.loaded[n] = [2][]string{cas, {server}}
		}
	}
	status := func() v1.ClusterStatus {
		var got v1.Cluster
		if err := admin.Get(ctx, client.ObjectKeyFromObject(c), &got); err != nil {
			t.Fatal(err)
		}
		return got.Status
	}
	leaf := func(name string) *x509.Certificate { return parseCert(t, secret(name).Data["tls.crt"]) }
	clients := []string{"rot-replication", "rot-controller", "rot-metrics"}
	phase := func() string { return secret("rot-ca").Annotations["pgward.io/ca-rotation"] }

	for i := 0; ; i++ {
		reconcileOnce(t, r, c)
		load(names...)
		advance(time.Second)
		sim.Write()
		if st := status(); st.CurrentPrimary == "rot-1" && st.ReadyInstances == 3 && st.Phase == kube.PhaseHealthy {
			break
		}
		if i > 30 {
			t.Fatalf("cluster not healthy after %d rounds: %+v", i, status())
		}
	}
	oldCA := caCerts()
	if len(oldCA) != 1 {
		t.Fatalf("ca.crt holds %d certificates", len(oldCA))
	}
	oldServer := leaf("rot-server")
	oldClients := map[string]*x509.Certificate{}
	for _, n := range clients {
		oldClients[n] = leaf(n)
	}
	// A client that holds the old ca.crt and never updates it.
	oldClientVerifies := func() error {
		return pki.Verify(oldCA[0], leaf("rot-server"), x509.ExtKeyUsageServerAuth, now())
	}
	before := snapshot(t, ns)

	// 84 days on, the CA is due (7 days before its 90 end).
	advance(84 * 24 * time.Hour)
	reconcileOnce(t, r, c)
	cas := caCerts()
	if len(cas) != 2 || !cas[1].Equal(oldCA[0]) || cas[0].Equal(oldCA[0]) || phase() != "trust" {
		t.Fatalf("after the CA fell due: ca.crt holds %d certificates, step %q", len(cas), phase())
	}
	newCA := cas[0]
	if cas[0].Subject.CommonName == oldCA[0].Subject.CommonName {
		t.Errorf("the new CA has the old one's name %q", cas[0].Subject.CommonName)
	}
	// Until every instance loaded the bundle, no leaf moves, although
	// they are all due (their validity ends with the old CA's).
	load("rot-1", "rot-2")
	for range 3 {
		reconcileOnce(t, r, c)
		advance(time.Second)
	}
	if phase() != "trust" {
		t.Fatalf("the rotation went on to %q with rot-3 not trusting the new CA", phase())
	}
	for _, n := range append(clients, "rot-server") {
		if !leaf(n).Equal(map[bool]*x509.Certificate{true: oldServer, false: oldClients[n]}[n == "rot-server"]) {
			t.Errorf("%s was reissued before every instance trusted the new CA", n)
		}
	}
	load(names...)
	reconcileOnce(t, r, c) // observes the confirmation
	reconcileOnce(t, r, c) // reissues the client certificates
	if phase() != "clients" {
		t.Fatalf("step %q, want clients", phase())
	}
	for _, n := range clients {
		if err := leaf(n).CheckSignatureFrom(newCA); err != nil {
			t.Errorf("%s not under the new CA: %v", n, err)
		}
	}
	if !leaf("rot-server").Equal(oldServer) {
		t.Error("the server certificate moved before the overlap ended")
	}
	if err := oldClientVerifies(); err != nil {
		t.Errorf("during the overlap a client with the old ca.crt: %v", err)
	}

	// The overlap: the server certificate stays until MinCAOverlap.
	advance(kube.MinCAOverlap - time.Minute)
	reconcileOnce(t, r, c)
	reconcileOnce(t, r, c)
	if phase() != "clients" || !leaf("rot-server").Equal(oldServer) {
		t.Fatalf("before the overlap ended: step %q, server moved %v", phase(), !leaf("rot-server").Equal(oldServer))
	}
	if err := oldClientVerifies(); err != nil {
		t.Errorf("at the end of the overlap a client with the old ca.crt: %v", err)
	}
	advance(2 * time.Minute)
	reconcileOnce(t, r, c) // overlap over
	reconcileOnce(t, r, c) // reissues the server certificate
	if phase() != "server" {
		t.Fatalf("step %q, want server", phase())
	}
	if err := leaf("rot-server").CheckSignatureFrom(newCA); err != nil {
		t.Fatalf("the server certificate is not under the new CA: %v", err)
	}
	// The old CA stays trusted until every instance serves the new server
	// certificate.
	for range 2 {
		reconcileOnce(t, r, c)
	}
	if len(caCerts()) != 2 {
		t.Fatal("the old CA was dropped before every instance served the new server certificate")
	}
	load(names...)
	reconcileOnce(t, r, c)
	reconcileOnce(t, r, c)
	if cas := caCerts(); len(cas) != 1 || !cas[0].Equal(newCA) || phase() != "" {
		t.Fatalf("after the rotation: ca.crt holds %d certificates, step %q", len(cas), phase())
	}
	if _, ok := secret("rot-ca").Annotations["pgward.io/ca-rotation-started"]; ok {
		t.Error("the start annotation stayed")
	}
	if err := oldClientVerifies(); err == nil {
		t.Error("after the rotation the old CA still verifies the server")
	}
	// Steady again: nothing is reissued.
	settled := map[string]*x509.Certificate{}
	for _, n := range append(clients, "rot-server") {
		settled[n] = leaf(n)
	}
	load(names...)
	for range 3 {
		reconcileOnce(t, r, c)
		advance(time.Second)
	}
	for n, cert := range settled {
		if !leaf(n).Equal(cert) {
			t.Errorf("%s reissued after the rotation", n)
		}
	}
	if st := status(); st.Phase != kube.PhaseHealthy || st.CurrentPrimary != "rot-1" {
		t.Errorf("after the rotation: %+v", st)
	}
	assertNoRestart(t, before, snapshot(t, ns), "rot-ca")

	// The manual trigger: a new value of pgward.io/rotate-ca starts the
	// same rotation although the CA is not due, once.
	annotate := func(v string) {
		var got v1.Cluster
		if err := admin.Get(ctx, client.ObjectKeyFromObject(c), &got); err != nil {
			t.Fatal(err)
		}
		before := got.DeepCopy()
		if got.Annotations == nil {
			got.Annotations = map[string]string{}
		}
		got.Annotations[v1.RotateCAAnnotation] = v
		if err := admin.Patch(ctx, &got, client.MergeFrom(before)); err != nil {
			t.Fatal(err)
		}
	}
	annotate("first")
	reconcileOnce(t, r, c)
	cas = caCerts()
	if len(cas) != 2 || !cas[1].Equal(newCA) || phase() != "trust" {
		t.Fatalf("after pgward.io/rotate-ca: ca.crt holds %d certificates, step %q", len(cas), phase())
	}
	if got := secret("rot-ca").Annotations["pgward.io/rotate-ca-handled"]; got != "first" {
		t.Errorf("the request was recorded as %q", got)
	}
	third := cas[0]
	for range 2 {
		reconcileOnce(t, r, c)
	}
	if cas := caCerts(); len(cas) != 2 || !cas[0].Equal(third) {
		t.Error("one request started more than one rotation")
	}
}
