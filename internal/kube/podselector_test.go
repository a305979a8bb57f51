package kube_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube"
	"github.com/pgward/pgward/internal/kube/build"
)

// TestPodSelectorsResolvedIntoPgHBA: pg_hba's ${podselector:NAME} reaches
// the instances as one rule per address of the running pods the selector
// matches in the namespace (/32, /128), read with the operator's own
// RBAC; finished, terminating-free hostNetwork pods and other labels do
// not count, and the rules follow the pods as they change. The stored
// spec keeps the user's words.
func TestPodSelectorsResolvedIntoPgHBA(t *testing.T) {
	ns := newNamespace(t, false)
	ctx := ctxFor(t)
	c := sampleCluster(t, ns)
	c.Name = "psel"
	c.Spec.PodSelectorRefs = []v1.PodSelectorRef{{Name: "web", Selector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}}
	c.Spec.PostgresConfiguration.PgHBA = []string{"hostssl app app ${podselector:web} scram-sha-256", "host all all 10.244.0.0/16 scram-sha-256"}
	createCluster(t, c)

	pod := func(name, app string, phase corev1.PodPhase, hostNet bool, ips ...string) *corev1.Pod {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": app}},
			Spec:       corev1.PodSpec{HostNetwork: hostNet, Containers: []corev1.Container{{Name: "c", Image: "example.invalid/web"}}},
		}
		if err := admin.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		p.Status.Phase = phase
		for _, ip := range ips {
			p.Status.PodIPs = append(p.Status.PodIPs, corev1.PodIP{IP: ip})
		}
		if len(ips) > 0 {
			p.Status.PodIP = ips[0]
		}
		if err := admin.Status().Update(ctx, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pod("web-a", "web", corev1.PodRunning, false, "10.1.0.7", "fd00::7")
	pod("web-b", "web", corev1.PodRunning, false, "10.1.0.3")
	pod("web-done", "web", corev1.PodSucceeded, false, "10.1.0.9")
	pod("web-host", "web", corev1.PodRunning, true, "192.168.1.10")
	pod("other", "api", corev1.PodRunning, false, "10.1.0.5")

	r := newReconciler(&kube.MTLSInstances{Timeout: time.Second}, nil)
	hba := func() []string {
		t.Helper()
		reconcileOnce(t, r, c)
		var s corev1.Secret
		if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: build.InstanceConfigSecretName("psel-1")}, &s); err != nil {
			t.Fatal(err)
		}
		var m v1.Cluster
		if err := json.Unmarshal(s.Data["cluster.json"], &m); err != nil {
			t.Fatal(err)
		}
		if len(m.Spec.PodSelectorRefs) != 0 {
			t.Errorf("the instances got the selectors: %+v", m.Spec.PodSelectorRefs)
		}
		return m.Spec.PostgresConfiguration.PgHBA
	}
	want := []string{
		"hostssl app app 10.1.0.3/32 scram-sha-256", "hostssl app app 10.1.0.7/32 scram-sha-256", "hostssl app app fd00::7/128 scram-sha-256",
		"host all all 10.244.0.0/16 scram-sha-256",
	}
	if got := hba(); !slices.Equal(got, want) {
		t.Fatalf("pg_hba handed to the instances:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var stored v1.Cluster
	if err := admin.Get(ctx, client.ObjectKeyFromObject(c), &stored); err != nil {
		t.Fatal(err)
	}
	if stored.Spec.PostgresConfiguration.PgHBA[0] != "hostssl app app ${podselector:web} scram-sha-256" {
		t.Errorf("stored pg_hba changed: %v", stored.Spec.PostgresConfiguration.PgHBA)
	}

	// A pod goes and its address leaves pg_hba; with none left, the rule
	// goes too (it would let nobody in).
	if err := admin.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web-a"}}, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	if got := hba(); !slices.Equal(got, []string{"hostssl app app 10.1.0.3/32 scram-sha-256", "host all all 10.244.0.0/16 scram-sha-256"}) {
		t.Errorf("after web-a went: %v", got)
	}
	if err := admin.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web-b"}}, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	if got := hba(); !slices.Equal(got, []string{"host all all 10.244.0.0/16 scram-sha-256"}) {
		t.Errorf("with no pod selected: %v", got)
	}
}
