package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/instanceapi"
)

// The Database kind on Kubernetes. The operator hands the declarations of
// a Cluster's Databases to its pods (the config secret's databases.json),
// where the primary's instance manager reconciles them, the code the local
// runtime runs; it writes each Database's status from the primary's
// report. The operator itself runs no SQL.
//
// +kubebuilder:rbac:groups=postgresql.pgward.io,resources=databases,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=postgresql.pgward.io,resources=databases/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=postgresql.pgward.io,resources=databases/finalizers,verbs=update

// DatabaseFinalizer holds a Database with databaseReclaimPolicy delete
// until its Cluster's primary has dropped the database.
const DatabaseFinalizer = "postgresql.pgward.io/drop-database"

// DatabasesAnnotation on a pod is a digest of the declarations in its
// config secret: changing the pod makes the kubelet refresh the projected
// secret at once rather than at its next periodic sync.
const DatabasesAnnotation = "pgward.io/databases"

// declared is one Database of a Cluster, as the operator hands it on.
type declared struct {
	db *v1.Database
	// problem is why it is not handed on (refused), "" when it is.
	problem string
	// absent: deleted with databaseReclaimPolicy delete, handed on as a
	// database to drop.
	absent bool
}

// clusterDatabases lists the Databases naming c, oldest first (the first
// of two declaring one database wins), each checked before it reaches
// the pods.
func (r *ClusterReconciler) clusterDatabases(ctx context.Context, c *v1.Cluster) ([]declared, error) {
	var list v1.DatabaseList
	if err := r.Client.List(ctx, &list, client.InNamespace(c.Namespace)); err != nil {
		return nil, fmt.Errorf("listing the Databases of %s: %w", c.Name, err)
	}
	var out []declared
	for i := range list.Items {
		if d := &list.Items[i]; d.Spec.Cluster.Name == c.Name {
			out = append(out, declared{db: d})
		}
	}
	slices.SortStableFunc(out, func(a, b declared) int {
		if t := a.db.CreationTimestamp.Compare(b.db.CreationTimestamp.Time); t != 0 {
			return t
		}
		return strings.Compare(a.db.Name, b.db.Name)
	})
	var objects, names []string
	for i := range out {
		d := out[i].db
		if d.DeletionTimestamp != nil {
			// Until the primary has dropped it, its database is still
			// declared (to be absent): a newer Database of that name waits.
			out[i].absent = controllerutil.ContainsFinalizer(d, DatabaseFinalizer)
			if out[i].absent {
				objects, names = append(objects, d.Name), append(names, d.Spec.Name)
			}
			continue
		}
		p := field.NewPath("spec")
		errs := append(d.Spec.Validate(p), c.CheckDatabase(&d.Spec, p)...)
		if agg := errs.ToAggregate(); agg != nil {
			out[i].problem = "refused: " + agg.Error()
			continue
		}
		objects, names = append(objects, d.Name), append(names, d.Spec.Name)
	}
	conflicts := v1.DatabaseConflicts(objects, names)
	for i := range out {
		if j := slices.Index(objects, out[i].db.Name); j >= 0 && conflicts[j] != "" && out[i].problem == "" && out[i].db.DeletionTimestamp == nil {
			out[i].problem = "refused: spec.name: " + conflicts[j]
		}
	}
	return out, nil
}

// databaseDeclarations is what the pods receive: the accepted Databases,
// and those being deleted that are to be dropped.
func databaseDeclarations(dbs []declared) []byte {
	decls := []v1.DatabaseDeclaration{}
	for _, d := range dbs {
		switch {
		case d.absent:
			spec := d.db.Spec
			spec.Ensure, spec.Schemas, spec.Extensions = "absent", nil, nil
			decls = append(decls, v1.DatabaseDeclaration{Object: d.db.Name, Generation: d.db.Generation, Spec: spec})
		case d.problem == "" && d.db.DeletionTimestamp == nil:
			decls = append(decls, v1.DatabaseDeclaration{Object: d.db.Name, Generation: d.db.Generation, Spec: d.db.Spec})
		}
	}
	b, _ := json.Marshal(decls) // plain structs: cannot fail
	return b
}

