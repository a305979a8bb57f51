package kube

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
)

// resolvePodSelectors expands pg_hba's ${podselector:NAME} addresses in
// desired only (the stored spec keeps the user's words) into the addresses
// of the pods spec.podSelectorRefs[NAME] selects in the Cluster's
// namespace, read from the API server at every reconcile: the instance
// configs then change, and the instances reload pg_hba, when the pods do.
// Only running pods that have their own addresses count: a finished pod's
// address may be handed to another pod, a terminating one is going, and a
// hostNetwork pod's address is its node's, shared by everything there.
func (r *ClusterReconciler) resolvePodSelectors(ctx context.Context, desired *v1.Cluster) error {
	if len(desired.Spec.PodSelectorRefs) == 0 {
		return nil
	}
	ips := map[string][]netip.Addr{}
	for i, ref := range desired.Spec.PodSelectorRefs {
		sel, err := metav1.LabelSelectorAsSelector(&ref.Selector)
		if err != nil {
			return fmt.Errorf("spec.podSelectorRefs[%d].selector: %w", i, err)
		}
		var pods corev1.PodList
		if err := r.APIReader.List(ctx, &pods, client.InNamespace(desired.Namespace), client.MatchingLabelsSelector{Selector: sel}); err != nil {
			return fmt.Errorf("spec.podSelectorRefs[%d]: listing the pods it selects: %w", i, err)
		}
		var addrs []netip.Addr
		for _, p := range pods.Items {
			if p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil || p.Spec.HostNetwork {
				continue
			}
			for _, pip := range p.Status.PodIPs {
				if a, err := netip.ParseAddr(pip.IP); err == nil && a.Zone() == "" {
					addrs = append(addrs, a.Unmap())
				}
			}
		}
		// Sorted and unique: the same pods give the same configuration,
		// which is then not rewritten.
		slices.SortFunc(addrs, func(a, b netip.Addr) int { return a.Compare(b) })
		ips[ref.Name] = slices.Compact(addrs)
	}
	pc := &desired.Spec.PostgresConfiguration
	pc.PgHBA = v1.ExpandPodSelectors(pc.PgHBA, ips)
	// The instances have no use for the selectors once resolved.
	desired.Spec.PodSelectorRefs = nil
	if errs := desired.Validate(); len(errs) > 0 {
		return fmt.Errorf("spec.postgresql.pg_hba with its pod selectors resolved: %w", errs.ToAggregate())
	}
	return nil
}
