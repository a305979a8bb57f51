package kube_test

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube"
	"github.com/pgward/pgward/internal/kube/build"
	"github.com/pgward/pgward/internal/pki"
)

// reconcileOnce runs one reconcile of c and fails the test on error.
func reconcileOnce(t *testing.T, r *kube.ClusterReconciler, c *v1.Cluster) reconcile.Result {
	t.Helper()
	res, err := r.Reconcile(ctxFor(t), reconcile.Request{NamespacedName: client.ObjectKeyFromObject(c)})
	if err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	return res
}

// createCluster stores c as the admission webhook would have left it.
func createCluster(t *testing.T, c *v1.Cluster) {
	t.Helper()
	v1.SetDefaults(c)
	if err := admin.Create(ctxFor(t), c); err != nil {
		t.Fatalf("creating cluster: %v", err)
	}
}

// owned lists every object of the namespace, by "Kind/name", with its
// resourceVersion.
func snapshot(t *testing.T, ns string) map[string]string {
	t.Helper()
	ctx := ctxFor(t)
	out := map[string]string{}
	lists := []client.ObjectList{
		&corev1.SecretList{}, &corev1.ServiceList{}, &corev1.PodList{}, &corev1.PersistentVolumeClaimList{},
		&corev1.ServiceAccountList{}, &rbacv1.RoleList{}, &rbacv1.RoleBindingList{},
		&policyv1.PodDisruptionBudgetList{}, &networkingv1.NetworkPolicyList{}, &v1.ClusterList{},
	}
	for _, l := range lists {
		if err := admin.List(ctx, l, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		items, err := metaItems(l)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range items {
			out[fmt.Sprintf("%T/%s", l, o.GetName())] = o.GetResourceVersion()
		}
	}
	return out
}

func metaItems(l client.ObjectList) ([]metav1.Object, error) {
	var out []metav1.Object
	switch l := l.(type) {
	case *corev1.SecretList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case *corev1.ServiceList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case *corev1.PodList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case *corev1.PersistentVolumeClaimList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case *corev1.ServiceAccountList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case *rbacv1.RoleList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case *rbacv1.RoleBindingList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case *policyv1.PodDisruptionBudgetList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case *networkingv1.NetworkPolicyList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case *corev1.ConfigMapList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case *v1.ClusterList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	default:
		return nil, fmt.Errorf("unhandled list %T", l)
	}
	return out, nil
}

// TestSampleCluster creates the sample Cluster in a namespace that enforces
// the restricted Pod Security Standard and checks every object the operator
// makes: existence, the parts of the spec that matter, and ownership.
func TestSampleCluster(t *testing.T) {
	ns := newNamespace(t, true)
	ctx := ctxFor(t)
	c := sampleCluster(t, ns)
	c.Spec.StorageConfiguration.StorageClass = new("fast-ssd")
	createCluster(t, c)
	r := newReconciler(&kube.MTLSInstances{Timeout: time.Second}, nil)
	res := reconcileOnce(t, r, c)
	if res.RequeueAfter <= 0 || res.RequeueAfter > kube.DefaultTiming().CheckInterval {
		t.Errorf("requeue after %v", res.RequeueAfter)
	}

	get := func(obj client.Object, name string) {
		t.Helper()
		if err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, obj); err != nil {
			t.Fatalf("%T %s: %v", obj, name, err)
		}
	}
	// The pods exist, so the API server's PodSecurity admission let them in.
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("cluster-example-%d", i)
		var pod corev1.Pod
		get(&pod, name)
		wantRole := build.RoleReplica
		if i == 1 {
			wantRole = build.RolePrimary
		}
		if pod.Labels[build.RoleLabel] != wantRole {
			t.Errorf("pod %s role %q, want %q", name, pod.Labels[build.RoleLabel], wantRole)
		}
		if *pod.Spec.AutomountServiceAccountToken || pod.Spec.ServiceAccountName != "cluster-example" {
			t.Errorf("pod %s service account %q automount %v", name, pod.Spec.ServiceAccountName, *pod.Spec.AutomountServiceAccountToken)
		}
		var pvc corev1.PersistentVolumeClaim
		get(&pvc, name)
		if q := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; q.String() != "1Gi" {
			t.Errorf("pvc %s size %s", name, q.String())
		}
		if sc := pvc.Spec.StorageClassName; sc == nil || *sc != "fast-ssd" {
			t.Errorf("pvc %s storage class %v, want spec.storage.storageClass fast-ssd", name, sc)
		}
		var cfg corev1.Secret
		get(&cfg, name+"-config")
	}
	for _, name := range []string{"cluster-example-rw", "cluster-example-ro", "cluster-example-r"} {
		var svc corev1.Service
		get(&svc, name)
		if svc.Spec.ClusterIP == "" || svc.Spec.Ports[0].Port != 5432 {
			t.Errorf("service %s: %+v", name, svc.Spec)
		}
	}
	var sa corev1.ServiceAccount
	get(&sa, "cluster-example")
	var role rbacv1.Role
	get(&role, "cluster-example")
	var rb rbacv1.RoleBinding
	get(&rb, "cluster-example")
	for _, name := range []string{"cluster-example-primary", "cluster-example-replicas"} {
		var pdb policyv1.PodDisruptionBudget
		get(&pdb, name)
	}
	secrets := map[string]corev1.SecretType{
		"cluster-example-ca": corev1.SecretTypeOpaque, "cluster-example-server": corev1.SecretTypeTLS,
		"cluster-example-replication": corev1.SecretTypeTLS, "cluster-example-controller": corev1.SecretTypeTLS,
		"cluster-example-metrics": corev1.SecretTypeTLS, "cluster-example-app": corev1.SecretTypeBasicAuth,
	}
	for name, typ := range secrets {
		var s corev1.Secret
		get(&s, name)
		if s.Type != typ {
			t.Errorf("secret %s type %s, want %s", name, s.Type, typ)
		}
	}
	var super corev1.Secret
	if err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: "cluster-example-superuser"}, &super); !apierrors.IsNotFound(err) {
		t.Errorf("superuser secret exists without enableSuperuserAccess: %v", err)
	}
	var app corev1.Secret
	get(&app, "cluster-example-app")
	for _, k := range []string{"username", "password", "dbname", "host", "port", "pgpass", "uri", "jdbc-uri", "ro-uri", "ro-jdbc-uri", "ca.crt"} {
		if len(app.Data[k]) == 0 {
			t.Errorf("app secret has no %s", k)
		}
	}
	if h := string(app.Data["host"]); h != "cluster-example-rw."+ns+".svc" {
		t.Errorf("app host %q", h)
	}
	// Writes go through the primary's Service; reads prefer the replicas'
	// and fall back to the primary's.
	rw, ro := "@cluster-example-rw."+ns+".svc:5432/", "@cluster-example-ro."+ns+".svc:5432,cluster-example-rw."+ns+".svc:5432/"
	if u := string(app.Data["uri"]); !strings.Contains(u, rw) || !strings.Contains(u, "target_session_attrs=read-write") {
		t.Errorf("app uri does not name %s for a read-write session", rw)
	}
	if u := string(app.Data["ro-uri"]); !strings.Contains(u, ro) || !strings.Contains(u, "target_session_attrs=prefer-standby") {
		t.Errorf("app ro-uri does not name %s preferring a standby", ro)
	}
	if len(app.Data["password"]) < 20 {
		t.Error("generated password is short")
	}

	var got v1.Cluster
	get(&got, c.Name)
	st := got.Status
	if st.Instances != 3 || !slices.Equal(st.InstanceNames, []string{"cluster-example-1", "cluster-example-2", "cluster-example-3"}) ||
		st.TargetPrimary != "cluster-example-1" || st.Phase != kube.PhaseWaiting {
		t.Errorf("status %+v", st)
	}
	if cond := findCondition(st.Conditions, kube.ConditionReady); cond == nil || cond.Status != metav1.ConditionFalse {
		t.Errorf("Ready condition %+v", cond)
	}
}

