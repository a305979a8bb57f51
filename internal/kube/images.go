package kube

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube/build"
)

// The catalogs a Cluster's spec.imageCatalogRef names: read, and watched so
// that a changed entry rolls the Clusters that use it.
//
// +kubebuilder:rbac:groups=postgresql.pgward.io,resources=imagecatalogs;clusterimagecatalogs,verbs=get;list;watch

// podOptions are the operator's options with c's operand image resolved:
// spec.imageName, the catalog entry spec.imageCatalogRef selects, or
// nothing (the operator's own image).
func (r *ClusterReconciler) podOptions(ctx context.Context, c *v1.Cluster) (build.Options, error) {
	opts := r.Options
	img, err := r.operandImage(ctx, c)
	if err != nil {
		return opts, err
	}
	opts.ClusterImage = img
	return opts, nil
}

func (r *ClusterReconciler) operandImage(ctx context.Context, c *v1.Cluster) (string, error) {
	if c.Spec.ImageName != "" {
		return c.Spec.ImageName, nil
	}
	ref := c.Spec.ImageCatalogRef
	if ref == nil {
		return "", nil
	}
	var spec v1.ImageCatalogSpec
	switch ref.Kind {
	case v1.ImageCatalogKind:
		var cat v1.ImageCatalog
		if err := r.Client.Get(ctx, types.NamespacedName{Namespace: c.Namespace, Name: ref.Name}, &cat); err != nil {
			return "", catalogError(ref, c.Namespace, err)
		}
		spec = cat.Spec
	case v1.ClusterImageCatalogKind:
		var cat v1.ClusterImageCatalog
		if err := r.Client.Get(ctx, types.NamespacedName{Name: ref.Name}, &cat); err != nil {
			return "", catalogError(ref, "", err)
		}
		spec = cat.Spec
	default:
		return "", fmt.Errorf("spec.imageCatalogRef.kind %q: not a catalog kind", ref.Kind)
	}
	img, ok := spec.ImageFor(ref.Major)
	if !ok {
		return "", fmt.Errorf("spec.imageCatalogRef: %s %q has no image for major %d", ref.Kind, ref.Name, ref.Major)
	}
	// The catalog's webhook checks this too; a catalog written around it
	// must not put another major, or an unparsable reference, in a pod.
	if errs := spec.Validate(nil); len(errs) > 0 {
		return "", fmt.Errorf("spec.imageCatalogRef: %s %q is invalid: %s", ref.Kind, ref.Name, errs.ToAggregate().Error())
	}
	return img, nil
}

func catalogError(ref *v1.ImageCatalogRef, ns string, err error) error {
	where := ""
	if ns != "" {
		where = " in namespace " + ns
	}
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("spec.imageCatalogRef: %s %q does not exist%s", ref.Kind, ref.Name, where)
	}
	return fmt.Errorf("spec.imageCatalogRef: reading %s %q%s: %w", ref.Kind, ref.Name, where, err)
}

// podImagesOutdated reports whether a running pod runs other images than
// want: the operand image changed (spec.imageName, a catalog entry), or it
// moved between pgward's image and a user's (the init container).
func podImagesOutdated(cur, want *corev1.Pod) bool {
	images := func(p *corev1.Pod) []string {
		var out []string
		for _, ct := range p.Spec.InitContainers {
			out = append(out, "init:"+ct.Name+"="+ct.Image)
		}
		for _, ct := range p.Spec.Containers {
			out = append(out, ct.Name+"="+ct.Image)
		}
		return out
	}
	a, b := images(cur), images(want)
	if len(a) != len(b) {
		return true
	}
	for i := range a {
		if a[i] != b[i] {
			return true
		}
	}
	return false
}

// setOutdated records which of a cluster's pods run outdated images, for
// the planner's observation (they report a pending restart) and for its
// restart action (the pod is recreated, as a pod's images are immutable).
func (r *ClusterReconciler) setOutdated(c *v1.Cluster, names map[string]bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.outdated == nil {
		r.outdated = map[string]map[string]bool{}
	}
	r.outdated[client.ObjectKeyFromObject(c).String()] = names
}

func (r *ClusterReconciler) isOutdated(c *v1.Cluster, name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.outdated[client.ObjectKeyFromObject(c).String()][name]
}

