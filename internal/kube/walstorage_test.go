package kube_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/instanceapi"
	"github.com/pgward/pgward/internal/kube"
	"github.com/pgward/pgward/internal/kube/build"
)

// TestWalStorageAndRolesOnTheAPIServer: spec.walStorage and
// spec.managed.roles on the real API server, where the webhook and the
// reconciler no longer refuse them. Each instance gets a WAL volume
// (CloudNativePG's <pod>-wal, size and class from spec.walStorage, owned
// by the Cluster, labelled with its instance) which its pod mounts where
// its config.json's walDir is, and which goes with its instance when the
// cluster shrinks. Each pod projects the roles' password secrets, key by
// key, optional (the pod is admitted in a namespace enforcing the
// restricted standard); a missing secret gives the ManagedRoles condition
// and a warning Event (recorded through the API server with the
// operator's RBAC) until it exists. The webhook refuses a WAL volume
// without a size, a changed WAL class, and a password secret the running
// pods do not project.
func TestWalStorageAndRolesOnTheAPIServer(t *testing.T) {
	ns := newNamespace(t, true)
	ctx := ctxFor(t)
	c := sampleCluster(t, ns)
	c.Spec.WalStorage = &v1.StorageConfiguration{Size: "2Gi", StorageClass: new("standard")}
	c.Spec.Managed = &v1.ManagedConfiguration{Roles: []v1.RoleConfiguration{
		{Name: "dante", Login: true, CreateDB: true, ConnectionLimit: new(int64(4)), InRoles: []string{"pg_monitor"},
			Comment: "poet", PasswordSecret: &v1.LocalObjectReference{Name: "cluster-example-dante"}},
		{Name: "nopass", Login: false},
		{Name: "gone", Ensure: "absent", PasswordSecret: &v1.LocalObjectReference{Name: "cluster-example-gone"}},
	}}
	v1.SetDefaults(c)
	if errs := kube.ValidateForKubernetes(c); len(errs) > 0 {
		t.Fatal(errs.ToAggregate())
	}
	w := kube.ClusterWebhook{}
	if _, err := w.ValidateCreate(ctx, c); err != nil {
		t.Fatalf("webhook: %v", err)
	}
	createCluster(t, c)

	cs, err := kubernetes.NewForConfig(opCfg)
	if err != nil {
		t.Fatal(err)
	}
	broadcaster := events.NewBroadcaster(&events.EventSinkImpl{Interface: cs.EventsV1()})
	stop := make(chan struct{})
	broadcaster.StartRecordingToSink(stop)
	t.Cleanup(func() { close(stop); broadcaster.Shutdown() })
	r := newReconciler(&kube.MTLSInstances{Timeout: time.Second}, nil)
	r.Recorder = broadcaster.NewRecorder(scheme, "pgward-operator")
	reconcileOnce(t, r, c)

	for _, name := range build.InstanceNames(c) {
		var pvc corev1.PersistentVolumeClaim
		if err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: name + "-wal"}, &pvc); err != nil {
			t.Fatalf("WAL PVC of %s: %v", name, err)
		}
		size := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
		if size.String() != "2Gi" || pvc.Spec.StorageClassName == nil || *pvc.Spec.StorageClassName != "standard" ||
			pvc.Labels[build.InstanceLabel] != name || pvc.Labels[build.ClusterLabel] != c.Name || pvc.Labels[build.PVCRoleLabel] != build.PVCRoleWAL {
			t.Errorf("PVC %s: size %s class %v labels %v", pvc.Name, size.String(), pvc.Spec.StorageClassName, pvc.Labels)
		}
		if len(pvc.OwnerReferences) != 1 || pvc.OwnerReferences[0].Name != c.Name || pvc.OwnerReferences[0].Controller == nil || !*pvc.OwnerReferences[0].Controller {
			t.Errorf("PVC %s owner %+v", pvc.Name, pvc.OwnerReferences)
		}

		var pod corev1.Pod
		if err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &pod); err != nil {
			t.Fatalf("pod %s: %v", name, err)
		}
		claims := map[string]string{}
		for _, v := range pod.Spec.Volumes {
			if v.PersistentVolumeClaim != nil {
				claims[v.Name] = v.PersistentVolumeClaim.ClaimName
			}
		}
		mounted := false
		for _, m := range pod.Spec.Containers[0].VolumeMounts {
			if m.MountPath == build.WalMount {
				mounted = claims[m.Name] == name+"-wal" && !m.ReadOnly
			}
		}
		if !mounted {
			t.Errorf("pod %s does not mount %s-wal at %s: %v", name, name, build.WalMount, pod.Spec.Containers[0].VolumeMounts)
		}
		roleSecrets := map[string][]string{}
		for _, v := range pod.Spec.Volumes {
			if v.Projected == nil {
				continue
			}
			for _, s := range v.Projected.Sources {
				if s.Secret == nil || !strings.HasPrefix(s.Secret.Name, "cluster-example-dante") && !strings.HasPrefix(s.Secret.Name, "cluster-example-gone") {
					continue
				}
				if s.Secret.Optional == nil || !*s.Secret.Optional {
					t.Errorf("pod %s projects %s not optional: a missing secret would keep the pod from starting", name, s.Secret.Name)
				}
				if v.Projected.DefaultMode == nil || *v.Projected.DefaultMode != 0o400 {
					t.Errorf("pod %s projects %s with mode %v", name, s.Secret.Name, v.Projected.DefaultMode)
				}
				for _, it := range s.Secret.Items {
					if it.Mode != nil {
						t.Errorf("pod %s: %s/%s has its own mode %o", name, s.Secret.Name, it.Key, *it.Mode)
					}
					roleSecrets[s.Secret.Name] = append(roleSecrets[s.Secret.Name], it.Key+"->"+it.Path)
				}
			}
		}
		for _, s := range []string{"cluster-example-dante", "cluster-example-gone"} {
			want := fmt.Sprintf("[username->secrets/%s/username password->secrets/%s/password]", s, s)
			if got := fmt.Sprint(roleSecrets[s]); got != want {
				t.Errorf("pod %s projects %s as %s, want %s", name, s, got, want)
			}
		}

		var sec corev1.Secret
		if err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: build.InstanceConfigSecretName(name)}, &sec); err != nil {
			t.Fatal(err)
		}
		var cfg instanceapi.Config
		if err := json.Unmarshal(sec.Data["config.json"], &cfg); err != nil || cfg.WalDir != build.WalDir || !strings.HasPrefix(cfg.WalDir, build.WalMount+"/") {
			t.Errorf("config.json of %s: walDir %q (%v), want %s", name, cfg.WalDir, err, build.WalDir)
		}
	}

	// The password secret of dante does not exist: a condition naming it
	// (not for gone, which is to be absent), and a warning Event.
	cur := storedCluster(t, c)
	cond := findCondition(cur.Status.Conditions, kube.ConditionManagedRoles)
	if cond == nil || cond.Status != metav1.ConditionFalse || cond.Reason != "PasswordSecretUnavailable" ||
		!strings.Contains(cond.Message, `spec.managed.roles[0] (dante): passwordSecret "cluster-example-dante": no such Secret`) ||
		strings.Contains(cond.Message, "cluster-example-gone") {
		t.Fatalf("ManagedRoles condition: %+v", cond)
	}
	eventually(t, 30*time.Second, "the warning Event", func() error {
		var evs eventsv1.EventList
		if err := admin.List(ctx, &evs, client.InNamespace(ns)); err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.Type == corev1.EventTypeWarning && e.Reason == "PasswordSecretUnavailable" && e.Regarding.Name == c.Name &&
				strings.Contains(e.Note, "cluster-example-dante") {
				return nil
			}
		}
		return fmt.Errorf("%d events, none about the missing secret", len(evs.Items))
	})

	// A secret for another user is named as such; the right one clears
	// the condition (no instance answers here: the primary's part is
	// unknown).
	pw := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "cluster-example-dante"}, Type: corev1.SecretTypeBasicAuth,
		Data: map[string][]byte{"username": []byte("virgil"), "password": []byte("a-long-enough-password")}}
	if err := admin.Create(ctx, pw); err != nil {
		t.Fatal(err)
	}
	reconcileOnce(t, r, c)
	if cond := findCondition(storedCluster(t, c).Status.Conditions, kube.ConditionManagedRoles); cond == nil || cond.Reason != "PasswordSecretUnavailable" ||
		!strings.Contains(cond.Message, `the Secret is for user "virgil"`) {
		t.Errorf("ManagedRoles with a secret for another user: %+v", cond)
	}
	marks := func() map[string]string {
		out := map[string]string{}
		for _, name := range build.InstanceNames(c) {
			var pod corev1.Pod
			if err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &pod); err != nil {
				t.Fatal(err)
			}
			out[name] = pod.Annotations[kube.RoleSecretsAnnotation]
		}
		return out
	}
	first := marks()
	pw.Data["username"] = []byte("dante")
	if err := admin.Update(ctx, pw); err != nil {
		t.Fatal(err)
	}
	reconcileOnce(t, r, c)
	if cond := findCondition(storedCluster(t, c).Status.Conditions, kube.ConditionManagedRoles); cond == nil || cond.Status != metav1.ConditionUnknown || cond.Reason != "PrimaryUnavailable" {
		t.Errorf("ManagedRoles with the secret: %+v", cond)
	}
	// A changed secret changes the pods' annotation (the kubelet then
	// refreshes their projected secrets at once); no change, no write.
	second := marks()
	for name, m := range second {
		if m == "" || m == first[name] || strings.Contains(m, "dante") {
			t.Errorf("pod %s: role secrets annotation %q, before the change %q", name, m, first[name])
		}
	}
	reconcileOnce(t, r, c)
	if again := marks(); fmt.Sprint(again) != fmt.Sprint(second) {
		t.Errorf("annotations changed without a secret change: %v then %v", second, again)
	}

	// The webhook.
	cur = storedCluster(t, c)
	noSize := cur.DeepCopy()
	noSize.Spec.WalStorage.Size = ""
	if _, err := w.ValidateCreate(ctx, noSize); err == nil || !strings.Contains(err.Error(), "spec.walStorage.size: Required") {
		t.Errorf("no WAL size: %v", err)
	}
	for _, tc := range []struct {
		name   string
		change func(*v1.Cluster)
		want   string
	}{
		{"WAL class changed", func(n *v1.Cluster) { n.Spec.WalStorage.StorageClass = new("fast") }, "spec.walStorage.storageClass: Forbidden"},
		{"WAL shrunk", func(n *v1.Cluster) { n.Spec.WalStorage.Size = "1Gi" }, "spec.walStorage.size: Forbidden"},
		{"WAL removed", func(n *v1.Cluster) { n.Spec.WalStorage = nil }, "spec.walStorage: Forbidden"},
		{"WAL pvcTemplate", func(n *v1.Cluster) {
			n.Spec.WalStorage.PersistentVolumeClaimTemplate = &corev1.PersistentVolumeClaimSpec{}
		}, "spec.walStorage.pvcTemplate"},
		{"a new password secret", func(n *v1.Cluster) {
			n.Spec.Managed.Roles = append(n.Spec.Managed.Roles, v1.RoleConfiguration{Name: "beatrice", Login: true,
				PasswordSecret: &v1.LocalObjectReference{Name: "cluster-example-beatrice"}})
		}, "spec.managed.roles[3].passwordSecret: Forbidden: the pods project the password secrets named when they were created (cluster-example-dante, cluster-example-gone)"},
		{"pgward's role", func(n *v1.Cluster) {
			n.Spec.Managed.Roles = append(n.Spec.Managed.Roles, v1.RoleConfiguration{Name: "streaming_replica", Login: true})
		}, "spec.managed.roles[3]"},
	} {
		n := cur.DeepCopy()
		tc.change(n)
		if _, err := w.ValidateUpdate(ctx, cur, n); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	ok := cur.DeepCopy()
	ok.Spec.WalStorage.Size = "3Gi"
	ok.Spec.Managed.Roles[2].Ensure = "present"
	ok.Spec.Managed.Roles = append(ok.Spec.Managed.Roles,
		v1.RoleConfiguration{Name: "virgil", Login: true, PasswordSecret: &v1.LocalObjectReference{Name: "cluster-example-gone"}},
		v1.RoleConfiguration{Name: "beatrice", Login: true, ValidUntil: &metav1.Time{Time: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}})
	ok.Spec.Managed.Roles[2].PasswordSecret = nil
	if _, err := w.ValidateUpdate(ctx, cur, ok); err != nil {
		t.Errorf("WAL grown, roles added without a new secret: %v", err)
	}

	// Fewer instances: the WAL volumes of the instances removed go with
	// their data volume. (Growing them needs bound claims, which no
	// storage provisioner makes here: growPVC is shared with the data
	// volume's.)
	cur.Spec.Instances = 2
	if err := admin.Update(ctx, cur); err != nil {
		t.Fatal(err)
	}
	reconcileOnce(t, r, cur)
	for _, pvc := range []string{c.Name + "-3", c.Name + "-3-wal"} {
		var got corev1.PersistentVolumeClaim
		err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: pvc}, &got)
		if !apierrors.IsNotFound(err) && (err != nil || got.DeletionTimestamp == nil) {
			t.Errorf("PVC %s of the removed instance: still there (%v)", pvc, err)
		}
	}
	var kept corev1.PersistentVolumeClaim
	if err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: c.Name + "-2-wal"}, &kept); err != nil || kept.DeletionTimestamp != nil {
		t.Errorf("WAL PVC of a kept instance: %v %v", err, kept.DeletionTimestamp)
	}
}

