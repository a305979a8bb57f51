package kube_test

import (
	"encoding/hex"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube"
	"github.com/pgward/pgward/internal/kube/build"
)

// backupCluster is the sample with spec.backup naming the user's store
// secrets, its encryption key left to the operator.
func backupCluster(t *testing.T, ns string) *v1.Cluster {
	c := sampleCluster(t, ns)
	c.Spec.Instances = 2
	c.Spec.Backup = &v1.BackupConfiguration{BarmanObjectStore: &v1.BarmanObjectStoreConfiguration{
		DestinationPath: "s3://pgbr/k",
		EndpointURL:     "https://store.example:9443",
		EndpointCA:      &v1.SecretKeySelector{Name: "store-ca", Key: "ca.crt"},
		S3Credentials: &v1.S3Credentials{
			AccessKeyID:     &v1.SecretKeySelector{Name: "store-creds", Key: "ACCESS_KEY_ID"},
			SecretAccessKey: &v1.SecretKeySelector{Name: "store-creds", Key: "ACCESS_SECRET_KEY"},
		},
	}}
	return c
}

// TestBackupSecretsInPods: with spec.backup, the operator generates the
// encryption key (owned by the Cluster, kept across reconciles), refuses
// to go on while a named secret is missing, and each pod gets exactly the
// named keys as 0400 files where the instance manager's secret store
// looks (secrets/<secret>/<key>), never in its environment or arguments.
func TestBackupSecretsInPods(t *testing.T) {
	ns := newNamespace(t, true)
	ctx := ctxFor(t)
	c := backupCluster(t, ns)
	createCluster(t, c)
	r := newReconciler(&kube.MTLSInstances{Timeout: time.Second}, nil)

	_, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(c)})
	if err == nil || !strings.Contains(err.Error(), "store-ca") {
		t.Fatalf("reconcile without the store's secrets: %v, want an error naming store-ca", err)
	}
	const accessKey, secretKey = "AKIDEXAMPLEVALUE", "s3cr3t-value-never-in-pods-env"
	for _, s := range []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "store-ca"}, Data: map[string][]byte{"ca.crt": []byte("PEM"), "other": []byte("x")}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "store-creds"}, Data: map[string][]byte{"ACCESS_KEY_ID": []byte(accessKey), "ACCESS_SECRET_KEY": []byte(secretKey)}},
	} {
		if err := admin.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	reconcileOnce(t, r, c)

	var key corev1.Secret
	keyName := c.Name + v1.BackupKeySuffix
	if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: keyName}, &key); err != nil {
		t.Fatalf("generated key: %v", err)
	}
	pass := string(key.Data[v1.BackupKeyKey])
	if b, err := hex.DecodeString(pass); err != nil || len(b) != 32 {
		t.Errorf("generated key is %d characters, want 64 hex digits", len(pass))
	}
	if !metav1.IsControlledBy(&key, c) {
		t.Errorf("%s is not controlled by the Cluster: %v", keyName, key.OwnerReferences)
	}
	reconcileOnce(t, r, c)
	var again corev1.Secret
	if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: keyName}, &again); err != nil {
		t.Fatal(err)
	}
	if string(again.Data[v1.BackupKeyKey]) != pass {
		t.Error("the generated key changed on the next reconcile")
	}

	want := map[string]string{
		"store-ca":    "secrets/store-ca/ca.crt",
		"store-creds": "secrets/store-creds/ACCESS_KEY_ID secrets/store-creds/ACCESS_SECRET_KEY",
		keyName:       "secrets/" + keyName + "/key",
	}
	for _, name := range build.InstanceNames(c) {
		var pod corev1.Pod
		if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &pod); err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, vol := range pod.Spec.Volumes {
			if vol.Projected == nil || vol.Name != "pgward" {
				continue
			}
			if m := vol.Projected.DefaultMode; m == nil || *m != 0o400 {
				t.Errorf("%s: projected mode %v, want 0400", name, m)
			}
			for _, src := range vol.Projected.Sources {
				if src.Secret == nil {
					continue
				}
				var paths []string
				for _, it := range src.Secret.Items {
					if it.Mode != nil {
						t.Errorf("%s: %s has its own mode %o", name, it.Path, *it.Mode)
					}
					paths = append(paths, it.Path)
				}
				got[src.Secret.Name] = strings.Join(paths, " ")
			}
		}
		for s, p := range want {
			if got[s] != p {
				t.Errorf("%s: secret %s projected as %q, want %q", name, s, got[s], p)
			}
		}
		for _, ctr := range pod.Spec.Containers {
			all := strings.Join(append(append([]string{}, ctr.Command...), ctr.Args...), " ")
			for _, e := range ctr.Env {
				all += " " + e.Name + "=" + e.Value
				if e.ValueFrom != nil {
					t.Errorf("%s: env %s comes from %v", name, e.Name, e.ValueFrom)
				}
			}
			if len(ctr.EnvFrom) > 0 {
				t.Errorf("%s: envFrom %v", name, ctr.EnvFrom)
			}
			for _, secret := range []string{accessKey, secretKey, pass} {
				if strings.Contains(all, secret) {
					t.Errorf("%s: a secret value is in the container's command or environment", name)
				}
			}
		}
	}
}

