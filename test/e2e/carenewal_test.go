package e2e

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgward/pgward/internal/pki"
	"github.com/pgward/pgward/internal/secrets"
)

// TestAutomaticCARenewal: the controller renews a generated CA that is due
// by itself, with the overlap rotate-ca has. No knob: the CA written into
// the store before `up` is one pgward could have made 89 days ago, due for
// renewal, with 24 h (the finish margin) plus caOverlap left, so that the
// controller finishes the overlap caOverlap after the test starts. During
// the overlap a client holding the old ca.crt verifies the server and the
// replica streams with its reissued certificate; after the finish the new
// CA alone is trusted; nothing restarts. The controller is killed during
// the overlap: the one the instance managers start instead finishes it.
func TestAutomaticCARenewal(t *testing.T) {
	const caOverlap = 3 * time.Minute
	osUser := runAsUser(t)
	dir := newStateDir(t, "carenew")
	store := secrets.DirStore{Root: filepath.Join(dir, "secrets")}
	oldCA, err := pki.NewCA(rand.Reader, time.Now().Add(-(pki.Validity - 24*time.Hour - caOverlap)), "carenew CA")
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Put("carenew-ca", map[string][]byte{"ca.crt": oldCA.CertPEM, "ca.key": oldCA.KeyPEM}); err != nil {
		t.Fatal(err)
	}
	giveToOwner(t, dir, osUser)
	manifest := filepath.Join(workRoot, "carenew.yaml")
	err = os.WriteFile(manifest, []byte(`apiVersion: postgresql.pgward.io/v1
kind: Cluster
metadata:
  name: carenew
spec:
  instances: 2
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	mustPgward(t, "local", "up", "-f", manifest, "--dir", dir)
	t.Cleanup(func() { _, _ = pgward(context.Background(), "local", "down", "--purge", "--dir", dir) })
	ctx := context.Background()
	cs := status(t, dir)
	primarySock := fmt.Sprintf("host=%s port=%d user=postgres dbname=app", cs.Instances[0].SocketDir, cs.Instances[0].Port)
	replicaSock := fmt.Sprintf("host=%s port=%d user=postgres dbname=app", cs.Instances[1].SocketDir, cs.Instances[1].Port)
	uri := strings.TrimSpace(mustPgward(t, "local", "uri", "app", "--dir", dir))
	oldCAFile := filepath.Join(workRoot, "carenew-old-ca.crt")
	if err := os.WriteFile(oldCAFile, oldCA.CertPEM, 0o644); err != nil { // #nosec G306 -- a public certificate
		t.Fatal(err)
	}
	oldURI := withRootCert(t, uri, oldCAFile)
	if out, err := psql(ctx, "", uri, "CREATE TABLE rows(x int)"); err != nil {
		t.Fatalf("create: %v: %s", err, out)
	}
	pids := postmasterPids(t, dir, "carenew-1", "carenew-2")
	if firstCert(t, secretKey(t, dir, "carenew-server", "tls.crt")).CheckSignatureFrom(oldCA.Cert) != nil {
		t.Fatal("up did not keep the CA due for renewal")
	}
	replicates := func(step string) {
		t.Helper()
		if out, err := psql(ctx, "", uri, "INSERT INTO rows VALUES (1)"); err != nil {
			t.Fatalf("%s: insert: %v: %s", step, err, out)
		}
		want, err := psql(ctx, osUser, primarySock, "SELECT count(*) FROM rows")
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, 20*time.Second, step+": the replica has every row", func() error {
			got, err := psql(ctx, osUser, replicaSock, "SELECT count(*) FROM rows")
			if err != nil || got != want {
				return fmt.Errorf("replica: %w %q, primary %q", err, got, want)
			}
			return nil
		})
	}
	reconnects := func(step string) {
		t.Helper()
		if out, err := psql(ctx, osUser, primarySock, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_replication"); err != nil {
			t.Fatalf("%s: terminating the walsender: %v: %s", step, err, out)
		}
		serial := certSerial(t, secretKey(t, dir, "carenew-replication", "tls.crt"))
		eventually(t, 30*time.Second, step+": the replica streams again with the current replication certificate", func() error {
			got, err := psql(ctx, osUser, primarySock, `SELECT r.state, lower(s.client_serial::text)
				FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)`)
			if err != nil || got != "streaming|"+serial {
				return fmt.Errorf("pg_stat_replication: %w %q, want serial %s", err, got, serial)
			}
			return nil
		})
	}

	// The controller's first check finds the CA due and starts the renewal.
	eventually(t, 2*time.Minute, "the controller starts the renewal and moves the client certificates", func() error {
		bundle := secretKey(t, dir, "carenew-ca", "ca.crt")
		if n := strings.Count(bundle, "BEGIN CERTIFICATE"); n != 2 {
			return fmt.Errorf("ca.crt holds %d CAs", n)
		}
		newCA := firstCert(t, bundle)
		for _, s := range []string{"carenew-replication", "carenew-controller"} {
			if firstCert(t, secretKey(t, dir, s, "tls.crt")).CheckSignatureFrom(newCA) != nil {
				return errors.New(s + " not on the new CA yet")
			}
		}
		return nil
	})
	newCA := firstCert(t, secretKey(t, dir, "carenew-ca", "ca.crt"))
	t.Run("overlap", func(t *testing.T) {
		if got, err := psql(ctx, "", oldURI, "SELECT 1"); err != nil || got != "1" {
			t.Errorf("a client holding the old ca.crt: %v: %s", err, got)
		}
		if got, err := psql(ctx, "", uri, "SELECT 1"); err != nil || got != "1" {
			t.Errorf("a client with the bundle: %v: %s", err, got)
		}
		if firstCert(t, secretKey(t, dir, "carenew-server", "tls.crt")).CheckSignatureFrom(oldCA.Cert) != nil {
			t.Error("the server certificate left the old CA during the overlap")
		}
		reconnects("overlap")
		replicates("overlap")
		if n := strings.Count(secretKey(t, dir, "carenew-ca", "ca.crt"), "BEGIN CERTIFICATE"); n != 2 {
			t.Fatalf("the overlap ended before its checks did (%d CAs): this machine is too slow for caOverlap", n)
		}
	})

	t.Run("a controller killed during the overlap: its successor resumes from the secrets", func(t *testing.T) {
		before, err := os.ReadFile(filepath.Join(dir, "controller.pid"))
		if err != nil {
			t.Fatal(err)
		}
		killController(t, dir)
		eventually(t, 30*time.Second, "a new controller", func() error {
			b, err := os.ReadFile(filepath.Join(dir, "controller.pid"))
			if err != nil || string(b) == string(before) {
				return fmt.Errorf("controller.pid %q (was %q): %w", b, before, err)
			}
			return nil
		})
	})

	eventually(t, caOverlap+2*time.Minute, "the controller finishes the renewal", func() error {
		bundle := secretKey(t, dir, "carenew-ca", "ca.crt")
		if n := strings.Count(bundle, "BEGIN CERTIFICATE"); n != 1 {
			return fmt.Errorf("ca.crt holds %d CAs", n)
		}
		return nil
	})
	t.Run("finished: the new CA alone is trusted", func(t *testing.T) {
		if !firstCert(t, secretKey(t, dir, "carenew-ca", "ca.crt")).Equal(newCA) {
			t.Fatal("ca.crt does not hold the new CA")
		}
		if time.Now().After(oldCA.Cert.NotAfter) {
			t.Error("finished after the old CA expired")
		}
		server := firstCert(t, secretKey(t, dir, "carenew-server", "tls.crt"))
		if err := server.CheckSignatureFrom(newCA); err != nil {
			t.Errorf("server certificate: %v", err)
		}
		for _, is := range cs.Instances {
			if got := postgresCertSerial(t, is.Port); got != server.SerialNumber.String() {
				t.Errorf("%s serves serial %s, want %s", is.Name, got, server.SerialNumber)
			}
		}
		if out, err := psql(ctx, "", oldURI, "SELECT 1"); err == nil || !strings.Contains(out, "certificate verify failed") {
			t.Errorf("a client holding only the old ca.crt: want verification to fail, got %v: %s", err, out)
		}
		if got, err := psql(ctx, "", uri, "SELECT 1"); err != nil || got != "1" {
			t.Errorf("a client with the current ca.crt: %v: %s", err, got)
		}
		reconnects("finished")
		replicates("finished")
	})
	t.Run("the controller did it, nothing restarted", func(t *testing.T) {
		// The finish says so once every PostgreSQL has dropped the old CA,
		// a moment after the bundle changed.
		eventually(t, 30*time.Second, "the controller's log of the renewal", func() error {
			log, err := os.ReadFile(filepath.Join(dir, "log", "controller.log"))
			if err != nil {
				return err
			}
			for _, want := range []string{"CA renewal: new CA", "CA rotation finished"} {
				if !strings.Contains(string(log), want) {
					return fmt.Errorf("controller.log has no %q", want)
				}
			}
			return nil
		})
		if log, err := os.ReadFile(filepath.Join(dir, "log", "controller.log")); err == nil {
			for line := range strings.SplitSeq(string(log), "\n") {
				if strings.Contains(line, "CA renewal") || strings.Contains(line, "certificate") {
					t.Log(line)
				}
			}
		}
		if got := postmasterPids(t, dir, "carenew-1", "carenew-2"); got != pids {
			t.Errorf("postmaster pids changed from %q to %q", pids, got)
		}
		st := status(t, dir)
		if !st.ControllerRunning || st.CurrentPrimary != "carenew-1" || st.Instances[1].State != "streaming" {
			t.Errorf("status: %+v", st)
		}
	})
}