func storedCluster(t *testing.T, c *v1.Cluster) *v1.Cluster {
	t.Helper()
	var cur v1.Cluster
	if err := admin.Get(context.Background(), client.ObjectKeyFromObject(c), &cur); err != nil {
		t.Fatal(err)
	}
	v1.SetDefaults(&cur)
	return &cur
}

// TestCloudNativePGWalAndRolesSamples: CloudNativePG's walStorage and
// roles samples (../shared/cnpg-samples, read there, the Cluster document
// with pgward's apiVersion) are accepted by the operator's validation and
// its webhook, which refused both fields before.
func TestCloudNativePGWalAndRolesSamples(t *testing.T) {
	dir := os.Getenv("PGWARD_CNPG_SAMPLES")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "cnpg-samples")
	}
	for _, f := range []string{"cluster-example-wal-storage.yaml", "cluster-example-with-roles.yaml"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if os.IsNotExist(err) {
			t.Skipf("no CloudNativePG samples in %s (set PGWARD_CNPG_SAMPLES)", dir)
		}
		if err != nil {
			t.Fatal(err)
		}
		doc, _, _ := strings.Cut(string(b), "\n---")
		doc = strings.Replace(doc, "apiVersion: postgresql.cnpg.io/v1", "apiVersion: "+v1.APIVersion, 1)
		c, err := v1.LoadAndValidate([]byte(doc))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		c.Namespace = "ns"
		if errs := kube.ValidateForKubernetes(c); len(errs) > 0 {
			t.Errorf("%s: %v", f, errs.ToAggregate())
		}
		if _, err := (kube.ClusterWebhook{}).ValidateCreate(context.Background(), c); err != nil {
			t.Errorf("%s: webhook: %v", f, err)
		}
	}
}
