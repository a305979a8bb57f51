package kube_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube"
	"github.com/pgward/pgward/internal/kube/build"
)

const (
	userImage15  = "ghcr.io/cloudnative-pg/postgresql:15"
	userImage158 = "ghcr.io/cloudnative-pg/postgresql:15.8-bookworm"
)

// checkUserImagePod checks that pod runs image in its postgres container,
// from the pgward binary the init container (of pgward's own image) copied
// into the shared emptyDir, read-only there.
func checkUserImagePod(t *testing.T, pod *corev1.Pod, image string) {
	t.Helper()
	opts := testOptions()
	main := pod.Spec.Containers[0]
	if main.Image != image || main.Command[0] != build.BinaryPath {
		t.Errorf("pod %s: postgres container image %s command %v, want %s running %s", pod.Name, main.Image, main.Command, image, build.BinaryPath)
	}
	if len(pod.Spec.InitContainers) != 1 {
		t.Fatalf("pod %s: init containers %+v", pod.Name, pod.Spec.InitContainers)
	}
	init := pod.Spec.InitContainers[0]
	if init.Image != opts.Image || strings.Join(init.Command, " ") != "pgward instance install-binary "+build.BinaryPath {
		t.Errorf("pod %s: init container %s %v", pod.Name, init.Image, init.Command)
	}
	if sc := init.SecurityContext; sc == nil || !*sc.RunAsNonRoot || *sc.AllowPrivilegeEscalation || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("pod %s: init container security context %+v", pod.Name, sc)
	}
	ro := false
	for _, m := range main.VolumeMounts {
		if m.MountPath == build.BinaryDir {
			ro = m.ReadOnly
		}
	}
	if !ro {
		t.Errorf("pod %s: %s not mounted read-only in the postgres container: %+v", pod.Name, build.BinaryDir, main.VolumeMounts)
	}
}

func getPod(t *testing.T, ns, name string) *corev1.Pod {
	t.Helper()
	var pod corev1.Pod
	if err := admin.Get(ctxFor(t), types.NamespacedName{Namespace: ns, Name: name}, &pod); err != nil {
		t.Fatal(err)
	}
	return &pod
}

