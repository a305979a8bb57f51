package kube

import (
	"context"
	"fmt"

	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/kube/build"
)

// NewScheme knows the built-in kinds and pgward's Cluster.
func NewScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, fmt.Errorf("registering built-in kinds: %w", err)
	}
	if err := v1.AddToScheme(s); err != nil {
		return nil, fmt.Errorf("registering %s: %w", v1.APIVersion, err)
	}
	// VolumeSnapshots (volume snapshot backups and recoveries).
	if err := snapv1.AddToScheme(s); err != nil {
		return nil, fmt.Errorf("registering %s: %w", v1.VolumeSnapshotGroup, err)
	}
	return s, nil
}

// ownedKinds are the kinds of object a Cluster controls: the reconciler
// watches them (a change wakes the Cluster that owns it) and the manager's
// cache holds only those carrying pgward's cluster label. One list, so a new
// kind cannot be watched but left uncached (every object of that kind in the
// cluster held in memory) or the other way round.
func ownedKinds() []client.Object {
	return []client.Object{
		&corev1.Pod{}, &corev1.Secret{}, &corev1.Service{}, &corev1.PersistentVolumeClaim{},
		&corev1.ServiceAccount{}, &rbacv1.Role{}, &rbacv1.RoleBinding{},
		&policyv1.PodDisruptionBudget{}, &networkingv1.NetworkPolicy{},
	}
}

// SetupWithManager registers the reconciler: it runs when a Cluster is
// created, deleted or its spec changes, when an object a Cluster controls
// changes, and after each RequeueAfter. Status-only changes of a Cluster do
// not trigger it: the reconciler writes the status itself (the planner's
// memory at every observation of a healthy primary), and reacting to its
// own writes would observe the instances in a tight loop instead of every
// CheckInterval.
func (r *ClusterReconciler) SetupWithManager(mgr ctrl.Manager, workers int) error {
	b := ctrl.NewControllerManagedBy(mgr).
		For(&v1.Cluster{}, builder.WithPredicates(predicate.GenerationChangedPredicate{}))
	for _, o := range ownedKinds() {
		b = b.Owns(o)
	}
	if err := indexByCluster(context.Background(), mgr.GetFieldIndexer()); err != nil {
		return err
	}
	r.indexed = true
	r.pace = newPacer(workers)
	if w, ok := r.Instances.(InstanceWatcher); ok {
		r.wakeups = newWakeups(w, r.Timing.RequestTimeout)
		if err := mgr.Add(r.wakeups); err != nil {
			return fmt.Errorf("instance wake-ups: %w", err)
		}
		b = b.WatchesRawSource(source.Channel(r.wakeups.events, &handler.EnqueueRequestForObject{}))
	}
	return b.
		// When each Lease version arrived (observeLease's LeaseSeen);
		// enqueues nothing.
		Watches(&coordinationv1.Lease{}, r.leaseWatch()).
		Watches(&v1.ImageCatalog{}, handler.EnqueueRequestsFromMapFunc(r.clustersOfCatalog(v1.ImageCatalogKind))).
		Watches(&v1.ClusterImageCatalog{}, handler.EnqueueRequestsFromMapFunc(r.clustersOfCatalog(v1.ClusterImageCatalogKind))).
		// A Database's declaration reaches the pods through its Cluster.
		Watches(&v1.Database{}, handler.EnqueueRequestsFromMapFunc(clusterOfDatabase)).
		// Name validation guards against two controllers of one name in a
		// process; the operator runs one manager, its tests several.
		WithOptions(controller.Options{MaxConcurrentReconciles: workers, SkipNameValidation: new(true)}).
		Named("cluster").
		Complete(r)
}

// clusterIndex indexes cached pods, PVCs and Services by the Cluster their
// label names. Listing a Cluster's objects by label selector scans every
// object of its namespace: with a thousand Clusters in one namespace that
// was a quarter of the operator's CPU.
const clusterIndex = "pgward.io/cluster"

// indexedKinds are the kinds listed per Cluster.
func indexedKinds() []client.Object {
	return []client.Object{&corev1.Pod{}, &corev1.PersistentVolumeClaim{}, &corev1.Service{}}
}

func indexByCluster(ctx context.Context, fi client.FieldIndexer) error {
	for _, o := range indexedKinds() {
		err := fi.IndexField(ctx, o, clusterIndex, func(o client.Object) []string {
			if name, ok := o.GetLabels()[build.ClusterLabel]; ok {
				return []string{name}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("indexing %T by cluster: %w", o, err)
		}
	}
	return nil
}

// ofCluster selects c's objects among the indexedKinds: through the index
// when the reconciler reads from the manager's cache, by label otherwise
// (a client that reads the API server directly, as some tests use, has no
// such index).
func (r *ClusterReconciler) ofCluster(c *v1.Cluster) []client.ListOption {
	if r.indexed {
		return []client.ListOption{client.InNamespace(c.Namespace), client.MatchingFields{clusterIndex: c.Name}}
	}
	return []client.ListOption{client.InNamespace(c.Namespace), client.MatchingLabels(build.ClusterLabels(c))}
}
