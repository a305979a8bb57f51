package kube

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/customqueries"
	"github.com/pgward/pgward/internal/kube/build"
)

// spec.monitoring on Kubernetes: the custom queries' ConfigMaps and
// Secrets are read here (the user's objects carry no pgward label, so they
// are read from the API server, not the cache) and handed to the instance
// managers in their config secrets; a PodMonitor is made when asked for and
// its CRD exists.
//
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get
// +kubebuilder:rbac:groups=monitoring.coreos.com,resources=podmonitors,verbs=get;create;patch;delete

// ConditionMonitoring says whether spec.monitoring is in effect: the custom
// queries resolved and handed to the instances, the PodMonitor made.
const ConditionMonitoring = "MonitoringConfigured"

// PodMonitorGVK is the Prometheus operator's PodMonitor, used unstructured:
// pgward does not depend on the Prometheus operator's module.
var PodMonitorGVK = schema.GroupVersionKind{Group: "monitoring.coreos.com", Version: "v1", Kind: "PodMonitor"}

// customQueries resolves and checks the cluster's custom queries. An error
// names the field and the object; the caller keeps the instances on their
// last good queries (a monitoring mistake must never hold up the cluster).
func (r *ClusterReconciler) customQueries(ctx context.Context, c *v1.Cluster) ([]byte, error) {
	sources, err := customqueries.Sources(c, func(kind, name string) (map[string][]byte, error) {
		key := types.NamespacedName{Namespace: c.Namespace, Name: name}
		if kind == "ConfigMap" {
			var cm corev1.ConfigMap
			if err := r.APIReader.Get(ctx, key, &cm); err != nil {
				return nil, notFoundSays(err)
			}
			data := map[string][]byte{}
			for k, v := range cm.Data {
				data[k] = []byte(v)
			}
			for k, v := range cm.BinaryData {
				data[k] = v
			}
			return data, nil
		}
		// Never a secret pgward generated (this Cluster's or another's):
		// its content would be parsed, named in errors, handed to pods.
		s, err := r.userSecret(ctx, c, name, "custom queries")
		if err != nil {
			if apierrors.IsNotFound(errors.Unwrap(err)) {
				return nil, notFoundSays(errors.Unwrap(err))
			}
			return nil, err
		}
		return s.Data, nil
	})
	if err != nil {
		return nil, err
	}
	set, err := customqueries.Parse(sources)
	if err != nil {
		return nil, err
	}
	return set.Encode()
}

func notFoundSays(err error) error {
	if apierrors.IsNotFound(err) {
		return errors.New("not found in the Cluster's namespace")
	}
	return err
}

// monitoringResult is what ensureMonitoring resolved for the instances.
type monitoringResult struct {
	queries []byte
	// ok is false when the queries could not be resolved: the instances
	// keep what their config secrets hold.
	ok bool
}

// applyCustomQueries sets the queries into a config secret before it is
// ensured: the resolved ones, or, when they cannot be resolved, what the
// secret already holds.
func (r *ClusterReconciler) applyCustomQueries(ctx context.Context, s *corev1.Secret, mon monitoringResult) {
	if mon.ok {
		build.SetCustomQueries(s, mon.queries)
		return
	}
	var cur corev1.Secret
	if err := r.Client.Get(ctx, client.ObjectKeyFromObject(s), &cur); err == nil {
		build.SetCustomQueries(s, cur.Data[build.CustomQueriesKey])
	}
}

// ensureMonitoring resolves the custom queries and makes (or removes) the
// PodMonitor, recording the outcome in the MonitoringConfigured condition.
// It returns the queries for the config secrets and whether they resolved.
func (r *ClusterReconciler) ensureMonitoring(ctx context.Context, c, desired *v1.Cluster) (monitoringResult, error) {
	m := desired.Spec.Monitoring
	queries, qerr := r.customQueries(ctx, desired)
	podMonitorErr, err := r.ensurePodMonitor(ctx, desired)
	if err != nil {
		return monitoringResult{}, err
	}
	cond := metav1.Condition{Type: ConditionMonitoring, Status: metav1.ConditionTrue, Reason: "Configured", ObservedGeneration: c.Generation,
		Message: "custom queries handed to the instances"}
	switch {
	case qerr != nil:
		cond.Status, cond.Reason = metav1.ConditionFalse, "CustomQueriesRefused"
		cond.Message = "the instances keep their last good custom queries: " + qerr.Error()
	case podMonitorErr != nil:
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, "PodMonitorUnavailable", podMonitorErr.Error()
	case m != nil && m.EnablePodMonitor:
		cond.Message += "; PodMonitor " + c.Name + " scrapes every instance over TLS"
	}
	if len(cond.Message) > 4096 {
		cond.Message = cond.Message[:4096]
	}
	res := monitoringResult{queries: queries, ok: qerr == nil}
	if m == nil && meta.FindStatusCondition(c.Status.Conditions, ConditionMonitoring) == nil {
		return res, nil
	}
	if cond.Status == metav1.ConditionFalse && r.Recorder != nil && r.firstIn(client.ObjectKeyFromObject(c).String()+" monitoring "+cond.Message, 10*time.Minute) {
		r.Recorder.Eventf(c, nil, corev1.EventTypeWarning, cond.Reason, "Monitoring", "%s", cond.Message)
	}
	before := c.DeepCopy()
	meta.SetStatusCondition(&c.Status.Conditions, cond)
	if !equality.Semantic.DeepEqual(before.Status, c.Status) {
		if err := r.Client.Status().Patch(ctx, c, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
			return monitoringResult{}, fmt.Errorf("writing status of %s: %w", c.Name, err)
		}
	}
	return res, nil
}

