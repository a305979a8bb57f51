//go:build e2e_kube

package kube

import (
	"context"
	"crypto/x509"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube"
	"github.com/pgward/pgward/internal/pki"
)

// TestCARotationOnPods: pgward.io/rotate-ca on a running Cluster starts the
// overlapping CA rotation. Once both instances loaded the bundle the
// client certificates move to the new CA while the server certificate
// stays: a client holding only the old ca.crt still connects with
// verify-full, a replica cut off reconnects with the new replication
// certificate (its serial in pg_stat_ssl) and rows replicate, and no
// container restarts. Then, with the overlap's start moved back by
// MinCAOverlap (three days), the server certificate moves and the old CA
// is dropped: the new ca.crt works, the old one fails verification, rows
// still replicate, and the primary is the same.
func TestCARotationOnPods(t *testing.T) {
	ns := newNamespace(t, "carotation")
	c := newCluster(t, ns, "cluster-example.yaml", func(c *v1.Cluster) {
		c.Name = "carot"
		c.Spec.Instances = 2
	})
	ctx := context.Background()
	primary := c.Status.CurrentPrimary
	replica := "carot-1"
	if primary == replica {
		replica = "carot-2"
	}
	secret := func(name string) *corev1.Secret {
		var s corev1.Secret
		if err := cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &s); err != nil {
			t.Fatal(err)
		}
		return &s
	}
	cert := func(name string) *x509.Certificate {
		crt, err := pki.ParseCertificatePEM(secret(name).Data["tls.crt"])
		if err != nil {
			t.Fatal(err)
		}
		return crt
	}
	restarts := func() int32 {
		var n int32
		for _, name := range []string{primary, replica} {
			var p corev1.Pod
			if err := cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &p); err != nil {
				t.Fatal(err)
			}
			for _, s := range p.Status.ContainerStatuses {
				n += s.RestartCount
			}
		}
		return n
	}
	oldCAPEM := secret("carot-ca").Data["ca.crt"]
	oldCA, err := pki.ParseCertificatePEM(oldCAPEM)
	if err != nil {
		t.Fatal(err)
	}
	// A client that copied ca.crt before the rotation and never updates it.
	if err := cl.Create(ctx, &corev1.Secret{ObjectMeta: objectMeta(ns, "old-ca"), Data: map[string][]byte{"ca.crt": oldCAPEM}}); err != nil {
		t.Fatal(err)
	}
	oldServer := cert("carot-server")
	before := restarts()
	psqlLocal(t, ns, primary, "app", "create table carot(v int); grant insert, select on carot to app; insert into carot values (1)")

	// Through the admission webhook, as a user would.
	mustKubectl(t, "-n", ns, "annotate", "cluster", c.Name, "pgward.io/rotate-ca=e2e")
	var newCA *x509.Certificate
	eventually(t, 4*time.Minute, "the client certificates under the new CA", func() error {
		s := secret("carot-ca")
		if got := s.Annotations["pgward.io/ca-rotation"]; got != "clients" {
			return fmt.Errorf("rotation step %q", got)
		}
		ca, err := pki.ParseCertificatePEM(s.Data["ca.crt"])
		if err != nil {
			return err
		}
		newCA = ca
		for _, n := range []string{"carot-replication", "carot-controller", "carot-metrics"} {
			if err := cert(n).CheckSignatureFrom(ca); err != nil {
				return fmt.Errorf("%s: %w", n, err)
			}
		}
		return nil
	})
	if newCA.Equal(oldCA) {
		t.Fatal("no new CA")
	}
	if !cert("carot-server").Equal(oldServer) {
		t.Fatal("the server certificate moved during the overlap")
	}

	t.Run("a client holding the old ca.crt verifies the server", func(t *testing.T) {
		script := pgClientScript(c.Name+"-app", `export PGSSLROOTCERT=/secrets/old-ca/ca.crt
psql -h carot-rw -XAtq -v ON_ERROR_STOP=1 -c "insert into carot values (2)"
echo "old-ca: $(psql -h carot-rw -XAt -c "select (select ssl from pg_stat_ssl where pid = pg_backend_pid())")"`)
		out, ok := runPod(t, clientPod(ns, "old-ca-client", nil, script, c.Name+"-app", "old-ca"), 2*time.Minute)
		if !ok || !strings.Contains(out, "old-ca: t") {
			t.Fatalf("client with the old ca.crt:\n%s", out)
		}
	})

	t.Run("the replica reconnects with the new replication certificate and rows replicate", func(t *testing.T) {
		want := cert("carot-replication").SerialNumber.String()
		// The kubelet updates the projected files within about a minute;
		// cut the replica off until it reconnects with the new certificate.
		eventually(t, 3*time.Minute, "the walsender's client certificate", func() error {
			got := psqlLocal(t, ns, primary, "postgres",
				"select coalesce(string_agg(s.client_serial::text, ','), '') from pg_stat_replication r join pg_stat_ssl s using (pid) where r.state = 'streaming'")
			if got == want {
				return nil
			}
			psqlLocal(t, ns, primary, "postgres", "select count(pg_terminate_backend(pid)) from pg_stat_replication")
			return fmt.Errorf("streaming with serial %q, want %s", got, want)
		})
		psqlLocal(t, ns, primary, "app", "insert into carot values (3)")
		eventually(t, time.Minute, "rows on the replica", func() error {
			if got := psqlLocal(t, ns, replica, "app", "select count(*) from carot"); got != "3" {
				return fmt.Errorf("%s rows", got)
			}
			return nil
		})
	})

	if t.Failed() {
		return
	}

	// The overlap lasts MinCAOverlap (three days): the test moves the
	// rotation's recorded start back by that much, as if the days had
	// passed, and the operator goes on to the last step.
	ca := secret("carot-ca")
	patched := ca.DeepCopy()
	patched.Annotations["pgward.io/ca-rotation-started"] = time.Now().Add(-kube.MinCAOverlap - time.Minute).UTC().Format(time.RFC3339)
	if err := cl.Patch(ctx, patched, client.MergeFrom(ca)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 4*time.Minute, "the server certificate under the new CA and the old CA dropped", func() error {
		if err := cert("carot-server").CheckSignatureFrom(newCA); err != nil {
			return fmt.Errorf("server: %w", err)
		}
		s := secret("carot-ca")
		if step := s.Annotations["pgward.io/ca-rotation"]; step != "" {
			return fmt.Errorf("rotation step %q", step)
		}
		if n := strings.Count(string(s.Data["ca.crt"]), "BEGIN CERTIFICATE"); n != 1 {
			return fmt.Errorf("ca.crt holds %d certificates", n)
		}
		return nil
	})
	if got, err := pki.ParseCertificatePEM(secret("carot-ca").Data["ca.crt"]); err != nil || !got.Equal(newCA) {
		t.Fatalf("ca.crt after the rotation is not the new CA (%v)", err)
	}

	t.Run("after the rotation the old ca.crt fails and the new one works", func(t *testing.T) {
		script := pgClientScript(c.Name+"-app", `echo "new: $(psql -h carot-rw -XAt -c "insert into carot values (4) returning v" 2>&1)"
export PGSSLROOTCERT=/secrets/old-ca/ca.crt
echo "old: $(psql -h carot-rw -XAt -c "select 1" 2>&1)"`)
		out, _ := runPod(t, clientPod(ns, "after-client", nil, script, c.Name+"-app", "old-ca"), 2*time.Minute)
		if !strings.Contains(out, "new: 4") || !strings.Contains(out, "certificate verify failed") {
			t.Fatalf("want the new ca.crt to work and the old one to fail verification:\n%s", out)
		}
		eventually(t, time.Minute, "rows on the replica", func() error {
			if got := psqlLocal(t, ns, replica, "app", "select count(*) from carot"); got != "4" {
				return fmt.Errorf("%s rows", got)
			}
			return nil
		})
	})

	if got := getCluster(t, ns, c.Name); got.Status.CurrentPrimary != primary || healthy(got) != nil {
		t.Errorf("after the rotation: primary %s, %v", got.Status.CurrentPrimary, healthy(got))
	}
	if after := restarts(); after != before {
		t.Errorf("containers restarted %d times during the rotation", after-before)
	}
}