func findCondition(cs []metav1.Condition, typ string) *metav1.Condition {
	for i := range cs {
		if cs[i].Type == typ {
			return &cs[i]
		}
	}
	return nil
}

// TestPodSecurityAdmissionIsActive shows that the API server itself
// enforces the restricted standard in such a namespace: a privileged pod is
// refused, so the operator's pods being admitted means something.
func TestPodSecurityAdmissionIsActive(t *testing.T) {
	ns := newNamespace(t, true)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "privileged", Namespace: ns},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "c", Image: "busybox",
			SecurityContext: &corev1.SecurityContext{Privileged: new(true)},
		}}},
	}
	err := admin.Create(ctxFor(t), pod)
	if err == nil || !strings.Contains(err.Error(), "violates PodSecurity") {
		t.Fatalf("privileged pod: got %v, want a PodSecurity violation", err)
	}
	// And the operator's pod, as built, dry-run in the same namespace.
	c := sampleCluster(t, ns)
	v1.SetDefaults(c)
	p := build.Pod(c, "cluster-example-1", build.RolePrimary, testOptions())
	p.OwnerReferences = nil
	if err := admin.Create(ctxFor(t), p, client.DryRunAll); err != nil {
		t.Fatalf("instance pod refused: %v", err)
	}
}

// TestResyncWritesNothing: once a cluster is reconciled, reconciling it
// again changes no object (every resourceVersion stays the same).
func TestResyncWritesNothing(t *testing.T) {
	ns := newNamespace(t, false)
	c := sampleCluster(t, ns)
	c.Spec.EnableSuperuserAccess = new(true)
	c.Spec.NetworkPolicy = &v1.NetworkPolicyConfiguration{Enabled: true}
	createCluster(t, c)
	r := newReconciler(&kube.MTLSInstances{Timeout: time.Second}, nil)
	reconcileOnce(t, r, c)
	before := snapshot(t, ns)
	if len(before) < 20 {
		t.Fatalf("only %d objects after the first reconcile: %v", len(before), before)
	}
	for range 2 {
		reconcileOnce(t, r, c)
	}
	after := snapshot(t, ns)
	var changed []string
	for k, v := range after {
		if before[k] != v {
			changed = append(changed, k)
		}
	}
	sort.Strings(changed)
	if len(changed) > 0 || len(after) != len(before) {
		t.Errorf("a resync wrote %v (objects %d -> %d)", changed, len(before), len(after))
	}
}