// TestOperandImageFromSpec: imageName, a namespaced ImageCatalog and a
// ClusterImageCatalog each put their image in the pods (admitted by the
// restricted Pod Security Standard), with the pull policy and secrets; a
// missing catalog, or one without major 15, is reported, not guessed.
func TestOperandImageFromSpec(t *testing.T) {
	ns := newNamespace(t, true)
	ctx := ctxFor(t)
	r := newReconciler(&kube.MTLSInstances{Timeout: time.Second}, nil)

	named := sampleCluster(t, ns)
	named.Name = "named"
	named.Spec.Instances = 1
	named.Spec.ImageName = userImage15
	named.Spec.ImagePullPolicy = "Always"
	named.Spec.ImagePullSecrets = []v1.LocalObjectReference{{Name: "regcred"}}
	createCluster(t, named)
	reconcileOnce(t, r, named)
	pod := getPod(t, ns, "named-1")
	checkUserImagePod(t, pod, userImage15)
	if pod.Spec.Containers[0].ImagePullPolicy != corev1.PullAlways || len(pod.Spec.ImagePullSecrets) != 1 || pod.Spec.ImagePullSecrets[0].Name != "regcred" {
		t.Errorf("pull policy %s secrets %+v", pod.Spec.Containers[0].ImagePullPolicy, pod.Spec.ImagePullSecrets)
	}

	// The default stays pgward's image, pgward inside, no init container.
	plain := sampleCluster(t, ns)
	plain.Name = "plain"
	plain.Spec.Instances = 1
	createCluster(t, plain)
	reconcileOnce(t, r, plain)
	if p := getPod(t, ns, "plain-1"); p.Spec.Containers[0].Image != testOptions().Image || len(p.Spec.InitContainers) != 0 || p.Spec.Containers[0].Command[0] != "pgward" {
		t.Errorf("default pod: %s %v init %d", p.Spec.Containers[0].Image, p.Spec.Containers[0].Command, len(p.Spec.InitContainers))
	}

	cat := &v1.ImageCatalog{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "images"}, Spec: v1.ImageCatalogSpec{Images: []v1.CatalogImage{
		{Image: "ghcr.io/cloudnative-pg/postgresql:16", Major: 16}, {Image: userImage15, Major: 15},
	}}}
	if err := admin.Create(ctx, cat); err != nil {
		t.Fatal(err)
	}
	ccat := &v1.ClusterImageCatalog{ObjectMeta: metav1.ObjectMeta{Name: "images-" + ns}, Spec: v1.ImageCatalogSpec{Images: []v1.CatalogImage{
		{Image: userImage158, Major: 15},
	}}}
	if err := admin.Create(ctx, ccat); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Delete(context.Background(), ccat) })
	cnpg := v1.CloudNativePGGroup
	for _, tc := range []struct{ cluster, kind, name, image string }{
		{"fromcat", v1.ImageCatalogKind, "images", userImage15},
		{"fromclustercat", v1.ClusterImageCatalogKind, "images-" + ns, userImage158},
	} {
		c := sampleCluster(t, ns)
		c.Name = tc.cluster
		c.Spec.Instances = 1
		c.Spec.ImageCatalogRef = &v1.ImageCatalogRef{APIGroup: &cnpg, Kind: tc.kind, Name: tc.name, Major: 15}
		createCluster(t, c)
		reconcileOnce(t, r, c)
		checkUserImagePod(t, getPod(t, ns, tc.cluster+"-1"), tc.image)
	}

	// A catalog that is missing, or lacks major 15: no pod, and the
	// Cluster's status says why.
	for _, tc := range []struct{ cluster, kind, name, want string }{
		{"nocat", v1.ImageCatalogKind, "absent", `ImageCatalog "absent" does not exist`},
		{"no15", v1.ClusterImageCatalogKind, "no15-" + ns, "has no image for major 15"},
	} {
		if tc.cluster == "no15" {
			c16 := &v1.ClusterImageCatalog{ObjectMeta: metav1.ObjectMeta{Name: tc.name}, Spec: v1.ImageCatalogSpec{Images: []v1.CatalogImage{
				{Image: "ghcr.io/cloudnative-pg/postgresql:16", Major: 16}}}}
			if err := admin.Create(ctx, c16); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = admin.Delete(context.Background(), c16) })
		}
		c := sampleCluster(t, ns)
		c.Name = tc.cluster
		c.Spec.Instances = 1
		c.Spec.ImageCatalogRef = &v1.ImageCatalogRef{Kind: tc.kind, Name: tc.name, Major: 15}
		createCluster(t, c)
		_, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(c)})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: reconcile error %v, want %q", tc.cluster, err, tc.want)
		}
		var got v1.Cluster
		if err := admin.Get(ctx, client.ObjectKeyFromObject(c), &got); err != nil {
			t.Fatal(err)
		}
		if cond := findCondition(got.Status.Conditions, kube.ConditionReady); cond == nil || !strings.Contains(cond.Message, tc.want) {
			t.Errorf("%s: condition %+v, want %q", tc.cluster, cond, tc.want)
		}
		if err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: tc.cluster + "-1"}, &corev1.Pod{}); !apierrors.IsNotFound(err) {
			t.Errorf("%s: a pod exists without its image: %v", tc.cluster, err)
		}
	}
}

