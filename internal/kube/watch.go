package kube

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/pgward/pgward/api/v1"
)

// WatchNamespacesEnv sets `pgward operator --watch-namespaces` when the
// flag is not given; the namespaced install (dist/install-namespaced.yaml)
// sets it on the Deployment.
const WatchNamespacesEnv = "WATCH_NAMESPACES"

// ParseNamespaces parses a comma-separated list of namespaces to watch.
// The empty string means every namespace (nil), which needs the cluster-wide
// install's ClusterRole.
func ParseNamespaces(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []string
	for _, ns := range strings.Split(s, ",") {
		ns = strings.TrimSpace(ns)
		if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
			return nil, fmt.Errorf("namespace %q: %s", ns, strings.Join(msgs, "; "))
		}
		if slices.Contains(out, ns) {
			return nil, fmt.Errorf("namespace %q is listed twice", ns)
		}
		out = append(out, ns)
	}
	return out, nil
}

// watches reports whether an operator watching namespaces (every one when
// the list is empty) reconciles Clusters in ns.
func watches(namespaces []string, ns string) bool {
	return len(namespaces) == 0 || slices.Contains(namespaces, ns)
}

// notWatched says why a Cluster in ns will never be reconciled.
func notWatched(namespaces []string, ns string) string {
	return fmt.Sprintf("namespace %s is not watched by the pgward operator, which holds permissions only in %s: "+
		"add it to the operator's %s and regenerate its namespaced install (make install-namespaced)",
		ns, strings.Join(namespaces, ", "), WatchNamespacesEnv)
}

// checkAccess asks the API server whether the operator may list Clusters in
// each namespace it is told to watch. Without its Role there the cache
// would never sync and the manager would stop after a timeout with a
// message that names neither the namespace nor the cause.
func checkAccess(ctx context.Context, c client.Client, namespaces []string) error {
	var errs []error
	for _, ns := range namespaces {
		review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: ns, Verb: "list", Group: v1.Group, Resource: "clusters",
			},
		}}
		if err := c.Create(ctx, review); err != nil {
			return fmt.Errorf("checking the operator's access to namespace %s: %w", ns, err)
		}
		if !review.Status.Allowed {
			errs = append(errs, fmt.Errorf("the operator may not list Clusters in namespace %s: "+
				"the namespace does not exist or the namespaced install's Role for it is not applied", ns))
		}
	}
	return errors.Join(errs...)
}