// TestOwnerReferences: every object carries a controller reference to the
// Cluster with blockOwnerDeletion, and deleting the Cluster makes the real
// garbage collector (kube-controller-manager, see main_test.go) delete every
// one of them. The deletion is in the foreground, so the Cluster itself
// disappears only once each object that blocks its deletion is gone.
func TestOwnerReferences(t *testing.T) {
	ns := newNamespace(t, false)
	c := sampleCluster(t, ns)
	c.Spec.EnableSuperuserAccess = new(true)
	c.Spec.NetworkPolicy = &v1.NetworkPolicyConfiguration{Enabled: true}
	createCluster(t, c)
	r := newReconciler(&kube.MTLSInstances{Timeout: time.Second}, nil)
	reconcileOnce(t, r, c)
	var stored v1.Cluster
	if err := admin.Get(ctxFor(t), client.ObjectKeyFromObject(c), &stored); err != nil {
		t.Fatal(err)
	}
	ctx := ctxFor(t)
	// Every object of these kinds in the namespace, labelled or not: the
	// namespace is the test's own and nothing else creates objects in it.
	var owned []client.Object
	for _, l := range []client.ObjectList{
		&corev1.SecretList{}, &corev1.ServiceList{}, &corev1.PodList{}, &corev1.PersistentVolumeClaimList{},
		&corev1.ServiceAccountList{}, &rbacv1.RoleList{}, &rbacv1.RoleBindingList{},
		&policyv1.PodDisruptionBudgetList{}, &networkingv1.NetworkPolicyList{}, &corev1.ConfigMapList{},
	} {
		if err := admin.List(ctx, l, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		items, err := metaItems(l)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range items {
			ref := metav1.GetControllerOf(o)
			if ref == nil || ref.UID != stored.UID || ref.Kind != "Cluster" || ref.APIVersion != v1.APIVersion ||
				ref.BlockOwnerDeletion == nil || !*ref.BlockOwnerDeletion {
				t.Errorf("%T %s: controller reference %+v", o, o.GetName(), ref)
			}
			if o.GetLabels()[build.ClusterLabel] != c.Name {
				t.Errorf("%T %s: labels %v", o, o.GetName(), o.GetLabels())
			}
			obj, ok := o.(client.Object)
			if !ok {
				t.Fatalf("%T is not a client.Object", o)
			}
			owned = append(owned, obj)
		}
	}
	// 6 secrets (CA, server, replication, controller, metrics, app) +
	// superuser + 3 instance configs, 3 services, 3 pods, 3 PVCs, SA,
	// Role, RoleBinding, 2 PDBs, 3 NetworkPolicies.
	if len(owned) != 27 {
		t.Errorf("%d owned objects, want 27", len(owned))
	}
	// The API server's StorageObjectInUseProtection admission plugin gives
	// every PVC the protection finalizer; the PVC protection controller
	// must remove it for the claims to go.
	for _, o := range owned {
		if pvc, ok := o.(*corev1.PersistentVolumeClaim); ok && !slices.Contains(pvc.Finalizers, "kubernetes.io/pvc-protection") {
			t.Errorf("pvc %s finalizers %v: the protection the test means to exercise is missing", pvc.Name, pvc.Finalizers)
		}
	}

	start := time.Now()
	if err := admin.Delete(ctx, &stored, client.PropagationPolicy(metav1.DeletePropagationForeground)); err != nil {
		t.Fatal(err)
	}
	// While the collector works the Cluster is still there, being deleted:
	// the reconciler must leave it alone rather than recreate what goes.
	if _, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(c)}); err != nil {
		t.Errorf("reconciling a cluster being deleted: %v", err)
	}
	const bound = 60 * time.Second
	for _, o := range append(owned, &stored) {
		key := client.ObjectKeyFromObject(o)
		probe, ok := o.DeepCopyObject().(client.Object)
		if !ok {
			t.Fatalf("%T copy", o)
		}
		for {
			err := admin.Get(ctx, key, probe)
			if apierrors.IsNotFound(err) {
				break
			}
			if err != nil {
				t.Fatalf("%T %s: %v", o, key.Name, err)
			}
			if time.Since(start) > bound {
				t.Errorf("%T %s still exists %v after the Cluster was deleted (deletionTimestamp %v, finalizers %v)",
					o, key.Name, bound, probe.GetDeletionTimestamp(), probe.GetFinalizers())
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if !t.Failed() {
		t.Logf("the garbage collector deleted the Cluster and its %d objects in %v", len(owned), time.Since(start).Round(time.Millisecond))
	}
	if left := snapshot(t, ns); len(left) > 0 {
		t.Errorf("left in the namespace: %v", left)
	}
	if _, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(c)}); err != nil {
		t.Errorf("reconciling a deleted cluster: %v", err)
	}
}

