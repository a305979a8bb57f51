package kube

import (
	"crypto/rand"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/pgward/pgward/internal/kube/build"
	"github.com/pgward/pgward/internal/pki"
)

// TestDecideCARotation: each step of the CA rotation waits for every
// instance, and the server certificate never moves before the overlap
// ends, nor later than CAFinishMargin before the old CA expires.
func TestDecideCARotation(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	oldCA := func(expiry time.Time) *caState {
		kp, err := pki.NewCA(rand.Reader, expiry.Add(-pki.Validity), "old CA")
		if err != nil {
			t.Fatal(err)
		}
		return &caState{started: t0, old: kp.Cert, newFP: "new"}
	}
	trusting := func(server string, names ...string) []caInstance {
		var out []caInstance
		for _, n := range names {
			out = append(out, caInstance{name: n, answered: true, clientCAs: []string{"new", "old"}, serverCert: server})
		}
		return out
	}
	s := oldCA(t0.Add(7 * 24 * time.Hour))
	cases := []struct {
		name        string
		phase       caPhase
		insts       []caInstance
		serverOnNew bool
		now         time.Time
		want        caStep
		why         string
	}{
		{"trust: every instance loaded the bundle", caTrust, trusting("s-old", "a", "b"), false, t0, caToClients, ""},
		{"trust: one has not loaded it", caTrust, append(trusting("s-old", "a"), caInstance{name: "b", answered: true, clientCAs: []string{"old"}}), false, t0, caWait, "b"},
		{"trust: one does not answer", caTrust, append(trusting("s-old", "a"), caInstance{name: "b"}), false, t0, caWait, "b"},
		{"trust: no instance at all", caTrust, nil, false, t0, caWait, "no instance"},
		{"clients: within the overlap", caClients, trusting("s-old", "a", "b"), false, t0.Add(MinCAOverlap - time.Second), caWait, "overlap"},
		{"clients: overlap over", caClients, trusting("s-old", "a", "b"), false, t0.Add(MinCAOverlap), caToServer, ""},
		{"clients: overlap over but an instance stopped trusting", caClients, append(trusting("s-old", "a"), caInstance{name: "b"}), false, t0.Add(MinCAOverlap), caWait, "b"},
		{"server: not reissued yet", caServer, trusting("s-old", "a", "b"), false, t0.Add(MinCAOverlap), caWait, "reissued"},
		{"server: one still serves the old one", caServer, append(trusting("s-new", "a"), trusting("s-old", "b")...), true, t0.Add(MinCAOverlap), caWait, "b"},
		{"server: every instance serves it", caServer, trusting("s-new", "a", "b"), true, t0.Add(MinCAOverlap), caDropOld, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := *s
			st.phase = tc.phase
			got, why := decideCARotation(&st, tc.insts, "s-new", tc.serverOnNew, tc.now)
			if got != tc.want || !strings.Contains(why, tc.why) {
				t.Errorf("got %d (%s), want %d (…%s…)", got, why, tc.want, tc.why)
			}
		})
	}

	// A rotation that started late (the operator was down) finishes no
	// later than CAFinishMargin before the old CA expires.
	late := oldCA(t0.Add(2 * 24 * time.Hour))
	late.phase = caClients
	if end := late.overlapEnd(); !end.Equal(late.old.NotAfter.Add(-CAFinishMargin)) {
		t.Errorf("overlap of a late rotation ends %s, want %s", end, late.old.NotAfter.Add(-CAFinishMargin))
	}
	if got, _ := decideCARotation(late, trusting("s-old", "a"), "s-new", false, t0.Add(24*time.Hour)); got != caToServer {
		t.Errorf("a late rotation at the margin: %d, want caToServer", got)
	}

	// Which leaves the old CA may still sign at each step.
	for _, tc := range []struct {
		phase          caPhase
		server, client bool
	}{{caTrust, true, true}, {caClients, true, false}, {caServer, false, false}} {
		st := &caState{phase: tc.phase}
		if st.keepsOld(true) != tc.server || st.keepsOld(false) != tc.client {
			t.Errorf("%s: keeps the old server %v, client %v", tc.phase, st.keepsOld(true), st.keepsOld(false))
		}
	}
	if (*caState)(nil).keepsOld(true) {
		t.Error("outside a rotation nothing of another CA is kept")
	}
}

// TestReadCAState: the state survives an operator restart in the CA
// secret, and a bundle without annotations resumes at the first step.
func TestReadCAState(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	oldCA, err := pki.NewCA(rand.Reader, now.Add(-85*24*time.Hour), "x CA")
	if err != nil {
		t.Fatal(err)
	}
	newCA, err := pki.NewCA(rand.Reader, now, "x CA 2")
	if err != nil {
		t.Fatal(err)
	}
	single := &corev1.Secret{Data: map[string][]byte{build.KeyCACert: oldCA.CertPEM, build.KeyCAKey: oldCA.KeyPEM}}
	if kp, st, err := readCAState(single); err != nil || st != nil || !kp.Cert.Equal(oldCA.Cert) {
		t.Fatalf("a single CA: %v %+v %v", kp, st, err)
	}
	bundle := append(append([]byte{}, newCA.CertPEM...), oldCA.CertPEM...)
	sec := &corev1.Secret{Data: map[string][]byte{build.KeyCACert: bundle, build.KeyCAKey: newCA.KeyPEM}}
	sec.Annotations = map[string]string{caRotationAnnotation: "clients", caRotationStartedAnnotation: now.Format(time.RFC3339)}
	kp, st, err := readCAState(sec)
	if err != nil || !kp.Cert.Equal(newCA.Cert) || st.phase != caClients || !st.started.Equal(now) ||
		!st.old.Equal(oldCA.Cert) || st.newFP != fingerprint(newCA.Cert) {
		t.Fatalf("a rotation: %v %+v %v", kp, st, err)
	}
	sec.Annotations = nil
	if _, st, _ := readCAState(sec); st.phase != caTrust || !st.started.Equal(newCA.Cert.NotBefore) {
		t.Errorf("without annotations: %+v", st)
	}
}