// recreatePod deletes an instance's pod whose images are outdated; the
// next reconcile creates it from the current spec on the same volume.
// The planner calls for it one instance at a time (its rolling restart),
// replicas first, the primary after a switchover.
func (r *ClusterReconciler) recreatePod(ctx context.Context, pod *corev1.Pod) error {
	uid := pod.UID
	// Marked first: a restart in place (primaryUpdateMethod restart) must
	// not look like a deleted primary to observe (askTerminating).
	if pod.Annotations[recreatingAnnotation] == "" {
		before := pod.DeepCopy()
		if pod.Annotations == nil {
			pod.Annotations = map[string]string{}
		}
		pod.Annotations[recreatingAnnotation] = "new image"
		if err := r.Client.Patch(ctx, pod, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("marking pod %s for its recreation: %w", pod.Name, err)
		}
	}
	if err := r.Client.Delete(ctx, pod, client.Preconditions{UID: &uid}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("recreating pod %s for its new image: %w", pod.Name, err)
	}
	log.FromContext(ctx).Info("rolling update: pod deleted to run the new image", "pod", pod.Name)
	return nil
}

// clustersOfCatalog maps a catalog to the Clusters that name it: a change
// of the catalog re-reconciles them (and rolls their pods to a changed
// image).
func (r *ClusterReconciler) clustersOfCatalog(kind string) func(context.Context, client.Object) []reconcile.Request {
	return func(ctx context.Context, obj client.Object) []reconcile.Request {
		var list v1.ClusterList
		opts := []client.ListOption{}
		if kind == v1.ImageCatalogKind {
			opts = append(opts, client.InNamespace(obj.GetNamespace()))
		}
		if err := r.Client.List(ctx, &list, opts...); err != nil {
			log.FromContext(ctx).Error(err, "listing the Clusters of a catalog", "kind", kind, "name", obj.GetName())
			return nil
		}
		var out []reconcile.Request
		for _, c := range list.Items {
			if ref := c.Spec.ImageCatalogRef; ref != nil && ref.Kind == kind && ref.Name == obj.GetName() {
				out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&c)})
			}
		}
		return out
	}
}

// currentImageOptions are the options that rebuild c's existing pods with
// the images they run; ok is false when c has no pod.
func (r *ClusterReconciler) currentImageOptions(ctx context.Context, c *v1.Cluster) (build.Options, bool, error) {
	var pods corev1.PodList
	if err := r.Client.List(ctx, &pods, r.ofCluster(c)...); err != nil {
		return r.Options, false, fmt.Errorf("listing pods of %s: %w", c.Name, err)
	}
	for _, p := range pods.Items {
		if !metav1.IsControlledBy(&p, c) || len(p.Spec.Containers) == 0 {
			continue
		}
		opts := r.Options
		if len(p.Spec.InitContainers) > 0 {
			opts.ClusterImage = p.Spec.Containers[0].Image
		}
		return opts, true, nil
	}
	return r.Options, false, nil
}

// ConditionOperandImage says, for a Cluster with an imageCatalogRef,
// whether its catalog entry resolves; when it does not, the pods keep the
// image they run.
const ConditionOperandImage = "OperandImage"

func (r *ClusterReconciler) setImageError(c *v1.Cluster, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.imageErrs == nil {
		r.imageErrs = map[string]string{}
	}
	key := client.ObjectKeyFromObject(c).String()
	if err == nil {
		delete(r.imageErrs, key)
		return
	}
	r.imageErrs[key] = err.Error()
}

// setImageCondition sets or removes ConditionOperandImage on st.
func (r *ClusterReconciler) setImageCondition(c *v1.Cluster, conds *[]metav1.Condition) {
	if c.Spec.ImageCatalogRef == nil {
		meta.RemoveStatusCondition(conds, ConditionOperandImage)
		return
	}
	r.mu.Lock()
	msg, failed := r.imageErrs[client.ObjectKeyFromObject(c).String()]
	r.mu.Unlock()
	cond := metav1.Condition{Type: ConditionOperandImage, Status: metav1.ConditionTrue, Reason: "Resolved",
		Message: "the catalog's entry for the major resolves", ObservedGeneration: c.Generation}
	if failed {
		cond.Status, cond.Reason = metav1.ConditionFalse, "CatalogUnavailable"
		cond.Message = msg + "; the pods keep the image they run"
	}
	meta.SetStatusCondition(conds, cond)
}