// TestCertificates checks the issued TLS material: the server certificate
// carries every Service name and chains to the cluster CA, replication and
// the operator have their client identities, and the pods can read none of
// the CA key or the operator's certificate (Role).
func TestCertificates(t *testing.T) {
	ns := newNamespace(t, false)
	c := sampleCluster(t, ns)
	createCluster(t, c)
	r := newReconciler(&kube.MTLSInstances{Timeout: time.Second}, nil)
	reconcileOnce(t, r, c)
	ctx := ctxFor(t)
	secret := func(name string) *corev1.Secret {
		var s corev1.Secret
		if err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &s); err != nil {
			t.Fatal(err)
		}
		return &s
	}
	ca, err := pki.ParseKeyPair(secret("cluster-example-ca").Data["ca.crt"], secret("cluster-example-ca").Data["ca.key"])
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	server := parseCert(t, secret("cluster-example-server").Data["tls.crt"])
	for _, host := range []string{"cluster-example-rw", "cluster-example-ro." + ns, "cluster-example-r." + ns + ".svc",
		"cluster-example-rw." + ns + ".svc.cluster.local"} {
		if _, err := server.Verify(x509.VerifyOptions{DNSName: host, Roots: roots}); err != nil {
			t.Errorf("server certificate for %s: %v", host, err)
		}
	}
	for name, cn := range map[string]string{
		"cluster-example-replication": pki.ReplicationCommonName, "cluster-example-controller": pki.ControllerCommonName,
		"cluster-example-metrics": pki.MetricsCommonName,
	} {
		cert := parseCert(t, secret(name).Data["tls.crt"])
		if cert.Subject.CommonName != cn {
			t.Errorf("%s CN %q", name, cert.Subject.CommonName)
		}
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Changing serverAltDNSNames reissues the server certificate.
	var stored v1.Cluster
	if err := admin.Get(ctx, client.ObjectKeyFromObject(c), &stored); err != nil {
		t.Fatal(err)
	}
	stored.Spec.Certificates = &v1.CertificatesConfiguration{ServerAltDNSNames: []string{"pg.example.com"}}
	if err := admin.Update(ctx, &stored); err != nil {
		t.Fatal(err)
	}
	reconcileOnce(t, r, c)
	if s := parseCert(t, secret("cluster-example-server").Data["tls.crt"]); !slices.Contains(s.DNSNames, "pg.example.com") {
		t.Errorf("server certificate names %v after adding pg.example.com", s.DNSNames)
	}
	// The CA was kept.
	if again := parseCert(t, secret("cluster-example-ca").Data["ca.crt"]); !again.Equal(ca.Cert) {
		t.Error("the CA changed")
	}
}

