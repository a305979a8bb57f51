//go:build e2e_kube

package kube

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube"
	"github.com/pgward/pgward/test/objectstore"
)

// The one-node cluster's network namespace and node address
// (hack/kube-env.sh): pods reach the node, never the host.
const (
	nodeNetns = "pgward-kube"
	nodeIP    = "10.250.0.1"
)

// storeService makes an object store outside the cluster reachable from
// pods by a DNS name, as a user would for any external service: a headless
// Service without a selector and an EndpointSlice naming the store's
// address. CoreDNS then answers <name>.<ns>.svc.cluster.local with it.
func storeService(t *testing.T, ns, name string, port int32) {
	t.Helper()
	ctx := context.Background()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			ClusterIP: corev1.ClusterIPNone,
			Ports:     []corev1.ServicePort{{Name: "https", Port: port, Protocol: corev1.ProtocolTCP}},
		},
	}
	if err := cl.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	tcp := corev1.ProtocolTCP
	eps := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{
			discoveryv1.LabelServiceName: name, discoveryv1.LabelManagedBy: "pgward-e2e",
		}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{nodeIP}}},
		Ports:       []discoveryv1.EndpointPort{{Name: new("https"), Port: &port, Protocol: &tcp}},
	}
	if err := cl.Create(ctx, eps); err != nil {
		t.Fatal(err)
	}
}

