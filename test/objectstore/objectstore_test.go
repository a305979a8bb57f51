package objectstore

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// client is a real S3 client (SigV4, path-style, as pgBackRest is set up)
// that trusts only caPEM. An empty keyID makes unsigned (anonymous) requests.
func client(t *testing.T, endpoint, keyID, secret string, caPEM []byte) *s3.Client {
	t.Helper()
	var creds aws.CredentialsProvider = aws.AnonymousCredentials{}
	if keyID != "" {
		creds = aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: keyID, SecretAccessKey: secret}, nil
		})
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("no certificate in the CA PEM")
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	t.Cleanup(tr.CloseIdleConnections)
	return s3.New(s3.Options{
		BaseEndpoint:     aws.String(endpoint),
		Region:           "us-east-1",
		UsePathStyle:     true,
		HTTPClient:       &http.Client{Transport: tr, Timeout: 10 * time.Second},
		Credentials:      creds,
		RetryMaxAttempts: 1, // a refusal must show as one, not as retries
	})
}

func put(t *testing.T, c *s3.Client, bucket, key, body string) {
	t.Helper()
	if _, err := c.PutObject(t.Context(), &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: strings.NewReader(body)}); err != nil {
		t.Fatalf("PutObject %s: %v", key, err)
	}
}

func get(ctx context.Context, c *s3.Client, bucket, key string) (string, error) {
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &key})
	if err != nil {
		return "", err
	}
	defer func() { _ = out.Body.Close() }()
	b, err := io.ReadAll(out.Body)
	return string(b), err
}

func httpStatus(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestStore(t *testing.T) {
	s := Start(t)
	if !strings.HasPrefix(s.Endpoint, "https://localhost:") || s.Bucket != "pgward" {
		t.Fatalf("endpoint %q, bucket %q", s.Endpoint, s.Bucket)
	}
	if m := mode(t, filepath.Dir(s.CAFile)); m != 0o711 {
		t.Errorf("the store's directory is %v, want 0711 (the postgres user must reach the CA)", m)
	}
	if m := mode(t, s.CAFile); m != 0o644 {
		t.Errorf("CAFile is %v, want 0644", m)
	}
	// Any user can reach it: every directory above it is searchable.
	for d := filepath.Dir(s.CAFile); d != "/"; d = filepath.Dir(d) {
		if mode(t, d)&0o001 == 0 {
			t.Errorf("%s is %v: other users cannot reach CAFile", d, mode(t, d))
		}
	}
	if m := mode(t, s.keyFile); m != 0o600 {
		t.Errorf("the server key is %v, want 0600", m)
	}
	if ca, err := os.ReadFile(s.CAFile); err != nil || !bytes.Equal(ca, s.CACertPEM) {
		t.Errorf("CAFile does not hold CACertPEM (%v)", err)
	}

	c := client(t, s.Endpoint, s.AccessKeyID, s.SecretAccessKey, s.CACertPEM)
	put(t, c, s.Bucket, "demo/archive/one", "first object")
	put(t, c, s.Bucket, "demo/archive/two", "second object")
	if got, err := get(t.Context(), c, s.Bucket, "demo/archive/one"); err != nil || got != "first object" {
		t.Fatalf("GetObject: %q, %v", got, err)
	}
	list, err := c.ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: &s.Bucket, Prefix: aws.String("demo/")})
	if err != nil {
		t.Fatalf("ListObjectsV2: %v", err)
	}
	var keys []string
	for _, o := range list.Contents {
		keys = append(keys, *o.Key)
	}
	if strings.Join(keys, ",") != "demo/archive/one,demo/archive/two" {
		t.Errorf("ListObjectsV2 listed %q", keys)
	}
	// The raw object, as backup tests will read it.
	if raw, err := os.ReadFile(filepath.Join(s.Root, s.Bucket, "demo", "archive", "two")); err != nil || string(raw) != "second object" {
		t.Errorf("raw object: %q, %v", raw, err)
	}

	t.Run("wrong credentials are refused", func(t *testing.T) {
		for name, c := range map[string]*s3.Client{
			"wrong secret": client(t, s.Endpoint, s.AccessKeyID, s.SecretAccessKey+"x", s.CACertPEM),
			"unsigned":     client(t, s.Endpoint, "", "", s.CACertPEM),
		} {
			_, err := get(t.Context(), c, s.Bucket, "demo/archive/one")
			if code := httpStatus(err); code != http.StatusForbidden {
				t.Errorf("%s: GetObject got HTTP %d (%v), want 403", name, code, err)
			}
		}
		// versitygw v1.8.0 answers an unknown access key with 404
		// XAdminUserNotFound where AWS says 403 InvalidAccessKeyId: a
		// client may read that as "no such object", not as a refusal.
		c := client(t, s.Endpoint, "AKIANOTTHEKEY0000000", s.SecretAccessKey, s.CACertPEM)
		_, err := get(t.Context(), c, s.Bucket, "demo/archive/one")
		var ae smithy.APIError
		if code := httpStatus(err); !errors.As(err, &ae) || code != http.StatusNotFound || ae.ErrorCode() != "XAdminUserNotFound" {
			t.Errorf("unknown access key: GetObject got HTTP %d (%v), want versitygw's 404 XAdminUserNotFound", code, err)
		}
	})

	t.Run("plain HTTP is refused", func(t *testing.T) {
		plain := client(t, strings.Replace(s.Endpoint, "https:", "http:", 1), s.AccessKeyID, s.SecretAccessKey, s.CACertPEM)
		if got, err := get(t.Context(), plain, s.Bucket, "demo/archive/one"); err == nil {
			t.Errorf("GetObject over plain HTTP returned %q", got)
		}
	})

	t.Run("an untrusted certificate is refused by the client", func(t *testing.T) {
		other := Start(t)
		c := client(t, s.Endpoint, s.AccessKeyID, s.SecretAccessKey, other.CACertPEM)
		var uerr x509.UnknownAuthorityError
		if _, err := get(t.Context(), c, s.Bucket, "demo/archive/one"); !errors.As(err, &uerr) {
			t.Errorf("with another store's CA: %v, want an unknown-authority error", err)
		}
	})

	t.Run("Stop and Restart keep the data", func(t *testing.T) {
		s.Stop()
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		if _, err := get(ctx, c, s.Bucket, "demo/archive/one"); err == nil {
			t.Fatal("GetObject worked on a stopped store")
		}
		s.Stop() // a second Stop does nothing
		s.Restart()
		if got, err := get(t.Context(), c, s.Bucket, "demo/archive/one"); err != nil || got != "first object" {
			t.Fatalf("after Restart: %q, %v", got, err)
		}
		s.Restart() // while running
		put(t, c, s.Bucket, "demo/archive/three", "third object")
	})

	t.Run("SecretManifest", func(t *testing.T) {
		var sec corev1.Secret
		if err := yaml.UnmarshalStrict([]byte(s.SecretManifest("backup-store")), &sec); err != nil {
			t.Fatalf("%v\n%s", err, s.SecretManifest("backup-store"))
		}
		if sec.Kind != "Secret" || sec.APIVersion != "v1" || sec.Name != "backup-store" ||
			sec.StringData["ACCESS_KEY_ID"] != s.AccessKeyID || sec.StringData["ACCESS_SECRET_KEY"] != s.SecretAccessKey ||
			sec.StringData["ca.crt"] != string(s.CACertPEM) || len(sec.StringData) != 3 {
			t.Errorf("SecretManifest: %+v", sec)
		}
	})
}

