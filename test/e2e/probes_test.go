package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// probesManifest is spec.probes asking for the streaming strategy with a
// 1 MiB lag bound, for a test cluster to add to its spec.
const probesManifest = `  probes:
    startup:
      type: streaming
      maximumLag: 16Mi
    readiness:
      type: streaming
      maximumLag: 1Mi
`

// checkStreamingReadiness: with probesManifest, a replica whose replay is
// paused while the primary writes more than the bound stops being ready,
// both on its status port's /readyz (what the kubelet asks on Kubernetes,
// with the query the operator puts into the pod) and in `pgward local
// status`; resumed, it is ready again. The primary stays ready throughout.
func checkStreamingReadiness(t *testing.T, dir, cluster, primary, replica string) {
	t.Helper()
	ports := map[string]int{}
	for _, is := range status(t, dir).Instances {
		ports[is.Name] = is.StatusPort
	}
	caFile := filepath.Join(dir, "secrets", cluster+"-ca", "ca.crt")
	const query = "/readyz?type=streaming&maximumLag=1048576"
	// The caller may just have written a lot: the replica is ready once
	// it has replayed it.
	eventually(t, 30*time.Second, replica+" ready before the lag", func() error {
		if code, body := readyz(t, caFile, ports[replica], query); code != http.StatusOK {
			return fmt.Errorf("/readyz: %d %s", code, body)
		}
		return nil
	})
	if _, err := socketSQL(t, dir, replica, "SELECT pg_wal_replay_pause()"); err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = socketSQL(t, dir, replica, "SELECT pg_wal_replay_resume()") }()
	// 4 MiB of WAL at least: a table of 100000 rows is about 6 MiB.
	appSQL(t, dir, "CREATE TABLE lag_probe AS SELECT g, repeat('x', 40) AS pad FROM generate_series(1, 100000) g")
	eventually(t, 30*time.Second, replica+" not ready while its replay lags", func() error {
		code, body := readyz(t, caFile, ports[replica], query)
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "exceeds maximumLag 1048576") {
			return fmt.Errorf("/readyz: %d %s", code, body)
		}
		for _, is := range status(t, dir).Instances {
			if is.Name == replica && !strings.HasPrefix(is.State, "not ready (replay lag ") {
				return fmt.Errorf("local status of %s: %q", replica, is.State)
			}
		}
		return nil
	})
	// Without the bound the same replica is ready: only the lag fails it.
	if code, body := readyz(t, caFile, ports[replica], "/readyz?type=streaming"); code != http.StatusOK {
		t.Errorf("%s without maximumLag: %d %s", replica, code, body)
	}
	if code, body := readyz(t, caFile, ports[primary], query); code != http.StatusOK {
		t.Errorf("primary %s: %d %s", primary, code, body)
	}
	if code, _ := readyz(t, caFile, ports[replica], "/readyz?type=streaming&maximumLag=-1"); code != http.StatusBadRequest {
		t.Errorf("a negative bound: %d, want 400", code)
	}
	if _, err := socketSQL(t, dir, replica, "SELECT pg_wal_replay_resume()"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, replica+" ready again once replay resumes", func() error {
		if code, body := readyz(t, caFile, ports[replica], query); code != http.StatusOK {
			return fmt.Errorf("/readyz: %d %s", code, body)
		}
		for _, is := range status(t, dir).Instances {
			if is.Name == replica && is.State != "streaming" {
				return fmt.Errorf("local status of %s: %q", replica, is.State)
			}
		}
		return nil
	})
}

// readyz asks an instance's status port for path, verifying its
// certificate against the cluster's CA, and returns the code and body.
func readyz(t *testing.T, caFile string, port int, path string) (int, string) {
	t.Helper()
	b, err := os.ReadFile(caFile) // #nosec G304 -- the test's own state directory
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(b)
	cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		MinVersion: tls.VersionTLS13, RootCAs: roots, ServerName: "localhost",
	}}}
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, fmt.Sprintf("https://127.0.0.1:%d%s", port, path), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := cl.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(body))
}
