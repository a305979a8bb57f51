//go:build e2e_kube

package kube

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	v1 "github.com/pgward/pgward/api/v1"
)

// TestBootstrapSQLRefsAndICUOnPods: on real pods, bootstrap.initdb's SQL
// references (a Secret and a ConfigMap the pods never mount: the operator
// hands their SQL over in the instance config Secret) run after the
// inline statements, in CloudNativePG's order, and the application
// database has the ICU locale and the cluster the WAL segment size asked.
func TestBootstrapSQLRefsAndICUOnPods(t *testing.T) {
	ns := newNamespace(t, "bootstrapsql")
	ctx := context.Background()
	if err := cl.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sql-secret"},
		StringData: map[string]string{"app.sql": "INSERT INTO steps (what) VALUES ('secret');"}}); err != nil {
		t.Fatal(err)
	}
	if err := cl.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sql"},
		Data: map[string]string{"app.sql": "INSERT INTO steps (what) VALUES ('configmap');"}}); err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, ns, "cluster-example.yaml", func(c *v1.Cluster) {
		c.Name = "bsql"
		c.Spec.Instances = 1
		in := c.Spec.Bootstrap.InitDB
		in.Encoding, in.Locale = "UTF8", "C.UTF-8"
		in.LocaleProvider, in.ICULocale, in.WalSegmentSize = "icu", "de-DE", 32
		in.PostInitApplicationSQL = []string{"CREATE TABLE steps (n serial, what text)", "INSERT INTO steps (what) VALUES ('inline')"}
		in.PostInitApplicationSQLRefs = &v1.SQLRefs{
			ConfigMapRefs: []v1.ConfigMapKeySelector{{Name: "sql", Key: "app.sql"}},
			SecretRefs:    []v1.SecretKeySelector{{Name: "sql-secret", Key: "app.sql"}},
		}
	})
	primary := c.Status.CurrentPrimary
	for q, want := range map[string]string{
		"SELECT string_agg(what, ',' ORDER BY n) FROM steps":                                        "inline,secret,configmap",
		"SELECT datlocprovider::text || ' ' || daticulocale FROM pg_database WHERE datname = 'app'": "i de-DE",
		"SELECT string_agg(x, '' ORDER BY x) FROM (VALUES ('b'), ('ä'), ('a')) v(x)":                "aäb",
		"SHOW wal_segment_size": "32MB",
	} {
		if got := psqlLocal(t, ns, primary, "app", q); got != want {
			t.Errorf("%s: got %q, want %q", q, got, want)
		}
	}
}

// TestImportOnPods: a microservice import on real pods, from another
// Cluster through its -rw Service over verified TLS (its CA and the app
// password copied into Secrets of the importing Cluster's user: pgward
// never hands one Cluster's generated secrets to another's pods).
func TestImportOnPods(t *testing.T) {
	ns := newNamespace(t, "importpods")
	ctx := context.Background()
	src := newCluster(t, ns, "cluster-example.yaml", func(c *v1.Cluster) {
		c.Name = "isrc"
		c.Spec.Instances = 1
	})
	psqlLocal(t, ns, src.Status.CurrentPrimary, "app", "CREATE TABLE items AS SELECT g AS id FROM generate_series(1, 1000) g; ALTER TABLE items OWNER TO app")
	copyKey := func(from, key, to string) {
		var s corev1.Secret
		if err := cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: from}, &s); err != nil {
			t.Fatal(err)
		}
		if err := cl.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: to}, Data: map[string][]byte{key: s.Data[key]}}); err != nil {
			t.Fatal(err)
		}
	}
	copyKey("isrc-app", "password", "isrc-app-copy")
	copyKey("isrc-ca", "ca.crt", "isrc-ca-copy")
	dst := newCluster(t, ns, "cluster-example.yaml", func(c *v1.Cluster) {
		c.Name = "idst"
		c.Spec.Instances = 1
		c.Spec.Bootstrap.InitDB.Import = &v1.Import{Type: v1.ImportMicroservice, Databases: []string{"app"},
			Source: v1.ImportSource{ExternalCluster: "isrc"}}
		c.Spec.ExternalClusters = []v1.ExternalCluster{{Name: "isrc",
			ConnectionParameters: map[string]string{"host": "isrc-rw", "user": "app", "dbname": "app", "sslmode": "verify-full"},
			Password:             &v1.SecretKeySelector{Name: "isrc-app-copy", Key: "password"},
			SSLRootCert:          &v1.SecretKeySelector{Name: "isrc-ca-copy", Key: "ca.crt"},
		}}
	})
	q := "SELECT count(*) || '|' || pg_get_userbyid(relowner) FROM items JOIN pg_class ON relname = 'items' GROUP BY relowner"
	if got := psqlLocal(t, ns, dst.Status.CurrentPrimary, "app", q); got != "1000|app" {
		t.Errorf("imported items: got %q, want 1000 rows owned by app", got)
	}
}