// exited fails unless process pid is gone (and reaped).
func exited(t *testing.T, pid int) {
	t.Helper()
	// Its parent may take a moment to reap it (init, for the script's).
	for range 50 {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("process %d is still there", pid)
}

// closed fails if anything listens on addr.
func closed(t *testing.T, addr string) {
	t.Helper()
	d := net.Dialer{Timeout: time.Second}
	if c, err := d.DialContext(t.Context(), "tcp", addr); err == nil {
		_ = c.Close()
		t.Errorf("something still listens on %s", addr)
	}
}

func TestNoProcessLeft(t *testing.T) {
	var pid int
	var addr, dir string
	t.Run("store", func(t *testing.T) {
		s := Start(t)
		pid, addr, dir = s.cmd.Process.Pid, s.addr, s.dir
		s.Restart() // a new process: the one that the cleanup must kill
		exited(t, pid)
		pid = s.cmd.Process.Pid
	})
	exited(t, pid)
	closed(t, addr)
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the store's directory %s is still there (%v)", dir, err)
	}
}

// TestUpScript runs hack/objectstore-up.sh and -down.sh as a user would,
// against a state directory of its own.
func TestUpScript(t *testing.T) {
	if _, err := binary(); err != nil { // build outside the script's 10 s wait
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "objectstore")
	run := func(script string, args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), filepath.Join(repoRoot(), "hack", script), args...)
		cmd.Env = append(os.Environ(), "PGWARD_OBJECTSTORE_DIR="+dir)
		out, err := cmd.Output()
		if err != nil {
			var stderr []byte
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				stderr = ee.Stderr
			}
			t.Fatalf("%s %s: %v\n%s%s", script, strings.Join(args, " "), err, out, stderr)
		}
		return string(out)
	}
	t.Cleanup(func() { // on failure too: no store left running
		down := exec.CommandContext(context.Background(), filepath.Join(repoRoot(), "hack", "objectstore-down.sh"), "--purge")
		down.Env = append(os.Environ(), "PGWARD_OBJECTSTORE_DIR="+dir)
		_ = down.Run()
	})

	up := func() (endpoint string, sec corev1.Secret, pid int) {
		t.Helper()
		out := run("objectstore-up.sh")
		lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
		if len(lines) < 2 {
			t.Fatalf("up printed %q", out)
		}
		endpoint, ok1 := strings.CutPrefix(lines[len(lines)-2], "export PGWARD_S3_ENDPOINT=")
		file, ok2 := strings.CutPrefix(lines[len(lines)-1], "export PGWARD_S3_SECRET_FILE=")
		if !ok1 || !ok2 || !strings.HasPrefix(endpoint, "https://localhost:") || file != filepath.Join(dir, "secret.yaml") {
			t.Fatalf("the last two lines are not the exports:\n%s", out)
		}
		if m := mode(t, file); m != 0o600 {
			t.Errorf("%s is %v, want 0600", file, m)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.UnmarshalStrict(b, &sec); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		ca, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
		if sec.Kind != "Secret" || sec.APIVersion != "v1" || sec.Name != "objectstore" || len(sec.StringData) != 3 ||
			sec.StringData["ACCESS_KEY_ID"] == "" || sec.StringData["ACCESS_SECRET_KEY"] == "" || sec.StringData["ca.crt"] != string(ca) {
			t.Fatalf("%s holds %+v", file, sec)
		}
		pidb, err := os.ReadFile(filepath.Join(dir, "versitygw.pid"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fmt.Sscan(string(pidb), &pid); err != nil {
			t.Fatal(err)
		}
		return endpoint, sec, pid
	}

	endpoint, sec, pid := up()
	for _, f := range []string{"ca.key", "server.key", "credentials", "secret.yaml"} {
		if m := mode(t, filepath.Join(dir, f)); m != 0o600 {
			t.Errorf("%s is %v, want 0600", f, m)
		}
	}
	// The secret is in versitygw's environment, not on its command line.
	cmdline, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if bytes.Contains(cmdline, []byte(sec.StringData["ACCESS_SECRET_KEY"])) {
		t.Errorf("the secret is on versitygw's command line: %q", cmdline)
	}
	c := client(t, endpoint, sec.StringData["ACCESS_KEY_ID"], sec.StringData["ACCESS_SECRET_KEY"], []byte(sec.StringData["ca.crt"]))
	put(t, c, "pgward", "kept", "across restarts")
	if raw, err := os.ReadFile(filepath.Join(dir, "root", "pgward", "kept")); err != nil || string(raw) != "across restarts" {
		t.Errorf("raw object: %q, %v", raw, err)
	}

	// A second up reuses the running store.
	if endpoint2, sec2, pid2 := up(); endpoint2 != endpoint || pid2 != pid || sec2.StringData["ACCESS_SECRET_KEY"] != sec.StringData["ACCESS_SECRET_KEY"] {
		t.Errorf("a second up started another store: %s pid %d, was %s pid %d", endpoint2, pid2, endpoint, pid)
	}

	// down stops it and keeps everything; up again serves the same data
	// with the same credentials.
	run("objectstore-down.sh")
	exited(t, pid)
	if _, err := os.Stat(filepath.Join(dir, "root", "pgward", "kept")); err != nil {
		t.Errorf("down removed data: %v", err)
	}
	endpoint3, sec3, pid3 := up()
	if sec3.StringData["ACCESS_SECRET_KEY"] != sec.StringData["ACCESS_SECRET_KEY"] || sec3.StringData["ca.crt"] != sec.StringData["ca.crt"] {
		t.Error("up after down made new credentials or a new CA")
	}
	c = client(t, endpoint3, sec.StringData["ACCESS_KEY_ID"], sec.StringData["ACCESS_SECRET_KEY"], []byte(sec.StringData["ca.crt"]))
	if got, err := get(t.Context(), c, "pgward", "kept"); err != nil || got != "across restarts" {
		t.Errorf("after down and up: %q, %v", got, err)
	}

	run("objectstore-down.sh", "--purge")
	exited(t, pid3)
	closed(t, "127.0.0.1:"+strings.TrimPrefix(endpoint3, "https://localhost:"))
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("--purge left %s (%v)", dir, err)
	}
}
