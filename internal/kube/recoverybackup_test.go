package kube_test

import (
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

// TestRecoveryFromBackupObject: bootstrap.recovery.backup (CloudNativePG's
// cluster-restore sample) resolves, on a real API server, to the backed-up
// Cluster's object store and encryption key and the Backup's ID, in the
// spec the instances read; the pods project that store's secrets and key.
// A Backup that is not completed is refused naming the field; once
// resolved, deleting the Backup does not stop the reconciliation.
func TestRecoveryFromBackupObject(t *testing.T) {
	ns := newNamespace(t, true)
	ctx := ctxFor(t)
	for _, s := range []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "store-ca"}, Data: map[string][]byte{"ca.crt": []byte("PEM")}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "store-creds"}, Data: map[string][]byte{"ACCESS_KEY_ID": []byte("a"), "ACCESS_SECRET_KEY": []byte("b")}},
	} {
		if err := admin.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	r := newReconciler(&kube.MTLSInstances{Timeout: time.Second}, nil)
	// gen's key is the one pgward generated for it; origin's its user's.
	gen := backupCluster(t, ns)
	gen.Name = "gen"
	createCluster(t, gen)
	reconcileOnce(t, r, gen)
	origin := backupCluster(t, ns)
	origin.Name = "origin"
	origin.Spec.Backup.BarmanObjectStore.EncryptionKey = &v1.SecretKeySelector{Name: "origin-own-key", Key: "key"}
	if err := admin.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "origin-own-key"}, Data: map[string][]byte{"key": []byte("0123")}}); err != nil {
		t.Fatal(err)
	}
	createCluster(t, origin)
	reconcileOnce(t, r, origin)
	bk := &v1.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "backup-example"}, Spec: v1.BackupSpec{Cluster: v1.LocalObjectReference{Name: "origin"}}}
	genBackup := &v1.Backup{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gen-backup"}, Spec: v1.BackupSpec{Cluster: v1.LocalObjectReference{Name: "gen"}}}
	for _, b := range []*v1.Backup{bk, genBackup} {
		if err := admin.Create(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	genBackup.Status = v1.BackupStatus{Phase: v1.BackupPhaseCompleted, BackupID: "20261206-110000F"}
	if err := admin.Status().Update(ctx, genBackup); err != nil {
		t.Fatal(err)
	}
	thief := backupCluster(t, ns)
	thief.Name = "thief"
	thief.Spec.Bootstrap = &v1.BootstrapConfiguration{Recovery: &v1.BootstrapRecovery{Backup: &v1.LocalObjectReference{Name: "gen-backup"}}}
	createCluster(t, thief)
	if _, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(thief)}); err == nil || !strings.Contains(err.Error(), "gen-backup-key") {
		t.Fatalf("a Backup encrypted with another Cluster's generated key: got %v, want a refusal", err)
	}
	var pods corev1.PodList
	if err := admin.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels{build.ClusterLabel: "thief"}); err != nil || len(pods.Items) > 0 {
		t.Fatalf("thief's pods: %d (%v)", len(pods.Items), err)
	}

	c := backupCluster(t, ns)
	c.Name = "cluster-restore"
	c.Spec.Bootstrap = &v1.BootstrapConfiguration{Recovery: &v1.BootstrapRecovery{
		Backup:         &v1.LocalObjectReference{Name: "backup-example"},
		RecoveryTarget: &v1.RecoveryTarget{TargetTime: "2026-12-06 15:22:00.00000+00"},
	}}
	v1.SetDefaults(c)
	if _, err := (kube.ClusterWebhook{}).ValidateCreate(ctx, c); err != nil {
		t.Fatalf("webhook: %v", err)
	}
	createCluster(t, c)
	req := reconcile.Request{NamespacedName: client.ObjectKeyFromObject(c)}
	if _, err := r.Reconcile(ctx, req); err == nil || !strings.Contains(err.Error(), "spec.bootstrap.recovery.backup") || !strings.Contains(err.Error(), "not completed") {
		t.Fatalf("a pending Backup: got %v", err)
	}
	bk.Status = v1.BackupStatus{Phase: v1.BackupPhaseCompleted, BackupID: "20261206-120000F"}
	if err := admin.Status().Update(ctx, bk); err != nil {
		t.Fatal(err)
	}
	reconcileOnce(t, r, c)
	check := func() {
		t.Helper()
		var cfg corev1.Secret
		if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: build.InstanceConfigSecretName("cluster-restore-1")}, &cfg); err != nil {
			t.Fatal(err)
		}
		got, err := v1.LoadAndValidate(cfg.Data[build.ClusterKeyJSON])
		if err != nil {
			t.Fatalf("the instances' cluster.json: %v", err)
		}
		rec := got.Spec.Bootstrap.Recovery
		src := got.Spec.RecoverySource()
		switch {
		case rec.Backup != nil || rec.Source != "origin" || rec.RecoveryTarget.BackupID != "20261206-120000F" || rec.RecoveryTarget.TargetTime == "":
			t.Errorf("recovery: %+v target %+v", rec, rec.RecoveryTarget)
		case src == nil || src.BarmanObjectStore == nil || src.BarmanObjectStore.ServerName != "origin" ||
			src.BarmanObjectStore.EncryptionKey == nil || src.BarmanObjectStore.EncryptionKey.Name != "origin-own-key":
			t.Errorf("source: %+v", src)
		}
		var pod corev1.Pod
		if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: "cluster-restore-1"}, &pod); err != nil {
			t.Fatal(err)
		}
		projected := map[string]bool{}
		for _, vol := range pod.Spec.Volumes {
			if vol.Projected == nil {
				continue
			}
			for _, s := range vol.Projected.Sources {
				if s.Secret != nil {
					for _, it := range s.Secret.Items {
						projected[it.Path] = true
					}
				}
			}
		}
		for _, p := range []string{"secrets/origin-own-key/key", "secrets/cluster-restore-backup-key/key", "secrets/store-creds/ACCESS_KEY_ID"} {
			if !projected[p] {
				t.Errorf("%s not projected", p)
			}
		}
	}
	check()
	var stored v1.Cluster
	if err := admin.Get(ctx, req.NamespacedName, &stored); err != nil || stored.Spec.Bootstrap.Recovery.Backup == nil || stored.Spec.Bootstrap.Recovery.Source != "" {
		t.Errorf("the stored spec must keep the user's words: %+v (%v)", stored.Spec.Bootstrap.Recovery, err)
	}
	if err := admin.Delete(ctx, bk); err != nil {
		t.Fatal(err)
	}
	reconcileOnce(t, r, c)
	check()
}