// TestCloneOnPods: bootstrap.pg_basebackup on real pods, CloudNativePG's
// shape: the source Cluster reached through its -rw Service over verified
// TLS as streaming_replica, authenticated by the source's replication
// client certificate (copied, with its CA, into Secrets of the cloning
// Cluster's user); the clone is an independent primary with credentials
// of its own and a replica of its own, and an unverified sslmode is
// refused by the webhook before anything is created.
func TestCloneOnPods(t *testing.T) {
	ns := newNamespace(t, "clonepods")
	ctx := context.Background()
	src := newCluster(t, ns, "cluster-example.yaml", func(c *v1.Cluster) {
		c.Name = "csrc"
		c.Spec.Instances = 1
	})
	psqlLocal(t, ns, src.Status.CurrentPrimary, "app", "CREATE TABLE items AS SELECT g AS id FROM generate_series(1, 5000) g")
	copyReplicationSecrets(t, ns, "csrc")
	clone := func(sslmode string) func(*v1.Cluster) {
		return func(c *v1.Cluster) {
			c.Name = "cdst"
			c.Spec.Instances = 2
			c.Spec.Bootstrap = &v1.BootstrapConfiguration{PgBaseBackup: &v1.BootstrapPgBaseBackup{Source: "csrc"}}
			c.Spec.ExternalClusters = []v1.ExternalCluster{streamingSource("csrc", sslmode)}
		}
	}
	bad := loadSample(t, "cluster-example.yaml")
	clone("require")(bad)
	bad.Namespace = ns
	bad.APIVersion, bad.Kind = v1.APIVersion, v1.Kind
	manifest, err := yaml.Marshal(bad)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := kubectlIn(string(manifest), "create", "-f", "-"); err == nil || !strings.Contains(out, "sslmode") {
		t.Fatalf("sslmode require: want the webhook to refuse it naming sslmode, got %v\n%s", err, out)
	}
	dst := newCluster(t, ns, "cluster-example.yaml", clone("verify-full"))
	if got := psqlLocal(t, ns, dst.Status.CurrentPrimary, "app", "SELECT count(*) FROM items"); got != "5000" {
		t.Errorf("rows in the clone: got %q, want 5000", got)
	}
	psqlLocal(t, ns, dst.Status.CurrentPrimary, "app", "INSERT INTO items VALUES (0)")
	if got := psqlLocal(t, ns, src.Status.CurrentPrimary, "app", "SELECT count(*) FROM items"); got != "5000" {
		t.Errorf("the source changed with the clone: %q rows", got)
	}
	var a, b corev1.Secret
	if err := cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: "csrc-app"}, &a); err != nil {
		t.Fatal(err)
	}
	if err := cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: "cdst-app"}, &b); err != nil {
		t.Fatal(err)
	}
	if len(a.Data["password"]) == 0 || string(a.Data["password"]) == string(b.Data["password"]) {
		t.Error("the clone shares the source's app password")
	}
	// The clone's own replica streams from it (its own replication
	// certificate, not the source's).
	for _, pod := range []string{"cdst-1", "cdst-2"} {
		if pod == dst.Status.CurrentPrimary {
			continue
		}
		eventually(t, time.Minute, "the insert on the clone's replica "+pod, func() error {
			if got := psqlLocal(t, ns, pod, "app", "SELECT count(*) FROM items"); got != "5001" {
				return fmt.Errorf("%q rows, want 5001", got)
			}
			return nil
		})
	}
}

