package kube

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/instanceapi"
	"github.com/pgward/pgward/internal/plan"
)

// TestReloadTargets: a reload request goes once to each instance whose
// PostgreSQL runs; one that reported it (done or under way) is not asked
// again, one that is down or did not answer is not asked.
func TestReloadTargets(t *testing.T) {
	obs := func(name string, st *instanceapi.Status) observation {
		return observation{plan: plan.InstanceStatus{Name: name}, wire: st}
	}
	running := func(r *instanceapi.ReloadResult) *instanceapi.Status {
		return &instanceapi.Status{PostmasterRunning: true, Reload: r}
	}
	got := reloadTargets("r2", []observation{
		obs("new", running(nil)),
		obs("older-request", running(&instanceapi.ReloadResult{ID: "r1", Done: true})),
		obs("done", running(&instanceapi.ReloadResult{ID: "r2", Done: true})),
		obs("under-way", running(&instanceapi.ReloadResult{ID: "r2"})),
		obs("down", &instanceapi.Status{}),
		obs("no-answer", nil),
	})
	if want := []string{"new", "older-request"}; !slices.Equal(got, want) {
		t.Fatalf("targets %v, want %v", got, want)
	}
}

// TestBugReportScrubbing: the pure parts of the report. Secret-named env
// values and annotations are blanked, references to Secrets stay; the
// listing names the Cluster's Secrets (those it controls, those its spec
// names) with their keys and never a value; events are those about the
// report's objects.
func TestBugReportScrubbing(t *testing.T) {
	spec := corev1.PodSpec{Containers: []corev1.Container{{Env: []corev1.EnvVar{
		{Name: "DB_PASSWORD", Value: "hunter2hunter2"},
		{Name: "API_TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{Key: "t"}}},
		{Name: "HOME", Value: "/tmp"},
	}}}}
	scrubPodSpec(&spec)
	env := spec.Containers[0].Env
	if env[0].Value != "<redacted>" || env[1].ValueFrom == nil || env[2].Value != "/tmp" {
		t.Errorf("env after scrubbing: %+v", env)
	}
	meta := metav1.ObjectMeta{Annotations: map[string]string{"example.com/api-key": "k", "pgward.io/reloadedAt": "t"}, ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "x"}}}
	scrubMeta(&meta)
	if meta.Annotations["example.com/api-key"] != "<redacted>" || meta.Annotations["pgward.io/reloadedAt"] != "t" || meta.ManagedFields != nil {
		t.Errorf("meta after scrubbing: %+v", meta)
	}

	c := &v1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "pg", UID: "u1"}}
	c.Spec.Bootstrap = &v1.BootstrapConfiguration{InitDB: &v1.BootstrapInitDB{Secret: &v1.LocalObjectReference{Name: "user-creds"}}}
	yes := true
	owned := metav1.ObjectMeta{Name: "pg-app", OwnerReferences: []metav1.OwnerReference{{UID: "u1", Controller: &yes, Kind: "Cluster", APIVersion: v1.Group + "/v1", Name: "pg"}}}
	listing := string(secretListing(c, []corev1.Secret{
		{ObjectMeta: owned, Type: corev1.SecretTypeBasicAuth, Data: map[string][]byte{"password": []byte("s3cr3t-value"), "username": []byte("app")}},
		{ObjectMeta: metav1.ObjectMeta{Name: "user-creds"}, StringData: map[string]string{"password": "other-s3cr3t"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "unrelated"}, Data: map[string][]byte{"k": []byte("v")}},
	}))
	for _, want := range []string{"pg-app\tkubernetes.io/basic-auth\tpassword,username", "user-creds\t\tpassword"} {
		if !strings.Contains(listing, want) {
			t.Errorf("listing lacks %q:\n%s", want, listing)
		}
	}
	if strings.Contains(listing, "s3cr3t") || strings.Contains(listing, "unrelated") {
		t.Errorf("listing:\n%s", listing)
	}

	evs := eventsAbout([]corev1.Event{
		{InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "pg-1"}, Reason: "a"},
		{InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "other-1"}, Reason: "b"},
		{InvolvedObject: corev1.ObjectReference{Kind: "Service", Name: "pg-1"}, Reason: "c"},
	}, map[string]bool{"Pod/pg-1": true})
	if len(evs) != 1 || evs[0].Reason != "a" {
		t.Errorf("events %+v", evs)
	}
}