// TestCatalogChangeRollsThePods: changing the catalog entry a running
// three-instance cluster uses recreates its pods on the new image one at a
// time, replicas first, then the primary after a switchover, without
// losing a write; the planner drives it as any rolling update.
func TestCatalogChangeRollsThePods(t *testing.T) {
	ns := newNamespace(t, true)
	ctx := ctxFor(t)
	cat := &v1.ImageCatalog{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "images"}, Spec: v1.ImageCatalogSpec{Images: []v1.CatalogImage{
		{Image: userImage15, Major: 15}}}}
	if err := admin.Create(ctx, cat); err != nil {
		t.Fatal(err)
	}
	c := sampleCluster(t, ns)
	c.Name = "roll"
	c.Spec.ImageCatalogRef = &v1.ImageCatalogRef{Kind: v1.ImageCatalogKind, Name: "images", Major: 15}
	h := newSimHarness(t, c, nil)
	sim, get := h.sim, h.get
	images := func() map[string]string {
		out := map[string]string{}
		for i := 1; i <= 3; i++ {
			name := fmt.Sprintf("roll-%d", i)
			var pod corev1.Pod
			if err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &pod); err == nil {
				out[name] = pod.Spec.Containers[0].Image
			}
		}
		return out
	}
	type change struct{ pod, primary string }
	var recreated []change
	last := images()
	until := func(what string, ok func(v1.Cluster) bool) {
		t.Helper()
		for i := 0; ; i++ {
			h.round()
			// A pod deleted in one round is created again in the next:
			// compare with the last image each pod was seen with.
			for name, img := range images() {
				if last[name] != "" && last[name] != img {
					recreated = append(recreated, change{name, get().Status.CurrentPrimary})
				}
				last[name] = img
			}
			if ok(get()) {
				return
			}
			if i > 60 {
				t.Fatalf("%s: not after %d rounds: %+v; images %v", what, i, get().Status, images())
			}
		}
	}
	until("healthy", func(c v1.Cluster) bool { return c.Status.CurrentPrimary == "roll-1" && c.Status.ReadyInstances == 3 })
	for name, img := range images() {
		if img != userImage15 {
			t.Fatalf("%s runs %s before the change", name, img)
		}
	}

	// The catalog's entry changes: nothing in the Cluster does.
	var stored v1.ImageCatalog
	if err := admin.Get(ctx, client.ObjectKeyFromObject(cat), &stored); err != nil {
		t.Fatal(err)
	}
	stored.Spec.Images[0].Image = userImage158
	if err := admin.Update(ctx, &stored); err != nil {
		t.Fatal(err)
	}
	until("rolled", func(c v1.Cluster) bool {
		for _, img := range images() {
			if img != userImage158 {
				return false
			}
		}
		return len(images()) == 3 && c.Status.ReadyInstances == 3 && c.Status.Phase == kube.PhaseHealthy
	})
	t.Logf("pods recreated (with the primary at the time): %+v; primary now %s", recreated, get().Status.CurrentPrimary)
	if len(recreated) != 3 {
		t.Fatalf("recreated %+v, want each pod once", recreated)
	}
	// Replicas first, each while roll-1 was primary; the old primary
	// last, once it no longer was.
	for _, ch := range recreated[:2] {
		if ch.pod == "roll-1" || ch.primary != "roll-1" {
			t.Errorf("recreated %s while %s was primary, want the replicas first", ch.pod, ch.primary)
		}
	}
	if ch := recreated[2]; ch.pod != "roll-1" || ch.primary == "roll-1" {
		t.Errorf("last recreated %s while %s was primary, want roll-1 after a switchover", ch.pod, ch.primary)
	}
	if lost := sim.Lost(get().Status.CurrentPrimary); len(lost) > 0 {
		t.Errorf("writes lost in the rolling update: %v", lost)
	}
	assertRW(t, ns, "roll", get().Status.CurrentPrimary)
	if cond := findCondition(get().Status.Conditions, kube.ConditionOperandImage); cond == nil || cond.Status != metav1.ConditionTrue {
		t.Errorf("OperandImage condition %+v", cond)
	}

	// The catalog goes away: the cluster keeps running (and failing over)
	// on the pods' image, and says why nothing will roll.
	if err := admin.Delete(ctx, &stored); err != nil {
		t.Fatal(err)
	}
	primaryBefore := get().Status.CurrentPrimary
	sim.Node(primaryBefore).Isolated = true
	until("failed over without a catalog", func(c v1.Cluster) bool {
		return c.Status.CurrentPrimary != primaryBefore && c.Status.CurrentPrimary != ""
	})
	for name, img := range images() {
		if img != userImage158 {
			t.Errorf("%s runs %s after the catalog was deleted", name, img)
		}
	}
	cond := findCondition(get().Status.Conditions, kube.ConditionOperandImage)
	if cond == nil || cond.Status != metav1.ConditionFalse || !strings.Contains(cond.Message, `ImageCatalog "images" does not exist`) {
		t.Errorf("OperandImage condition without the catalog: %+v", cond)
	}
}

