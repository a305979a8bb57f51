package kube

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube/build"
)

func TestStorageFor(t *testing.T) {
	c := &v1.Cluster{Spec: v1.ClusterSpec{
		StorageConfiguration: v1.StorageConfiguration{Size: "1Gi"},
		WalStorage:           &v1.StorageConfiguration{Size: "2Gi"},
		Tablespaces:          []v1.TablespaceConfiguration{{Name: "a", Storage: v1.StorageConfiguration{Size: "3Gi"}}},
	}}
	for _, tc := range []struct {
		labels map[string]string
		want   string
	}{
		{map[string]string{build.InstanceLabel: "pg-1"}, "1Gi"},
		{map[string]string{build.PVCRoleLabel: build.PVCRoleWAL}, "2Gi"},
		{map[string]string{build.TablespaceLabel: "a"}, "3Gi"},
		{map[string]string{build.TablespaceLabel: "gone"}, "1Gi"},
		{map[string]string{build.InstanceLabel: "pg-1", build.PVCRoleLabel: "other"}, "1Gi"},
	} {
		pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Labels: tc.labels}}
		if got := storageFor(c, pvc).Size; got != tc.want {
			t.Errorf("labels %v: storage of size %s, want %s", tc.labels, got, tc.want)
		}
	}
}

func TestVolumeSizeCondition(t *testing.T) {
	q := resource.MustParse
	at := func(name string) claimSize {
		return claimSize{name: name, want: q("2Gi"), request: q("2Gi"), capacity: q("2Gi"), bound: true, resizeInUse: true}
	}
	unbound := claimSize{name: "pg-3", want: q("2Gi"), request: q("2Gi"), resizeInUse: true}
	growing := at("pg-2-wal")
	growing.capacity = q("1Gi")
	growing.pending = []string{"Resizing"}
	refused := at("pg-1")
	refused.request, refused.capacity, refused.refused = q("1Gi"), q("1Gi"), "only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize"
	kept := at("pg-2")
	kept.request, kept.capacity, kept.resizeInUse = q("1Gi"), q("1Gi"), false
	keptUnbound := kept
	keptUnbound.bound = false
	for _, tc := range []struct {
		name   string
		claims []claimSize
		ok     bool
		status metav1.ConditionStatus
		reason string
		msg    []string
	}{
		{"nothing", nil, false, "", "", nil},
		{"nothing bound yet", []claimSize{unbound}, false, "", "", nil},
		{"at size", []claimSize{at("pg-1"), at("pg-1-wal"), unbound}, true, metav1.ConditionTrue, "AtSize", nil},
		{"resizing", []claimSize{at("pg-1"), growing}, true, metav1.ConditionFalse, "Resizing", []string{"PVC pg-2-wal: 1Gi of 2Gi (Resizing)"}},
		{"kept by resizeInUseVolumes false, bound or not", []claimSize{kept, growing}, true, metav1.ConditionFalse, "ResizeInUseVolumesDisabled",
			[]string{"PVC pg-2 keeps 1Gi (spec 2Gi)", "resizeInUseVolumes is false", "deleting its PVC and pod"}},
		{"kept, not bound", []claimSize{keptUnbound}, true, metav1.ConditionFalse, "ResizeInUseVolumesDisabled", nil},
		{"refused first", []claimSize{kept, refused, growing}, true, metav1.ConditionFalse, "ResizeRefused",
			[]string{"PVC pg-1 stays 1Gi (spec 2Gi): the API server refused to grow it: only dynamically provisioned pvc"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cond, ok := volumeSizeCondition(tc.claims, 7)
			if ok != tc.ok {
				t.Fatalf("ok %v, want %v (%+v)", ok, tc.ok, cond)
			}
			if !ok {
				return
			}
			if cond.Type != ConditionVolumeSize || cond.Status != tc.status || cond.Reason != tc.reason || cond.ObservedGeneration != 7 {
				t.Errorf("condition %+v, want %s %s", cond, tc.status, tc.reason)
			}
			for _, m := range tc.msg {
				if !strings.Contains(cond.Message, m) {
					t.Errorf("message %q lacks %q", cond.Message, m)
				}
			}
		})
	}
}

// TestObserveClaim: a claim's sizes and its resize conditions and
// allocation states, sorted.
func TestObserveClaim(t *testing.T) {
	q := resource.MustParse
	want := &corev1.PersistentVolumeClaim{Spec: corev1.PersistentVolumeClaimSpec{Resources: corev1.VolumeResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceStorage: q("2Gi")}}}}
	cur := want.DeepCopy()
	cur.Name = "pg-1"
	cur.Status = corev1.PersistentVolumeClaimStatus{
		Phase:    corev1.ClaimBound,
		Capacity: corev1.ResourceList{corev1.ResourceStorage: q("1Gi")},
		Conditions: []corev1.PersistentVolumeClaimCondition{
			{Type: corev1.PersistentVolumeClaimResizing, Status: corev1.ConditionTrue, Message: "under way"},
			{Type: corev1.PersistentVolumeClaimFileSystemResizePending, Status: corev1.ConditionFalse},
		},
		AllocatedResourceStatuses: map[corev1.ResourceName]corev1.ClaimResourceStatus{
			corev1.ResourceStorage: corev1.PersistentVolumeClaimControllerResizeInProgress},
	}
	s := observeClaim(cur, want, true, "")
	if s.name != "pg-1" || s.want.String() != "2Gi" || s.request.String() != "2Gi" || s.capacity.String() != "1Gi" || !s.bound {
		t.Errorf("claim %+v", s)
	}
	if got := strings.Join(s.pending, ","); got != "Resizing (under way),storage ControllerResizeInProgress" {
		t.Errorf("pending %q", got)
	}
}