func parseCert(t *testing.T, data []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(data)
	if b == nil {
		t.Fatal("no PEM block")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestOptionalObjectsFollowTheSpec: NetworkPolicies and the generated
// superuser secret come and go with their options.
func TestOptionalObjectsFollowTheSpec(t *testing.T) {
	ns := newNamespace(t, false)
	c := sampleCluster(t, ns)
	createCluster(t, c)
	r := newReconciler(&kube.MTLSInstances{Timeout: time.Second}, nil)
	reconcileOnce(t, r, c)
	ctx := ctxFor(t)
	exists := func(obj client.Object, name string) bool {
		err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, obj)
		if err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		return err == nil
	}
	update := func(mutate func(*v1.Cluster)) {
		var stored v1.Cluster
		if err := admin.Get(ctx, client.ObjectKeyFromObject(c), &stored); err != nil {
			t.Fatal(err)
		}
		mutate(&stored)
		if err := admin.Update(ctx, &stored); err != nil {
			t.Fatal(err)
		}
		reconcileOnce(t, r, c)
	}
	update(func(s *v1.Cluster) {
		s.Spec.EnableSuperuserAccess = new(true)
		s.Spec.NetworkPolicy = &v1.NetworkPolicyConfiguration{Enabled: true, Clients: []v1.NetworkPolicyPeer{
			{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
		}, MetricsClients: []v1.NetworkPolicyPeer{
			{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "monitoring"}}},
		}}
	})
	var mp networkingv1.NetworkPolicy
	if !exists(&mp, "cluster-example-metrics") {
		t.Fatal("metrics network policy missing")
	}
	if r := mp.Spec.Ingress; len(r) != 1 || r[0].Ports[0].Port.IntVal != 9187 || len(r[0].From) != 1 ||
		r[0].From[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "monitoring" {
		t.Errorf("metrics policy %+v", r)
	}
	var np networkingv1.NetworkPolicy
	if !exists(&np, "cluster-example-postgresql") || !exists(&networkingv1.NetworkPolicy{}, "cluster-example-status") {
		t.Fatal("network policies missing")
	}
	if from := np.Spec.Ingress[0].From; len(from) != 2 || from[1].PodSelector.MatchLabels["app"] != "web" {
		t.Errorf("postgresql policy peers %+v", from)
	}
	if !exists(&corev1.Secret{}, "cluster-example-superuser") {
		t.Error("superuser secret missing")
	}
	var cfg corev1.Secret
	exists(&cfg, "cluster-example-1-config")
	if !strings.Contains(string(cfg.Data["config.json"]), `"superuser": "cluster-example-superuser"`) {
		t.Errorf("instance config does not name the superuser secret: %s", cfg.Data["config.json"])
	}
	update(func(s *v1.Cluster) {
		s.Spec.EnableSuperuserAccess = new(false)
		s.Spec.NetworkPolicy = nil
	})
	if exists(&networkingv1.NetworkPolicy{}, "cluster-example-postgresql") || exists(&networkingv1.NetworkPolicy{}, "cluster-example-status") ||
		exists(&networkingv1.NetworkPolicy{}, "cluster-example-metrics") {
		t.Error("network policies left after disabling them")
	}
	if exists(&corev1.Secret{}, "cluster-example-superuser") {
		t.Error("superuser secret left after disabling superuser access")
	}
}

// TestRefusesToAdopt: an object of the same name that the Cluster does not
// control is neither modified nor taken over.
func TestRefusesToAdopt(t *testing.T) {
	ns := newNamespace(t, false)
	ctx := ctxFor(t)
	foreign := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "cluster-example-rw", Namespace: ns},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
	}
	if err := admin.Create(ctx, foreign); err != nil {
		t.Fatal(err)
	}
	c := sampleCluster(t, ns)
	createCluster(t, c)
	r := newReconciler(&kube.MTLSInstances{Timeout: time.Second}, nil)
	_, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(c)})
	if err == nil || !strings.Contains(err.Error(), "not controlled by cluster cluster-example") {
		t.Fatalf("got %v, want a refusal", err)
	}
	var after corev1.Service
	if err := admin.Get(ctx, client.ObjectKeyFromObject(foreign), &after); err != nil {
		t.Fatal(err)
	}
	if len(after.OwnerReferences) > 0 || after.Spec.Ports[0].Port != 80 {
		t.Errorf("foreign service changed: %+v", after)
	}
	var stored v1.Cluster
	if err := admin.Get(ctx, client.ObjectKeyFromObject(c), &stored); err != nil {
		t.Fatal(err)
	}
	if cond := findCondition(stored.Status.Conditions, kube.ConditionReady); cond == nil || cond.Reason != "ReconcileError" ||
		!strings.Contains(cond.Message, "refusing to take it over") {
		t.Errorf("condition %+v", cond)
	}
}