// TestManagedServices: spec.managed.services disables the -ro and -r
// Services, adds one with the template's type, labels and annotations,
// selecting by role with PostgreSQL's port; changes are patched in place
// or, with updateStrategy replace, made by a new Service; removed ones go.
func TestManagedServices(t *testing.T) {
	ns := newNamespace(t, false)
	ctx := ctxFor(t)
	c := sampleCluster(t, ns)
	c.Name = "svc"
	c.Spec.Managed = &v1.ManagedConfiguration{Services: &v1.ManagedServices{
		DisabledDefaultServices: []string{"ro", "r"},
		Additional: []v1.ManagedService{{SelectorType: "rw", ServiceTemplate: v1.ServiceTemplateSpec{
			ObjectMeta: v1.ServiceMetadata{Name: "test-rw", Labels: map[string]string{"test-label": "true"}, Annotations: map[string]string{"test-annotation": "true"}},
			Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer},
		}}, {SelectorType: "ro", UpdateStrategy: "replace", ServiceTemplate: v1.ServiceTemplateSpec{
			ObjectMeta: v1.ServiceMetadata{Name: "reports"},
			Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Ports: []corev1.ServicePort{{Port: 6432}}},
		}}},
	}}
	createCluster(t, c)
	r := newReconciler(&kube.MTLSInstances{Timeout: time.Second}, nil)
	reconcileOnce(t, r, c)
	svc := func(name string) (*corev1.Service, bool) {
		var s corev1.Service
		err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &s)
		if err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		return &s, err == nil
	}
	for name, want := range map[string]bool{"svc-rw": true, "svc-ro": false, "svc-r": false, "test-rw": true, "reports": true} {
		if _, ok := svc(name); ok != want {
			t.Errorf("service %s exists: %v, want %v", name, ok, want)
		}
	}
	s, _ := svc("test-rw")
	if s.Spec.Type != corev1.ServiceTypeLoadBalancer || s.Labels["test-label"] != "true" || s.Annotations["test-annotation"] != "true" ||
		s.Spec.Selector[build.RoleLabel] != build.RolePrimary || s.Spec.Selector[build.ClusterLabel] != "svc" ||
		len(s.Spec.Ports) != 1 || s.Spec.Ports[0].Port != 5432 || s.Spec.Ports[0].TargetPort != intstr.FromString("postgresql") {
		t.Errorf("test-rw: labels %v annotations %v spec %+v", s.Labels, s.Annotations, s.Spec)
	}
	assertRWSelects(t, ns, "test-rw", "svc-1")
	rep, _ := svc("reports")
	if rep.Spec.Type != corev1.ServiceTypeNodePort || rep.Spec.Ports[0].Port != 6432 || rep.Spec.Ports[0].NodePort == 0 ||
		rep.Spec.Selector[build.RoleLabel] != build.RoleReplica {
		t.Errorf("reports: %+v", rep.Spec)
	}
	repUID := rep.UID
	// Clients verify-full through the additional Services too.
	var server corev1.Secret
	if err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: "svc-server"}, &server); err != nil {
		t.Fatal(err)
	}
	if names := parseCert(t, server.Data["tls.crt"]).DNSNames; !slices.Contains(names, "test-rw."+ns+".svc") || !slices.Contains(names, "reports") {
		t.Errorf("server certificate names %v, want the additional Services'", names)
	}

	update := func(mutate func(*v1.ManagedServices)) {
		var stored v1.Cluster
		if err := admin.Get(ctx, client.ObjectKeyFromObject(c), &stored); err != nil {
			t.Fatal(err)
		}
		mutate(stored.Spec.Managed.Services)
		if err := admin.Update(ctx, &stored); err != nil {
			t.Fatal(err)
		}
		reconcileOnce(t, r, &stored)
	}
	// Patched in place (same object) / replaced (a new one).
	update(func(m *v1.ManagedServices) {
		m.Additional[0].ServiceTemplate.Spec.Type = corev1.ServiceTypeClusterIP
		m.Additional[0].ServiceTemplate.ObjectMeta.Annotations["second"] = "yes"
		m.Additional[1].ServiceTemplate.Spec.Ports[0].Port = 6433
	})
	s2, _ := svc("test-rw")
	if s2.UID != s.UID || s2.Spec.Type != corev1.ServiceTypeClusterIP || s2.Annotations["second"] != "yes" {
		t.Errorf("test-rw after patch: uid changed %v, type %s, annotations %v", s2.UID != s.UID, s2.Spec.Type, s2.Annotations)
	}
	rep2, ok := svc("reports")
	if !ok || rep2.UID == repUID || rep2.Spec.Ports[0].Port != 6433 {
		t.Errorf("reports after replace: exists %v, same object %v, port %d", ok, rep2.UID == repUID, rep2.Spec.Ports[0].Port)
	}
	// Enabling the defaults again, removing an additional one.
	update(func(m *v1.ManagedServices) {
		m.DisabledDefaultServices = nil
		m.Additional = m.Additional[:1]
	})
	for name, want := range map[string]bool{"svc-rw": true, "svc-ro": true, "svc-r": true, "test-rw": true, "reports": false} {
		if _, ok := svc(name); ok != want {
			t.Errorf("after the second change, service %s exists: %v, want %v", name, ok, want)
		}
	}
}

