package kube

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube/build"
)

// ConditionVolumeSize says whether every bound PVC of the cluster has the
// size its spec asks for, and if not why: a grow the API server refused
// (the StorageClass does not allow expansion, a quota), claims kept at
// their size because resizeInUseVolumes is false, or a resize the storage
// has not finished. Without it a size that never grows would be silent:
// the PVC's own conditions and events are the only other trace.
const ConditionVolumeSize = "VolumeSize"

// claimSize is what a reconcile saw of one PVC's size.
type claimSize struct {
	name string
	// want is the spec's size; request the claim's; capacity its status's.
	want, request, capacity resource.Quantity
	bound                   bool
	// resizeInUse is the resizeInUseVolumes of the claim's storage.
	resizeInUse bool
	// refused is the API server's reason for refusing to grow the claim.
	refused string
	// pending are the claim's resize conditions and allocation states
	// (Resizing, FileSystemResizePending, ControllerResizeInfeasible, ...).
	pending []string
}

// storageFor is the storage section a claim of the cluster comes from:
// the WAL's, a tablespace's, or the data volume's.
func storageFor(c *v1.Cluster, pvc *corev1.PersistentVolumeClaim) v1.StorageConfiguration {
	if pvc.Labels[build.PVCRoleLabel] == build.PVCRoleWAL && c.Spec.WalStorage != nil {
		return *c.Spec.WalStorage
	}
	if name := pvc.Labels[build.TablespaceLabel]; name != "" {
		for _, t := range c.Spec.Tablespaces {
			if t.Name == name {
				return t.Storage
			}
		}
	}
	return c.Spec.StorageConfiguration
}

// keepPVCSize leaves an existing claim's size as it is (resizeInUseVolumes
// false, or a grow the API server refused); labels are still merged.
func keepPVCSize(_, _ *corev1.PersistentVolumeClaim) {}

// ensureClaim creates a claim, or grows an existing one when its storage
// allows resizing in use. A grow the API server refuses (Forbidden or
// Invalid: the class does not allow expansion, a quota) does not stop the
// reconcile — the pods after it still matter — it is reported in
// ConditionVolumeSize; any other error is returned.
func (r *ClusterReconciler) ensureClaim(ctx context.Context, c *v1.Cluster, want *corev1.PersistentVolumeClaim) (claimSize, error) {
	inUse := storageFor(c, want).ResizeInUse()
	mutate := growPVC
	if !inUse {
		mutate = keepPVCSize
	}
	cur, err := ensure(ctx, r.Client, c, want.DeepCopy(), mutate)
	refused := ""
	if err != nil && inUse && (apierrors.IsForbidden(err) || apierrors.IsInvalid(err)) {
		refused = apiReason(err)
		// The claim exists (a create does not fail this way and then pass
		// with the same object): keep its size, merge the labels.
		if cur, err = ensure(ctx, r.Client, c, want.DeepCopy(), keepPVCSize); err != nil {
			return claimSize{}, err
		}
	}
	if err != nil {
		return claimSize{}, err
	}
	return observeClaim(cur, want, inUse, refused), nil
}

// apiReason is the API server's own message of a refusal.
func apiReason(err error) string {
	var se apierrors.APIStatus
	if errors.As(err, &se) && se.Status().Message != "" {
		return se.Status().Message
	}
	return err.Error()
}

// observeClaim reads a claim's sizes and resize state.
func observeClaim(cur, want *corev1.PersistentVolumeClaim, inUse bool, refused string) claimSize {
	s := claimSize{
		name:        cur.Name,
		want:        want.Spec.Resources.Requests[corev1.ResourceStorage],
		request:     cur.Spec.Resources.Requests[corev1.ResourceStorage],
		capacity:    cur.Status.Capacity[corev1.ResourceStorage],
		bound:       cur.Status.Phase == corev1.ClaimBound,
		resizeInUse: inUse,
		refused:     refused,
	}
	for _, cond := range cur.Status.Conditions {
		if cond.Status != corev1.ConditionTrue {
			continue
		}
		p := string(cond.Type)
		if cond.Message != "" {
			p += " (" + cond.Message + ")"
		}
		s.pending = append(s.pending, p)
	}
	for res, st := range cur.Status.AllocatedResourceStatuses {
		s.pending = append(s.pending, fmt.Sprintf("%s %s", res, st))
	}
	slices.Sort(s.pending)
	return s
}

// volumeSizeCondition sums up the claims' sizes. ok is false when nothing
// is known: no claim is bound yet and none was refused or kept small.
// Refusals first (they need the user), then claims kept small on purpose,
// then resizes under way.
func volumeSizeCondition(claims []claimSize, generation int64) (metav1.Condition, bool) {
	var refused, kept, resizing []string
	known := false
	for _, s := range claims {
		switch {
		case s.refused != "":
			refused = append(refused, fmt.Sprintf("PVC %s stays %s (spec %s): the API server refused to grow it: %s",
				s.name, s.request.String(), s.want.String(), s.refused))
		case s.request.Cmp(s.want) < 0 && !s.resizeInUse:
			kept = append(kept, fmt.Sprintf("PVC %s keeps %s (spec %s)", s.name, s.request.String(), s.want.String()))
		case !s.bound:
			continue // provisioning: its capacity is not known yet
		case s.capacity.Cmp(s.request) < 0:
			msg := fmt.Sprintf("PVC %s: %s of %s", s.name, s.capacity.String(), s.request.String())
			if len(s.pending) > 0 {
				msg += " (" + strings.Join(s.pending, ", ") + ")"
			}
			resizing = append(resizing, msg)
		}
		known = true
	}
	if !known {
		return metav1.Condition{}, false
	}
	cond := metav1.Condition{Type: ConditionVolumeSize, Status: metav1.ConditionFalse, ObservedGeneration: generation}
	switch {
	case len(refused) > 0:
		cond.Reason, cond.Message = "ResizeRefused", strings.Join(refused, "; ")
	case len(kept) > 0:
		cond.Reason = "ResizeInUseVolumesDisabled"
		cond.Message = strings.Join(kept, "; ") + ": resizeInUseVolumes is false, so claims in use keep their size; " +
			"a claim created from now on (a new instance, or one re-created by deleting its PVC and pod) gets the spec's size"
	case len(resizing) > 0:
		cond.Reason, cond.Message = "Resizing", strings.Join(resizing, "; ")
	default:
		cond.Status, cond.Reason = metav1.ConditionTrue, "AtSize"
		cond.Message = "every bound PVC has the size its spec asks for"
	}
	if len(cond.Message) > 4096 {
		cond.Message = cond.Message[:4096]
	}
	return cond, true
}

// setVolumeSizes records the claims a reconcile saw, for updateStatus.
func (r *ClusterReconciler) setVolumeSizes(c *v1.Cluster, claims []claimSize) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.volumeSizes == nil {
		r.volumeSizes = map[string][]claimSize{}
	}
	r.volumeSizes[client.ObjectKeyFromObject(c).String()] = claims
}

// setVolumeSizeCondition sets or removes ConditionVolumeSize on conds.
func (r *ClusterReconciler) setVolumeSizeCondition(c *v1.Cluster, conds *[]metav1.Condition) {
	r.mu.Lock()
	claims := r.volumeSizes[client.ObjectKeyFromObject(c).String()]
	r.mu.Unlock()
	if cond, ok := volumeSizeCondition(claims, c.Generation); ok {
		meta.SetStatusCondition(conds, cond)
		return
	}
	meta.RemoveStatusCondition(conds, ConditionVolumeSize)
}