// databaseStatus is the status a Database gets from its problem and the
// primary's report (nil when the primary did not answer: then the status
// is left as it is).
func databaseStatus(d declared, report []instanceapi.DatabaseResult, answered bool) (v1.DatabaseStatus, bool) {
	no := false
	if d.problem != "" {
		return v1.DatabaseStatus{ObservedGeneration: d.db.Generation, Applied: &no, Message: d.problem}, true
	}
	if !answered {
		return v1.DatabaseStatus{}, false
	}
	for _, res := range report {
		if res.Object != d.db.Name || res.Generation != d.db.Generation {
			continue
		}
		applied := res.Applied
		return v1.DatabaseStatus{ObservedGeneration: d.db.Generation, Applied: &applied, Message: res.Message}, true
	}
	return v1.DatabaseStatus{ObservedGeneration: d.db.Status.ObservedGeneration, Applied: &no,
		Message: fmt.Sprintf("waiting for the primary's instance manager to apply generation %d", d.db.Generation)}, true
}

// updateDatabases writes each Database's status from the primary's report,
// keeps the finalizer on those that drop their database when deleted, and
// releases a deleted one once the primary has dropped it.
func (r *ClusterReconciler) updateDatabases(ctx context.Context, c *v1.Cluster, primary string, obs []observation, pods map[string]*corev1.Pod) error {
	dbs, err := r.clusterDatabases(ctx, c)
	if err != nil {
		return err
	}
	if err := r.markPods(ctx, DatabasesAnnotation, string(databaseDeclarations(dbs)), pods, len(dbs) > 0); err != nil {
		return err
	}
	var report []instanceapi.DatabaseResult
	answered := false
	for _, o := range obs {
		if o.wire != nil && o.plan.Name == primary {
			answered, report = true, o.wire.Databases
		}
	}
	for _, d := range dbs {
		if d.db.DeletionTimestamp != nil {
			if !d.absent {
				continue
			}
			st, ok := databaseStatus(d, report, answered)
			if ok && st.Applied != nil && *st.Applied && st.ObservedGeneration == d.db.Generation {
				if err := r.setDatabaseFinalizer(ctx, d.db, false); err != nil {
					return err
				}
			}
			continue
		}
		// Only an accepted declaration is dropped with its object: a
		// refused one (a second declaration of a database, the
		// application database) must never drop what it does not own.
		if err := r.setDatabaseFinalizer(ctx, d.db, d.db.Spec.ReclaimPolicy == v1.DatabaseReclaimDelete && d.problem == ""); err != nil {
			return err
		}
		if st, ok := databaseStatus(d, report, answered); ok {
			if err := writeDatabaseStatus(ctx, r.Client, d.db, st); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *ClusterReconciler) setDatabaseFinalizer(ctx context.Context, d *v1.Database, on bool) error {
	return setDatabaseFinalizer(ctx, r.Client, d, on)
}

func setDatabaseFinalizer(ctx context.Context, cl client.Client, d *v1.Database, on bool) error {
	if controllerutil.ContainsFinalizer(d, DatabaseFinalizer) == on {
		return nil
	}
	before := d.DeepCopy()
	if on {
		controllerutil.AddFinalizer(d, DatabaseFinalizer)
	} else {
		controllerutil.RemoveFinalizer(d, DatabaseFinalizer)
	}
	if err := cl.Patch(ctx, d, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("finalizer of Database %s: %w", d.Name, err)
	}
	return nil
}

func writeDatabaseStatus(ctx context.Context, cl client.Client, d *v1.Database, st v1.DatabaseStatus) error {
	if len(st.Message) > 4096 {
		st.Message = st.Message[:4096]
	}
	cur := d.Status
	if cur.ObservedGeneration == st.ObservedGeneration && cur.Message == st.Message &&
		(cur.Applied == nil) == (st.Applied == nil) && (cur.Applied == nil || *cur.Applied == *st.Applied) {
		return nil
	}
	before := d.DeepCopy()
	d.Status = st
	if err := cl.Status().Patch(ctx, d, client.MergeFrom(before)); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("writing status of Database %s: %w", d.Name, err)
	}
	return nil
}

// markPods puts the digest of what under key on each pod that does not
// have it yet (see DatabasesAnnotation). Without any (none: a Cluster
// that never had a Database) a pod not marked yet is left alone, so that
// such Clusters' pods are not written to.
func (r *ClusterReconciler) markPods(ctx context.Context, key, what string, pods map[string]*corev1.Pod, some bool) error {
	digest := shortDigest(what)
	for _, pod := range pods {
		if pod == nil || (!some && pod.Annotations[key] == "") {
			continue
		}
		if err := r.annotatePod(ctx, pod, key, digest); err != nil {
			return err
		}
	}
	return nil
}

// clusterOfDatabase maps a Database to its Cluster: a change of the
// Database re-reconciles the Cluster, which hands it to the pods.
func clusterOfDatabase(_ context.Context, obj client.Object) []reconcile.Request {
	d, ok := obj.(*v1.Database)
	if !ok || d.Spec.Cluster.Name == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: d.Namespace, Name: d.Spec.Cluster.Name}}}
}