// TestLegacyReplicaPDBIsReplaced: the replica budget used to be named
// after its Cluster, so Cluster "a-primary"'s replica budget held the name
// of Cluster "a"'s primary budget, and "a" could not be reconciled. After
// the upgrade, reconciling "a-primary" deletes its old budget (it controls
// it) and makes the new ones, and then "a" gets its primary budget; a later
// reconcile of "a-primary" leaves "a"'s budget, of its old name, alone.
func TestLegacyReplicaPDBIsReplaced(t *testing.T) {
	ns := newNamespace(t, false)
	ctx := ctxFor(t)
	r := newReconciler(&kube.MTLSInstances{Timeout: time.Second}, nil)
	long := sampleCluster(t, ns)
	long.Name = "a-primary"
	createCluster(t, long)
	// What the previous operator made for it: a replica budget named
	// a-primary, controlled by Cluster a-primary.
	legacy := build.PodDisruptionBudgets(long)[1]
	legacy.Name = build.LegacyReplicaPDBName(long)
	if err := admin.Create(ctx, legacy); err != nil {
		t.Fatal(err)
	}
	short := sampleCluster(t, ns)
	short.Name = "a"
	createCluster(t, short)
	req := reconcile.Request{NamespacedName: client.ObjectKeyFromObject(short)}
	if _, err := r.Reconcile(ctx, req); err == nil || !strings.Contains(err.Error(), "PodDisruptionBudget a-primary exists and is not controlled by cluster a") {
		t.Fatalf("cluster a before a-primary's upgrade: got %v, want the old collision", err)
	}
	reconcileOnce(t, r, long)
	reconcileOnce(t, r, short)
	reconcileOnce(t, r, long)

	var pdbs policyv1.PodDisruptionBudgetList
	if err := admin.List(ctx, &pdbs, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, p := range pdbs.Items {
		owner := ""
		if ref := metav1.GetControllerOf(&p); ref != nil {
			owner = ref.Name
		}
		got[p.Name] = owner + " " + p.Spec.Selector.MatchLabels[build.ClusterLabel] + "/" + p.Spec.Selector.MatchLabels[build.RoleLabel]
	}
	want := map[string]string{
		"a-primary":          "a a/primary",
		"a-replicas":         "a a/replica",
		"a-primary-primary":  "a-primary a-primary/primary",
		"a-primary-replicas": "a-primary a-primary/replica",
	}
	if !maps.Equal(got, want) {
		t.Errorf("budgets (name: owner selector) %v, want %v", got, want)
	}
}

// TestDriftIsRepaired: what someone changes in the objects the operator
// manages is put back by the next reconcile (level-based, not event-based).
func TestDriftIsRepaired(t *testing.T) {
	ns := newNamespace(t, false)
	c := sampleCluster(t, ns)
	createCluster(t, c)
	r := newReconciler(&kube.MTLSInstances{Timeout: time.Second}, nil)
	reconcileOnce(t, r, c)
	ctx := ctxFor(t)
	key := func(name string) types.NamespacedName { return types.NamespacedName{Namespace: ns, Name: name} }

	var app corev1.Secret
	if err := admin.Get(ctx, key("cluster-example-app"), &app); err != nil {
		t.Fatal(err)
	}
	password := string(app.Data["password"])
	delete(app.Data, "ca.crt")
	app.Data["host"] = []byte("evil.example.com")
	if err := admin.Update(ctx, &app); err != nil {
		t.Fatal(err)
	}
	var svc corev1.Service
	if err := admin.Get(ctx, key("cluster-example-rw"), &svc); err != nil {
		t.Fatal(err)
	}
	svc.Spec.Selector = map[string]string{"app": "evil"}
	if err := admin.Update(ctx, &svc); err != nil {
		t.Fatal(err)
	}
	var pod corev1.Pod
	if err := admin.Get(ctx, key("cluster-example-1"), &pod); err != nil {
		t.Fatal(err)
	}
	pod.Labels[build.RoleLabel] = build.RoleReplica
	if err := admin.Update(ctx, &pod); err != nil {
		t.Fatal(err)
	}
	if err := admin.Delete(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "cluster-example-ro"}}); err != nil {
		t.Fatal(err)
	}

	reconcileOnce(t, r, c)

	if err := admin.Get(ctx, key("cluster-example-app"), &app); err != nil {
		t.Fatal(err)
	}
	if len(app.Data["ca.crt"]) == 0 || string(app.Data["host"]) != "cluster-example-rw."+ns+".svc" {
		t.Errorf("app secret not repaired: host %q, ca.crt %d bytes", app.Data["host"], len(app.Data["ca.crt"]))
	}
	if string(app.Data["password"]) != password {
		t.Error("the password changed: existing credentials must be kept")
	}
	if err := admin.Get(ctx, key("cluster-example-rw"), &svc); err != nil {
		t.Fatal(err)
	}
	if svc.Spec.Selector[build.InstanceLabel] != "cluster-example-1" || svc.Spec.Selector["app"] != "" {
		t.Errorf("rw selector not repaired: %v", svc.Spec.Selector)
	}
	if err := admin.Get(ctx, key("cluster-example-1"), &pod); err != nil {
		t.Fatal(err)
	}
	if pod.Labels[build.RoleLabel] != build.RolePrimary {
		t.Errorf("primary label not repaired: %v", pod.Labels)
	}
	if err := admin.Get(ctx, key("cluster-example-ro"), &svc); err != nil {
		t.Errorf("deleted service not recreated: %v", err)
	}
}