// TestBackupAndRecovery: a Cluster archives to a real S3 store (versitygw
// over TLS, on the node) and a ScheduledBackup every 20 s makes completed
// Backups through the primary's instance manager; a new Cluster recovered
// from that store has every row, those written after the backup included
// (replayed from the archived WAL).
func TestBackupAndRecovery(t *testing.T) {
	ns := newNamespace(t, "backup")
	ctx := context.Background()
	host := "objectstore." + ns + ".svc.cluster.local"
	store := objectstore.StartWith(t, objectstore.Options{Netns: nodeNetns, IP: nodeIP, DNSName: host})
	var port int32
	if _, err := fmt.Sscanf(strings.TrimPrefix(store.Endpoint, "https://"+host+":"), "%d", &port); err != nil {
		t.Fatalf("store endpoint %s: %v", store.Endpoint, err)
	}
	storeService(t, ns, "objectstore", port)
	if out, err := kubectlIn(store.SecretManifest("store"), "-n", ns, "create", "-f", "-"); err != nil {
		t.Fatalf("store secret: %v\n%s", err, out)
	}
	objectStore := func(serverName string) *v1.BarmanObjectStoreConfiguration {
		return &v1.BarmanObjectStoreConfiguration{
			DestinationPath: "s3://" + store.Bucket + "/e2e",
			EndpointURL:     store.Endpoint,
			EndpointCA:      &v1.SecretKeySelector{Name: "store", Key: "ca.crt"},
			S3Credentials: &v1.S3Credentials{
				AccessKeyID:     &v1.SecretKeySelector{Name: "store", Key: "ACCESS_KEY_ID"},
				SecretAccessKey: &v1.SecretKeySelector{Name: "store", Key: "ACCESS_SECRET_KEY"},
			},
			ServerName: serverName,
		}
	}

	newCluster(t, ns, "cluster-example.yaml", func(c *v1.Cluster) {
		c.Name = "origin"
		c.Spec.Instances = 1
		c.Spec.Backup = &v1.BackupConfiguration{BarmanObjectStore: objectStore("")}
	})
	psqlLocal(t, ns, "origin-1", "app", "CREATE TABLE t (i int); INSERT INTO t SELECT generate_series(1, 100)")

	sb := &v1.ScheduledBackup{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1.APIVersion, Kind: v1.ScheduledBackupKind},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "every20s"},
		Spec: v1.ScheduledBackupSpec{
			Schedule: "*/20 * * * * *", Immediate: new(true), BackupOwnerReference: v1.BackupOwnerSelf,
			Cluster: v1.LocalObjectReference{Name: "origin"},
		},
	}
	if err := cl.Create(ctx, sb); err != nil {
		t.Fatalf("scheduled backup: %v", err)
	}
	var done v1.Backup
	eventually(t, 4*time.Minute, "a completed Backup", func() error {
		var l v1.BackupList
		if err := cl.List(ctx, &l, client.InNamespace(ns), client.MatchingLabels{kube.ScheduledBackupLabel: sb.Name}); err != nil {
			return err
		}
		var seen []string
		for _, b := range l.Items {
			if b.Status.Phase == v1.BackupPhaseFailed {
				t.Fatalf("backup %s failed: %s", b.Name, b.Status.Error)
			}
			if b.Status.Phase == v1.BackupPhaseCompleted {
				done = b
				return nil
			}
			seen = append(seen, b.Name+"="+b.Status.Phase+" "+b.Status.Error)
		}
		return fmt.Errorf("backups: %v", seen)
	})
	st := done.Status
	t.Logf("backup %s: id %s, %s..%s, %s", done.Name, st.BackupID, st.BeginLSN, st.EndLSN, st.StoppedAt.Sub(st.StartedAt.Time))
	if st.BackupID == "" || st.BeginLSN == "" || st.EndLSN == "" || st.InstanceID == nil || st.InstanceID.PodName != "origin-1" {
		t.Errorf("completed backup status: %+v", st)
	}
	// No more Backups while the recovery runs (2 cores).
	if out, err := kubectl("-n", ns, "patch", "scheduledbackup", sb.Name, "--type", "merge", "-p", `{"spec":{"suspend":true}}`); err != nil {
		t.Fatalf("suspend: %v\n%s", err, out)
	}

	// Rows after the backup reach the store as archived WAL only.
	psqlLocal(t, ns, "origin-1", "app", "INSERT INTO t SELECT generate_series(101, 150)")
	seg := psqlLocal(t, ns, "origin-1", "app", "SELECT pg_walfile_name(pg_switch_wal())")
	eventually(t, time.Minute, "segment "+seg+" archived", func() error {
		got := psqlLocal(t, ns, "origin-1", "app", "SELECT coalesce(last_archived_wal, '') || ' ' || failed_count || ' ' || coalesce(last_failed_wal, '') FROM pg_stat_archiver")
		if f := strings.Fields(got); len(f) == 0 || f[0] < seg {
			return fmt.Errorf("archiver: %s", got)
		}
		return nil
	})

	// Whoever restores keeps a copy of the source's key: a secret pgward
	// generated for another cluster cannot be named.
	var key corev1.Secret
	if err := cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: "origin" + v1.BackupKeySuffix}, &key); err != nil {
		t.Fatal(err)
	}
	keyCopy := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "origin-key-copy"},
		Data:       map[string][]byte{"key": key.Data[v1.BackupKeyKey]},
	}
	if err := cl.Create(ctx, keyCopy); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	newCluster(t, ns, "cluster-example.yaml", func(c *v1.Cluster) {
		c.Name = "restored"
		c.Spec.Instances = 1
		src := objectStore("origin")
		src.EncryptionKey = &v1.SecretKeySelector{Name: keyCopy.Name, Key: "key"}
		c.Spec.ExternalClusters = []v1.ExternalCluster{{Name: "origin", BarmanObjectStore: src}}
		c.Spec.Bootstrap = &v1.BootstrapConfiguration{Recovery: &v1.BootstrapRecovery{Source: "origin", Database: "app", Owner: "app"}}
	})
	t.Logf("recovered cluster healthy %.1fs after its creation", time.Since(start).Seconds())
	if got := psqlLocal(t, ns, "restored-1", "app", "SELECT count(*), max(i) FROM t"); got != "150|150" {
		t.Errorf("restored rows: %q, want 150|150", got)
	}

	// With its object store gone (as when the test's namespace goes), the
	// archiving primary's pod stops as soon as PostgreSQL has stopped
	// cleanly: PostgreSQL's archiver, retrying the store, held it for
	// about its whole grace period (180 s) before.
	store.Stop()
	psqlLocal(t, ns, "origin-1", "app", "INSERT INTO t SELECT generate_series(151, 200)")
	var pod corev1.Pod
	if err := cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: "origin-1"}, &pod); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if err := cl.Delete(ctx, &pod); err != nil {
		t.Fatal(err)
	}
	eventually(t, 4*time.Minute, "origin-1's pod gone", func() error {
		var p corev1.Pod
		err := cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: "origin-1"}, &p)
		if err == nil && p.UID == pod.UID {
			return errors.New("still there")
		}
		return client.IgnoreNotFound(err)
	})
	took := time.Since(start)
	t.Logf("origin-1 deleted with its object store gone: pod gone after %.1fs", took.Seconds())
	if took > 30*time.Second {
		t.Errorf("origin-1's pod took %.1fs to stop with its object store gone", took.Seconds())
	}
}