// DatabaseReconciler handles what the Cluster's reconciler cannot: a
// Database whose Cluster does not exist (its status says so) or is being
// deleted (a finalizer is released: the database goes with the cluster).
type DatabaseReconciler struct {
	Client client.Client
}

// SetupWithManager registers it for Databases and for the deletion of
// their Clusters.
func (r *DatabaseReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1.Database{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Watches(&v1.Cluster{}, handler.EnqueueRequestsFromMapFunc(r.databasesOfCluster), builder.WithPredicates(clusterGonePredicate())).
		WithOptions(controller.Options{MaxConcurrentReconciles: 1, SkipNameValidation: new(true)}).
		Named("database").
		Complete(r)
}

func clusterGonePredicate() predicate.Predicate {
	return predicate.Funcs{
		CreateFunc:  func(event.CreateEvent) bool { return true },
		DeleteFunc:  func(event.DeleteEvent) bool { return true },
		UpdateFunc:  func(e event.UpdateEvent) bool { return e.ObjectNew.GetDeletionTimestamp() != nil },
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
}

func (r *DatabaseReconciler) databasesOfCluster(ctx context.Context, obj client.Object) []reconcile.Request {
	var list v1.DatabaseList
	if err := r.Client.List(ctx, &list, client.InNamespace(obj.GetNamespace())); err != nil {
		return nil
	}
	var out []reconcile.Request
	for _, d := range list.Items {
		if d.Spec.Cluster.Name == obj.GetName() {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&d)})
		}
	}
	return out
}

// Reconcile implements reconcile.Reconciler.
func (r *DatabaseReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var d v1.Database
	if err := r.Client.Get(ctx, req.NamespacedName, &d); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	var c v1.Cluster
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: d.Namespace, Name: d.Spec.Cluster.Name}, &c)
	switch {
	case apierrors.IsNotFound(err) || (err == nil && c.DeletionTimestamp != nil):
		if d.DeletionTimestamp != nil {
			// Nothing left to drop it from: the Cluster's volumes go.
			return reconcile.Result{}, setDatabaseFinalizer(ctx, r.Client, &d, false)
		}
		no := false
		return reconcile.Result{}, writeDatabaseStatus(ctx, r.Client, &d, v1.DatabaseStatus{ObservedGeneration: d.Generation, Applied: &no,
			Message: fmt.Sprintf("spec.cluster.name: no Cluster %q in namespace %s", d.Spec.Cluster.Name, d.Namespace)})
	case err != nil:
		return reconcile.Result{}, err
	}
	// The Cluster's reconciler hands it on and writes its status.
	return reconcile.Result{}, nil
}