// ensurePodMonitor makes the PodMonitor when spec.monitoring asks for one
// and deletes it otherwise. userErr says why it cannot be made (no CRD).
func (r *ClusterReconciler) ensurePodMonitor(ctx context.Context, c *v1.Cluster) (userErr, err error) {
	want := c.Spec.Monitoring != nil && c.Spec.Monitoring.EnablePodMonitor
	if !want && meta.FindStatusCondition(c.Status.Conditions, ConditionMonitoring) == nil {
		// Never configured: nothing to remove, and no discovery call for
		// every Cluster at every reconcile.
		return nil, nil
	}
	if _, merr := r.Client.RESTMapper().RESTMapping(PodMonitorGVK.GroupKind(), PodMonitorGVK.Version); merr != nil {
		if !meta.IsNoMatchError(merr) {
			return nil, fmt.Errorf("looking up the PodMonitor kind: %w", merr)
		}
		if want {
			return errors.New("spec.monitoring.enablePodMonitor: the PodMonitor CRD (monitoring.coreos.com/v1) is not installed: install the Prometheus operator, or scrape with the configuration of docs/operations.md"), nil
		}
		return nil, nil
	}
	cur := &unstructured.Unstructured{}
	cur.SetGroupVersionKind(PodMonitorGVK)
	getErr := r.Client.Get(ctx, types.NamespacedName{Namespace: c.Namespace, Name: c.Name}, cur)
	if getErr != nil && !apierrors.IsNotFound(getErr) {
		return nil, fmt.Errorf("reading PodMonitor %s: %w", c.Name, getErr)
	}
	exists := getErr == nil
	if exists && !metav1.IsControlledBy(cur, c) {
		return fmt.Errorf("PodMonitor %s exists and is not controlled by cluster %s: refusing to take it over", c.Name, c.Name), nil
	}
	if !want {
		if exists {
			if err := r.Client.Delete(ctx, cur); err != nil && !apierrors.IsNotFound(err) {
				return nil, fmt.Errorf("deleting PodMonitor %s: %w", c.Name, err)
			}
		}
		return nil, nil
	}
	desired, err := build.PodMonitor(c)
	if err != nil {
		return nil, err
	}
	if !exists {
		if err := r.Client.Create(ctx, desired); err != nil {
			return nil, fmt.Errorf("creating PodMonitor %s: %w", c.Name, err)
		}
		return nil, nil
	}
	if equality.Semantic.DeepEqual(cur.Object["spec"], desired.Object["spec"]) && equality.Semantic.DeepEqual(cur.GetLabels(), desired.GetLabels()) {
		return nil, nil
	}
	before := cur.DeepCopy()
	cur.Object["spec"] = desired.Object["spec"]
	cur.SetLabels(desired.GetLabels())
	if err := r.Client.Patch(ctx, cur, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return nil, fmt.Errorf("updating PodMonitor %s: %w", c.Name, err)
	}
	return nil, nil
}

// The operator's own metrics, beside controller-runtime's (reconcile
// counts and latency, work queues), on its HTTPS metrics endpoint with
// TokenReview/SubjectAccessReview authorization.
var (
	failoversTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pgward_operator_failovers_total",
		Help: "Failovers the operator's planner started (a replica promoted in place of a failed primary).",
	}, []string{"namespace", "cluster"})
	switchoversTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pgward_operator_switchovers_total",
		Help: "Switchover requests by outcome: promoting (the target was promoted), done (it already was the primary), refused, aborted, superseded.",
	}, []string{"namespace", "cluster", "result"})
	instancesNotReady = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "pgward_operator_instances_not_ready",
		Help: "Instances of the Cluster that are not ready (spec.instances minus status.readyInstances).",
	}, []string{"namespace", "cluster"})
	phases = &phaseCollector{byCluster: map[string]string{}}
)

func init() {
	ctrlmetrics.Registry.MustRegister(failoversTotal, switchoversTotal, instancesNotReady, phases)
}

// phaseCollector counts Clusters by their status phase.
type phaseCollector struct {
	mu        sync.Mutex
	byCluster map[string]string
}

var descClusters = prometheus.NewDesc("pgward_operator_clusters", "Clusters by status phase.", []string{"phase"}, nil)

func (p *phaseCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descClusters }

func (p *phaseCollector) Collect(ch chan<- prometheus.Metric) {
	p.mu.Lock()
	defer p.mu.Unlock()
	count := map[string]float64{}
	for _, ph := range []string{PhaseInvalid, PhaseError, PhaseSettingUp, PhaseWaiting, PhaseHealthy, PhaseFailingOver, PhaseDegraded} {
		count[ph] = 0
	}
	for _, ph := range p.byCluster {
		count[ph]++
	}
	for ph, n := range count {
		ch <- prometheus.MustNewConstMetric(descClusters, prometheus.GaugeValue, n, ph)
	}
}

func (p *phaseCollector) set(key, phase string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if phase == "" {
		delete(p.byCluster, key)
		return
	}
	p.byCluster[key] = phase
}

// observeStatus records a Cluster's phase and unready instances.
func observeStatus(c *v1.Cluster) {
	phases.set(client.ObjectKeyFromObject(c).String(), c.Status.Phase)
	instancesNotReady.WithLabelValues(c.Namespace, c.Name).Set(float64(max(0, c.Spec.Instances-c.Status.ReadyInstances)))
}

// forgetMetrics drops a deleted Cluster's series.
func forgetMetrics(key types.NamespacedName) {
	phases.set(key.String(), "")
	instancesNotReady.DeleteLabelValues(key.Namespace, key.Name)
	failoversTotal.DeleteLabelValues(key.Namespace, key.Name)
	switchoversTotal.DeletePartialMatch(prometheus.Labels{"namespace": key.Namespace, "cluster": key.Name})
}