// assertRWSelects checks that Service name selects exactly the pod primary.
func assertRWSelects(t *testing.T, ns, name, primary string) {
	t.Helper()
	ctx := ctxFor(t)
	var s corev1.Service
	if err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &s); err != nil {
		t.Fatal(err)
	}
	var pods corev1.PodList
	if err := admin.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels(s.Spec.Selector)); err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 1 || pods.Items[0].Name != primary {
		var names []string
		for _, p := range pods.Items {
			names = append(names, p.Name)
		}
		t.Errorf("%s selects %v, want [%s]", name, names, primary)
	}
}

// TestImageCatalogWebhooks: the catalogs' webhooks refuse what the
// Cluster's would then be unable to use safely.
func TestImageCatalogWebhooks(t *testing.T) {
	ctx := ctxFor(t)
	for _, tc := range []struct {
		name   string
		images []v1.CatalogImage
		want   string
	}{
		{"tag says 16", []v1.CatalogImage{{Image: "postgres:16", Major: 15}}, "the tag says PostgreSQL 16"},
		{"two 15s", []v1.CatalogImage{{Image: "postgres:15", Major: 15}, {Image: "postgres:15.1", Major: 15}}, "spec.images[1].major"},
		{"not a reference", []v1.CatalogImage{{Image: "postgres:15 --privileged", Major: 15}}, "not an image reference"},
	} {
		ic := &v1.ImageCatalog{ObjectMeta: metav1.ObjectMeta{Name: "c"}, Spec: v1.ImageCatalogSpec{Images: tc.images}}
		if _, err := (kube.ImageCatalogWebhook{}).ValidateCreate(ctx, ic); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ImageCatalog %s: %v, want %q", tc.name, err, tc.want)
		}
		cic := &v1.ClusterImageCatalog{ObjectMeta: metav1.ObjectMeta{Name: "c"}, Spec: v1.ImageCatalogSpec{Images: tc.images}}
		if _, err := (kube.ClusterImageCatalogWebhook{}).ValidateUpdate(ctx, cic, cic); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ClusterImageCatalog %s: %v, want %q", tc.name, err, tc.want)
		}
	}
	ok := &v1.ImageCatalog{ObjectMeta: metav1.ObjectMeta{Name: "c"}, Spec: v1.ImageCatalogSpec{Images: []v1.CatalogImage{
		{Image: "ghcr.io/cloudnative-pg/postgresql:18.6-system-trixie", Major: 18}, {Image: userImage15, Major: 15}}}}
	if _, err := (kube.ImageCatalogWebhook{}).ValidateCreate(ctx, ok); err != nil {
		t.Errorf("a catalog of majors 18 and 15 refused: %v", err)
	}
}