// TestBackupSecretNamesAreFixed: the webhook refuses naming other secrets
// in spec.backup once pods exist, since pods keep the volumes they were
// created with.
func TestBackupSecretNamesAreFixed(t *testing.T) {
	o := backupCluster(t, "x")
	n := o.DeepCopy()
	n.Spec.Backup.BarmanObjectStore.EndpointCA.Name = "another-ca"
	_, err := kube.ClusterWebhook{}.ValidateUpdate(ctxFor(t), o, n)
	if err == nil || !strings.Contains(err.Error(), "spec.backup.barmanObjectStore") {
		t.Fatalf("got %v, want a refusal of spec.backup.barmanObjectStore", err)
	}
	if _, err := (kube.ClusterWebhook{}).ValidateUpdate(ctxFor(t), o, o.DeepCopy()); err != nil {
		t.Fatalf("unchanged: %v", err)
	}
}

// TestRecoveryClusterPods: a Cluster recovering from another's store is
// admitted on Kubernetes, and its pods get the source store's secrets
// (credentials, CA and the key its backups were encrypted with) as files,
// beside their own store's.
func TestRecoveryClusterPods(t *testing.T) {
	ns := newNamespace(t, true)
	ctx := ctxFor(t)
	c := backupCluster(t, ns)
	c.Name = "restored"
	c.Spec.Bootstrap = &v1.BootstrapConfiguration{Recovery: &v1.BootstrapRecovery{Source: "origin"}}
	src := c.Spec.Backup.BarmanObjectStore.DeepCopy()
	src.ServerName = "origin"
	src.EncryptionKey = &v1.SecretKeySelector{Name: "origin-key-copy", Key: "key"}
	c.Spec.ExternalClusters = []v1.ExternalCluster{{Name: "origin", BarmanObjectStore: src}}
	v1.SetDefaults(c)
	if _, err := (kube.ClusterWebhook{}).ValidateCreate(ctx, c); err != nil {
		t.Fatalf("webhook: %v", err)
	}
	for _, s := range []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "store-ca"}, Data: map[string][]byte{"ca.crt": []byte("PEM")}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "store-creds"}, Data: map[string][]byte{"ACCESS_KEY_ID": []byte("a"), "ACCESS_SECRET_KEY": []byte("b")}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "origin-key-copy"}, Data: map[string][]byte{"key": []byte("0123")}},
	} {
		if err := admin.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	createCluster(t, c)
	reconcileOnce(t, newReconciler(&kube.MTLSInstances{Timeout: time.Second}, nil), c)
	var pod corev1.Pod
	if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: "restored-1"}, &pod); err != nil {
		t.Fatal(err)
	}
	projected := map[string]bool{}
	for _, vol := range pod.Spec.Volumes {
		if vol.Name != "pgward" {
			continue
		}
		for _, src := range vol.Projected.Sources {
			if src.Secret != nil {
				for _, it := range src.Secret.Items {
					projected[it.Path] = true
				}
			}
		}
	}
	for _, p := range []string{"secrets/origin-key-copy/key", "secrets/restored-backup-key/key", "secrets/store-ca/ca.crt", "secrets/store-creds/ACCESS_KEY_ID"} {
		if !projected[p] {
			t.Errorf("%s not projected (have %v)", p, projected)
		}
	}
	var app corev1.Secret
	if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: "restored-app"}, &app); err != nil {
		t.Errorf("the recovered cluster's own credentials: %v", err)
	}
}
