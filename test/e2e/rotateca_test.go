package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRotateCA rotates the generated CA of a running two-instance cluster:
// during the overlap a client holding the old ca.crt still verifies the
// server, the reissued replication certificate is accepted, and replication
// streams; after --finish the old CA is trusted nowhere; nothing restarts.
func TestRotateCA(t *testing.T) {
	osUser := runAsUser(t)
	manifest := filepath.Join(workRoot, "rotca.yaml")
	err := os.WriteFile(manifest, []byte(`apiVersion: postgresql.pgward.io/v1
kind: Cluster
metadata:
  name: rotca
spec:
  instances: 2
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	dir := newStateDir(t, "rotca")
	mustPgward(t, "local", "up", "-f", manifest, "--dir", dir)
	t.Cleanup(func() { _, _ = pgward(context.Background(), "local", "down", "--purge", "--dir", dir) })
	ctx := context.Background()
	cs := status(t, dir)
	pids := postmasterPids(t, dir, "rotca-1", "rotca-2")
	primarySock := fmt.Sprintf("host=%s port=%d user=postgres dbname=app", cs.Instances[0].SocketDir, cs.Instances[0].Port)
	replicaSock := fmt.Sprintf("host=%s port=%d user=postgres dbname=app", cs.Instances[1].SocketDir, cs.Instances[1].Port)

	uri := strings.TrimSpace(mustPgward(t, "local", "uri", "app", "--dir", dir))
	// A client that copied ca.crt before the rotation.
	oldCAFile := filepath.Join(workRoot, "rotca-old-ca.crt")
	if err := os.WriteFile(oldCAFile, []byte(secretKey(t, dir, "rotca-ca", "ca.crt")), 0o644); err != nil { // #nosec G306 -- a public certificate
		t.Fatal(err)
	}
	oldURI := withRootCert(t, uri, oldCAFile)
	oldController, err := tls.X509KeyPair([]byte(secretKey(t, dir, "rotca-controller", "tls.crt")), []byte(secretKey(t, dir, "rotca-controller", "tls.key")))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := psql(ctx, "", uri, "CREATE TABLE rows(x int)"); err != nil {
		t.Fatalf("create: %v: %s", err, out)
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
	// The walsender is cut: the replica reconnects with the certificate now
	// in its secret and verifies the primary with the ca.crt now in place.
	reconnectsWith := func(step, replicationSecret string) {
		t.Helper()
		if out, err := psql(ctx, osUser, primarySock, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_replication"); err != nil {
			t.Fatalf("%s: terminating the walsender: %v: %s", step, err, out)
		}
		serial := certSerial(t, secretKey(t, dir, replicationSecret, "tls.crt"))
		eventually(t, 30*time.Second, step+": the replica streams again with the current replication certificate", func() error {
			got, err := psql(ctx, osUser, primarySock, `SELECT r.state, lower(s.client_serial::text)
				FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)`)
			if err != nil || !strings.HasPrefix(got, "streaming|") {
				return fmt.Errorf("pg_stat_replication: %w %q", err, got)
			}
			if got != "streaming|"+serial {
				return fmt.Errorf("streaming with serial %q, want %s", got, serial)
			}
			return nil
		})
	}
	replicates("before")

	out := mustPgward(t, "local", "rotate-ca", "--dir", dir)
	t.Logf("rotate-ca:\n%s", out)
	bundle := secretKey(t, dir, "rotca-ca", "ca.crt")
	if n := strings.Count(bundle, "BEGIN CERTIFICATE"); n != 2 {
		t.Fatalf("ca.crt holds %d certificates during the overlap, want 2", n)
	}
	newCA := firstCert(t, bundle)

	t.Run("overlap: the old ca.crt still verifies the server", func(t *testing.T) {
		if got, err := psql(ctx, "", oldURI, "SELECT 1"); err != nil || got != "1" {
			t.Errorf("a client holding the old ca.crt: %v: %s", err, got)
		}
		if got, err := psql(ctx, "", uri, "SELECT 1"); err != nil || got != "1" {
			t.Errorf("a client with the bundle: %v: %s", err, got)
		}
	})
	t.Run("overlap: client certificates are reissued under the new CA and accepted", func(t *testing.T) {
		for _, s := range []string{"rotca-replication", "rotca-controller"} {
			if err := firstCert(t, secretKey(t, dir, s, "tls.crt")).CheckSignatureFrom(newCA); err != nil {
				t.Errorf("%s: %v", s, err)
			}
		}
		reconnectsWith("overlap", "rotca-replication")
		replicates("overlap")
		if st := status(t, dir); !st.ControllerRunning || st.CurrentPrimary != "rotca-1" {
			t.Errorf("status during the overlap: %+v", st)
		}
	})
	if out, err := pgward(ctx, "local", "rotate-ca", "--dir", dir); err == nil || !strings.Contains(out, "under way") {
		t.Errorf("a second start during the overlap: %v: %s", err, out)
	}

	out = mustPgward(t, "local", "rotate-ca", "--finish", "--dir", dir)
	t.Logf("rotate-ca --finish:\n%s", out)
	t.Run("finished: only the new CA is trusted", func(t *testing.T) {
		if got := secretKey(t, dir, "rotca-ca", "ca.crt"); strings.Count(got, "BEGIN CERTIFICATE") != 1 || !firstCert(t, got).Equal(newCA) {
			t.Errorf("ca.crt after finishing does not hold the new CA alone")
		}
		server := firstCert(t, secretKey(t, dir, "rotca-server", "tls.crt"))
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
		if code := statusWithCert(t, newCA, oldController, cs.Instances[0].StatusPort); code == http.StatusOK {
			t.Error("the status port still accepts the controller certificate of the old CA")
		}
		reconnectsWith("finished", "rotca-replication")
		replicates("finished")
	})
	t.Run("the running controller switched to its reissued certificate", func(t *testing.T) {
		log, err := os.ReadFile(filepath.Join(dir, "log", "controller.log"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(log), "status client rebuilt") {
			t.Error("the controller never rebuilt its status client")
		}
	})
	t.Run("nothing restarted, no failover", func(t *testing.T) {
		if got := postmasterPids(t, dir, "rotca-1", "rotca-2"); got != pids {
			t.Errorf("postmaster pids changed from %q to %q", pids, got)
		}
		st := status(t, dir)
		if st.CurrentPrimary != "rotca-1" || st.Instances[1].State != "streaming" {
			t.Errorf("status: %+v", st)
		}
	})
}

// withRootCert returns uri with another sslrootcert.
func withRootCert(t *testing.T, uri, file string) string {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("sslrootcert", file)
	u.RawQuery = q.Encode()
	return u.String()
}

func firstCert(t *testing.T, pemText string) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode([]byte(pemText))
	if block == nil {
		t.Fatal("no PEM certificate")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// certSerial is a certificate's serial as pg_stat_ssl's client_serial
// (a numeric) prints it: in decimal.
func certSerial(t *testing.T, pemText string) string {
	t.Helper()
	return firstCert(t, pemText).SerialNumber.String()
}

// statusWithCert asks the status port for /pg/status with a client
// certificate and returns the HTTP status (0 if the handshake failed).
func statusWithCert(t *testing.T, ca *x509.Certificate, cert tls.Certificate, port int) int {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		MinVersion: tls.VersionTLS13, RootCAs: roots, ServerName: "localhost", Certificates: []tls.Certificate{cert},
	}}}
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, "https://127.0.0.1:"+strconv.Itoa(port)+"/pg/status", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := cl.Do(req)
	if err != nil {
		return 0
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}