// TestRefusesAnotherClustersSecrets: a Cluster whose spec names a secret
// pgward generated for another Cluster (its CA, with the key) is refused
// when the operator reads it, and nothing of the other cluster is mounted.
func TestRefusesAnotherClustersSecrets(t *testing.T) {
	ns := newNamespace(t, false)
	ctx := ctxFor(t)
	other := sampleCluster(t, ns)
	other.Name = "other"
	createCluster(t, other)
	r := newReconciler(&kube.MTLSInstances{Timeout: time.Second}, nil)
	reconcileOnce(t, r, other)
	var ca corev1.Secret
	if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: "other-ca"}, &ca); err != nil {
		t.Fatal(err)
	}
	c := sampleCluster(t, ns)
	c.Spec.Certificates = &v1.CertificatesConfiguration{ClientCASecret: "other-ca"}
	createCluster(t, c)
	_, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(c)})
	if err == nil || !strings.Contains(err.Error(), `CA secret other-ca belongs to cluster "other"`) {
		t.Fatalf("got %v, want a refusal naming the other cluster", err)
	}
	var pods corev1.PodList
	if err := admin.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels{build.ClusterLabel: c.Name}); err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) > 0 {
		t.Errorf("%d pods created with another cluster's CA", len(pods.Items))
	}
}