// TestReplicaClusterOnPods: a replica cluster on real pods, CloudNativePG's
// TLS sample shape: its designated primary is cloned from the source
// Cluster and streams from it through the source's -rw Service as
// streaming_replica with the source's client certificate, its own replica
// cascades from it, no instance accepts writes; spec.replica.enabled set
// to false promotes it into an independent cluster.
func TestReplicaClusterOnPods(t *testing.T) {
	ns := newNamespace(t, "replicapods")
	ctx := context.Background()
	src := newCluster(t, ns, "cluster-example.yaml", func(c *v1.Cluster) {
		c.Name = "rsrc"
		c.Spec.Instances = 1
	})
	psqlLocal(t, ns, src.Status.CurrentPrimary, "app", "CREATE TABLE items AS SELECT g AS id FROM generate_series(1, 1000) g")
	copyReplicationSecrets(t, ns, "rsrc")
	dst := newCluster(t, ns, "cluster-example.yaml", func(c *v1.Cluster) {
		c.Name = "rdst"
		c.Spec.Instances = 2
		c.Spec.Bootstrap = &v1.BootstrapConfiguration{PgBaseBackup: &v1.BootstrapPgBaseBackup{Source: "rsrc"}}
		c.Spec.Replica = &v1.ReplicaClusterConfiguration{Enabled: new(true), Source: "rsrc"}
		c.Spec.ExternalClusters = []v1.ExternalCluster{streamingSource("rsrc", "verify-full")}
	})
	head := dst.Status.CurrentPrimary
	psqlLocal(t, ns, src.Status.CurrentPrimary, "app", "INSERT INTO items VALUES (0)")
	for _, pod := range []string{"rdst-1", "rdst-2"} {
		eventually(t, time.Minute, "the source's new row on "+pod, func() error {
			if got := psqlLocal(t, ns, pod, "app", "SELECT count(*) FROM items"); got != "1001" {
				return fmt.Errorf("%q rows, want 1001", got)
			}
			return nil
		})
		if out, err := podExec(ctx, ns, pod, "psql", "-h", "/run/postgresql", "-U", "postgres", "-d", "app", "-X", "-c", "INSERT INTO items VALUES (-1)"); err == nil || !strings.Contains(out+err.Error(), "read-only") {
			t.Errorf("a write on %s of the replica cluster: want a read-only refusal, got %v\n%s", pod, err, out)
		}
	}
	mustKubectl(t, "-n", ns, "patch", "cluster", "rdst", "--type=merge", "-p", `{"spec":{"replica":{"enabled":false}}}`)
	eventually(t, 2*time.Minute, "the promoted cluster taking a write", func() error {
		c := getCluster(t, ns, "rdst")
		if c.Status.CurrentPrimary == "" {
			return fmt.Errorf("no primary yet")
		}
		out, err := podExec(ctx, ns, c.Status.CurrentPrimary, "psql", "-h", "/run/postgresql", "-U", "postgres", "-d", "app", "-X", "-c", "INSERT INTO items VALUES (-2)")
		if err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		return nil
	})
	promoted := waitHealthy(t, ns, "rdst", 2*time.Minute)
	t.Logf("designated primary %s; after the promotion the primary is %s", head, promoted.Status.CurrentPrimary)
	if got := psqlLocal(t, ns, src.Status.CurrentPrimary, "app", "SELECT count(*) FROM items"); got != "1001" {
		t.Errorf("the source has %q rows after the replica cluster's promotion, want 1001", got)
	}
}

// copyReplicationSecrets copies, as a user would, Cluster src's
// replication client certificate and its CA certificate (never the CA's
// key) into Secrets <src>-replication-copy and <src>-ca-copy of the same
// namespace: pgward never hands one Cluster's generated secrets to
// another's pods.
func copyReplicationSecrets(t *testing.T, ns, src string) {
	t.Helper()
	ctx := context.Background()
	for from, keys := range map[string][]string{src + "-replication": {"tls.crt", "tls.key"}, src + "-ca": {"ca.crt"}} {
		var s corev1.Secret
		if err := cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: from}, &s); err != nil {
			t.Fatal(err)
		}
		data := map[string][]byte{}
		for _, k := range keys {
			data[k] = s.Data[k]
		}
		if err := cl.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: from + "-copy"}, Data: data}); err != nil {
			t.Fatal(err)
		}
	}
}

// streamingSource is the external cluster entry for Cluster src in
// CloudNativePG's TLS sample shape: its -rw Service, streaming_replica,
// the copies of copyReplicationSecrets.
func streamingSource(src, sslmode string) v1.ExternalCluster {
	return v1.ExternalCluster{Name: src,
		ConnectionParameters: map[string]string{"host": src + "-rw", "user": "streaming_replica", "dbname": "postgres", "sslmode": sslmode},
		SSLCert:              &v1.SecretKeySelector{Name: src + "-replication-copy", Key: "tls.crt"},
		SSLKey:               &v1.SecretKeySelector{Name: src + "-replication-copy", Key: "tls.key"},
		SSLRootCert:          &v1.SecretKeySelector{Name: src + "-ca-copy", Key: "ca.crt"},
	}
}