// TestCatalogThroughTheOperator: with the operator running (webhooks and
// the catalog watch), a catalog that breaks the rules is refused by the
// API server, a Cluster naming a catalog that does not exist yet says so,
// and gets its pods with the catalog's image once the catalog is created.
func TestCatalogThroughTheOperator(t *testing.T) {
	startOperator(t)
	ns := newNamespace(t, true)
	ctx := ctxFor(t)
	bad := &v1.ImageCatalog{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bad"}, Spec: v1.ImageCatalogSpec{Images: []v1.CatalogImage{
		{Image: "ghcr.io/cloudnative-pg/postgresql:16", Major: 15}}}}
	if err := admin.Create(ctx, bad); err == nil || !strings.Contains(err.Error(), "the tag says PostgreSQL 16") {
		t.Errorf("a catalog whose tag contradicts its major: %v", err)
	}
	badc := &v1.ClusterImageCatalog{ObjectMeta: metav1.ObjectMeta{Name: "bad-" + ns}, Spec: v1.ImageCatalogSpec{Images: []v1.CatalogImage{
		{Image: "postgres:15", Major: 15}, {Image: "postgres:15.2", Major: 15}}}}
	if err := admin.Create(ctx, badc); err == nil || !strings.Contains(err.Error(), "spec.images[1].major") {
		t.Errorf("a cluster catalog listing 15 twice: %v", err)
	}

	c := sampleCluster(t, ns)
	c.Name = "later"
	c.Spec.Instances = 1
	c.Spec.ImageCatalogRef = &v1.ImageCatalogRef{Kind: v1.ImageCatalogKind, Name: "images", Major: 15}
	if err := admin.Create(ctx, c); err != nil {
		t.Fatal(err)
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 30 s", what)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitFor("the missing catalog reported", func() bool {
		var got v1.Cluster
		if err := admin.Get(ctx, client.ObjectKeyFromObject(c), &got); err != nil {
			t.Fatal(err)
		}
		cond := findCondition(got.Status.Conditions, kube.ConditionReady)
		return cond != nil && strings.Contains(cond.Message, `ImageCatalog "images" does not exist`)
	})
	cat := &v1.ImageCatalog{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "images"}, Spec: v1.ImageCatalogSpec{Images: []v1.CatalogImage{
		{Image: userImage158, Major: 15}}}}
	if err := admin.Create(ctx, cat); err != nil {
		t.Fatal(err)
	}
	waitFor("the pod created with the catalog's image", func() bool {
		var pod corev1.Pod
		err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: "later-1"}, &pod)
		return err == nil && pod.Spec.Containers[0].Image == userImage158
	})
	checkUserImagePod(t, getPod(t, ns, "later-1"), userImage158)
}
