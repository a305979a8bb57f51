package kube

import (
	"context"
	"fmt"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube/build"
)

// ensureManagedServices makes spec.managed.services.additional exist as
// declared (patched in place, or deleted and created again with
// updateStrategy replace), and deletes the Services the Cluster controls
// that the spec no longer calls for: a disabled default, an additional one
// removed or renamed.
func (r *ClusterReconciler) ensureManagedServices(ctx context.Context, c *v1.Cluster) error {
	want := map[string]bool{}
	for _, s := range build.Services(c, "") { // names only
		want[s.Name] = true
	}
	for _, s := range build.AdditionalServices(c) {
		want[s.Name] = true
		if build.UpdateByReplace(c, s.Name) {
			if err := r.replaceIfChanged(ctx, c, s); err != nil {
				return err
			}
		}
		if _, err := ensure(ctx, r.Client, c, s, mutateManagedService); err != nil {
			return err
		}
	}
	var list corev1.ServiceList
	if err := r.Client.List(ctx, &list, r.ofCluster(c)...); err != nil {
		return fmt.Errorf("listing services of %s: %w", c.Name, err)
	}
	for i := range list.Items {
		s := &list.Items[i]
		if want[s.Name] || !metav1.IsControlledBy(s, c) {
			continue
		}
		// Only Services pgward makes: defaults by name, additional ones by label.
		if !slices.Contains(build.ServiceNames(c), s.Name) && s.Labels[build.AdditionalServiceLabel] == "" {
			continue
		}
		if err := deleteOwned(ctx, r.Client, c, s); err != nil {
			return err
		}
	}
	return nil
}

// replaceIfChanged deletes an additional Service (updateStrategy replace)
// that differs from its template; ensure then creates it afresh.
func (r *ClusterReconciler) replaceIfChanged(ctx context.Context, c *v1.Cluster, want *corev1.Service) error {
	var cur corev1.Service
	err := r.Client.Get(ctx, client.ObjectKeyFromObject(want), &cur)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading Service %s: %w", want.Name, err)
	}
	if !metav1.IsControlledBy(&cur, c) {
		return nil // ensure reports it
	}
	before := cur.DeepCopy()
	mutateManagedService(&cur, want)
	for k, v := range want.Labels {
		if cur.Labels == nil {
			cur.Labels = map[string]string{}
		}
		cur.Labels[k] = v
	}
	if equality.Semantic.DeepEqual(before, &cur) {
		return nil
	}
	if err := r.Client.Delete(ctx, before, client.Preconditions{UID: new(before.UID)}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("replacing Service %s: %w", want.Name, err)
	}
	return nil
}

// mutateManagedService sets what a managed service's template declares,
// leaving what the API server and load balancers fill in (cluster IPs,
// allocated node ports, their own annotations) alone.
func mutateManagedService(cur, want *corev1.Service) {
	if len(want.Annotations) > 0 {
		if cur.Annotations == nil {
			cur.Annotations = map[string]string{}
		}
		maps.Copy(cur.Annotations, want.Annotations)
	}
	cur.Spec.Selector = want.Spec.Selector
	cur.Spec.Type = want.Spec.Type
	ports := slices.Clone(want.Spec.Ports)
	for i := range ports {
		if ports[i].NodePort == 0 && i < len(cur.Spec.Ports) && want.Spec.Type != corev1.ServiceTypeClusterIP {
			ports[i].NodePort = cur.Spec.Ports[i].NodePort // allocated
		}
	}
	if !managedPortsEqual(cur.Spec.Ports, ports) {
		cur.Spec.Ports = ports
	}
	{
		w := want.Spec
		if w.SessionAffinity != "" {
			cur.Spec.SessionAffinity = w.SessionAffinity
		}
		if w.ExternalTrafficPolicy != "" {
			cur.Spec.ExternalTrafficPolicy = w.ExternalTrafficPolicy
		}
		if w.InternalTrafficPolicy != nil {
			cur.Spec.InternalTrafficPolicy = w.InternalTrafficPolicy
		}
		if w.LoadBalancerSourceRanges != nil || cur.Spec.LoadBalancerSourceRanges != nil {
			cur.Spec.LoadBalancerSourceRanges = w.LoadBalancerSourceRanges
		}
		if w.LoadBalancerClass != nil {
			cur.Spec.LoadBalancerClass = w.LoadBalancerClass
		}
		if w.SessionAffinityConfig != nil {
			cur.Spec.SessionAffinityConfig = w.SessionAffinityConfig
		}
		if w.AllocateLoadBalancerNodePorts != nil {
			cur.Spec.AllocateLoadBalancerNodePorts = w.AllocateLoadBalancerNodePorts
		}
	}
}

func managedPortsEqual(a, b []corev1.ServicePort) bool {
	if !servicePortsEqual(a, b) {
		return false
	}
	for i := range a {
		if a[i].NodePort != b[i].NodePort && b[i].NodePort != 0 {
			return false
		}
	}
	return true
}
