package kube_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	v1 "github.com/pgward/pgward/api/v1"
	"github.com/pgward/pgward/internal/customqueries"
	"github.com/pgward/pgward/internal/kube"
	"github.com/pgward/pgward/internal/kube/build"
)

const goodQueries = "q_one:\n  query: SELECT 1 AS v\n  metrics: [{v: {usage: GAUGE, description: one}}]\n"

// TestMonitoringOnTheAPIServer reconciles a Cluster with spec.monitoring
// against the real API server, acting with the operator's generated RBAC:
// the custom queries of a ConfigMap and a Secret reach every instance's
// config secret (no new volume in the pod), a change to the ConfigMap is
// re-applied, refused queries leave the instances on their last good ones
// with the reason in the MonitoringConfigured condition and an event; the
// PodMonitor is refused with the condition while its CRD is absent and made
// (TLS with the metrics certificate, pgward_cluster relabelling, the
// user's relabelings) once it is installed; the operator's own metrics
// count the Cluster's unready instances and its phase.
func TestMonitoringOnTheAPIServer(t *testing.T) {
	ns := newNamespace(t, true)
	ctx := ctxFor(t)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "queries"}, Data: map[string]string{"q": goodQueries}}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "secret-queries"},
		Data: map[string][]byte{"q": []byte("q_two:\n  primary: true\n  query: SELECT 2 AS v\n  metrics: [{v: {usage: COUNTER}}]\n")}}
	if err := admin.Create(ctx, cm); err != nil {
		t.Fatal(err)
	}
	if err := admin.Create(ctx, sec); err != nil {
		t.Fatal(err)
	}
	c := sampleCluster(t, ns)
	c.Spec.Monitoring = &v1.MonitoringConfiguration{
		CustomQueriesConfigMap: []v1.ConfigMapKeySelector{{Name: "queries", Key: "q"}},
		CustomQueriesSecret:    []v1.SecretKeySelector{{Name: "secret-queries", Key: "q"}},
		EnablePodMonitor:       true,
		PodMonitorMetricRelabelConfigs: []v1.RelabelConfig{
			{SourceLabels: []string{"__name__"}, Regex: "pg_locks_count", Action: "drop"},
		},
	}
	createCluster(t, c)
	r := newReconciler(&kube.MTLSInstances{Timeout: 200 * time.Millisecond}, nil)
	reconcileOnce(t, r, c)

	queriesOf := func(instance string) *customqueries.Set {
		t.Helper()
		var s corev1.Secret
		if err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: instance + "-config"}, &s); err != nil {
			t.Fatal(err)
		}
		set, err := customqueries.Decode(s.Data[build.CustomQueriesKey])
		if err != nil {
			t.Fatalf("%s: %v", instance, err)
		}
		var cfg struct {
			CustomQueriesFile string `json:"customQueriesFile"`
		}
		if err := json.Unmarshal(s.Data["config.json"], &cfg); err != nil || cfg.CustomQueriesFile != build.CustomQueriesFile {
			t.Errorf("config.json names %q (%v)", cfg.CustomQueriesFile, err)
		}
		return set
	}
	names := func(set *customqueries.Set) string {
		var out []string
		for _, q := range set.Queries {
			out = append(out, q.Name)
		}
		return strings.Join(out, ",")
	}
	for _, inst := range []string{"cluster-example-1", "cluster-example-2", "cluster-example-3"} {
		if got := names(queriesOf(inst)); got != "q_one,q_two" {
			t.Errorf("%s's queries: %q", inst, got)
		}
	}
	// The pod reads them from its config volume: no new secret in the pod.
	var pod corev1.Pod
	if err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: "cluster-example-1"}, &pod); err != nil {
		t.Fatal(err)
	}
	for _, v := range pod.Spec.Volumes {
		if v.Projected == nil {
			continue
		}
		for _, p := range v.Projected.Sources {
			if p.Secret != nil && (p.Secret.Name == "secret-queries" || p.Secret.Name == "queries") {
				t.Errorf("the pod mounts %s", p.Secret.Name)
			}
		}
	}

	condition := func() *metav1.Condition {
		t.Helper()
		var got v1.Cluster
		if err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: c.Name}, &got); err != nil {
			t.Fatal(err)
		}
		return meta.FindStatusCondition(got.Status.Conditions, kube.ConditionMonitoring)
	}
	if cond := condition(); cond == nil || cond.Status != metav1.ConditionFalse || cond.Reason != "PodMonitorUnavailable" ||
		!strings.Contains(cond.Message, "spec.monitoring.enablePodMonitor: the PodMonitor CRD") {
		t.Fatalf("without the PodMonitor CRD: %+v", cond)
	}

	t.Run("a changed ConfigMap is re-applied", func(t *testing.T) {
		cm.Data["q"] = goodQueries + "q_three:\n  query: SELECT 3 AS v\n  metrics: [{v: {usage: GAUGE}}]\n"
		if err := admin.Update(ctx, cm); err != nil {
			t.Fatal(err)
		}
		reconcileOnce(t, r, c)
		if got := names(queriesOf("cluster-example-2")); got != "q_one,q_three,q_two" {
			t.Errorf("after the change: %q", got)
		}
	})

	t.Run("refused queries keep the last good ones", func(t *testing.T) {
		cm.Data["q"] = "q_bad:\n  query: DELETE FROM t\n  metrics: [{v: {usage: GAUGE}}]\n"
		if err := admin.Update(ctx, cm); err != nil {
			t.Fatal(err)
		}
		reconcileOnce(t, r, c)
		if got := names(queriesOf("cluster-example-2")); got != "q_one,q_three,q_two" {
			t.Errorf("after a refused change: %q", got)
		}
		cond := condition()
		if cond == nil || cond.Reason != "CustomQueriesRefused" ||
			!strings.Contains(cond.Message, `spec.monitoring.customQueriesConfigMap[0] (ConfigMap queries, key q): query "q_bad", key query: starts with "DELETE"`) {
			t.Errorf("condition: %+v", cond)
		}
		cm.Data["q"] = goodQueries
		if err := admin.Update(ctx, cm); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a secret pgward generated is not a source", func(t *testing.T) {
		var cur v1.Cluster
		if err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: c.Name}, &cur); err != nil {
			t.Fatal(err)
		}
		// Its own generated secrets, and one another Cluster's operator
		// labelled as its own.
		other := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "other-app", Labels: map[string]string{build.ClusterLabel: "other"}},
			Data: map[string][]byte{"q": []byte(goodQueries)}}
		if err := admin.Create(ctx, other); err != nil {
			t.Fatal(err)
		}
		cur.Spec.Monitoring.CustomQueriesSecret = []v1.SecretKeySelector{{Name: "cluster-example-app", Key: "password"}, {Name: "other-app", Key: "q"}}
		if err := admin.Update(ctx, &cur); err != nil {
			t.Fatal(err)
		}
		reconcileOnce(t, r, c)
		cond := condition()
		if cond == nil || cond.Reason != "CustomQueriesRefused" ||
			!strings.Contains(cond.Message, `spec.monitoring.customQueriesSecret[0]: pgward generates secret "cluster-example-app"`) ||
			!strings.Contains(cond.Message, `custom queries secret other-app belongs to cluster "other"`) {
			t.Errorf("condition: %+v", cond)
		}
		if got := names(queriesOf("cluster-example-1")); got != "q_one,q_three,q_two" {
			t.Errorf("after a refused source: %q", got)
		}
		if err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: c.Name}, &cur); err != nil {
			t.Fatal(err)
		}
		cur.Spec.Monitoring.CustomQueriesSecret = []v1.SecretKeySelector{{Name: "secret-queries", Key: "q"}}
		if err := admin.Update(ctx, &cur); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("the PodMonitor once its CRD exists", func(t *testing.T) {
		installPodMonitorCRD(t)
		reconcileOnce(t, r, c)
		pm := &unstructured.Unstructured{}
		pm.SetGroupVersionKind(kube.PodMonitorGVK)
		if err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: c.Name}, pm); err != nil {
			t.Fatalf("PodMonitor: %v", err)
		}
		if !metav1.IsControlledBy(pm, &v1.Cluster{ObjectMeta: metav1.ObjectMeta{UID: clusterUID(t, c)}}) {
			t.Errorf("owner references: %+v", pm.GetOwnerReferences())
		}
		spec, _ := json.Marshal(pm.Object["spec"])
		for _, want := range []string{
			`"matchLabels":{"pgward.io/cluster":"cluster-example"}`, `"port":"metrics"`, `"scheme":"https"`,
			`"cert":{"secret":{"key":"tls.crt","name":"cluster-example-metrics"}}`, `"keySecret":{"key":"tls.key","name":"cluster-example-metrics"}`,
			`"ca":{"secret":{"key":"ca.crt","name":"cluster-example-metrics"}}`, `"serverName":"cluster-example-rw"`,
			`"targetLabel":"pgward_cluster"`, `"metricRelabelings":[{"action":"drop","regex":"pg_locks_count","sourceLabels":["__name__"]}]`,
		} {
			if !strings.Contains(string(spec), want) {
				t.Errorf("PodMonitor spec lacks %s:\n%s", want, spec)
			}
		}
		if cond := condition(); cond == nil || cond.Status != metav1.ConditionTrue {
			t.Errorf("condition with the CRD: %+v", cond)
		}
		// A resync changes nothing; turning it off removes it.
		rv := pm.GetResourceVersion()
		reconcileOnce(t, r, c)
		if err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: c.Name}, pm); err != nil || pm.GetResourceVersion() != rv {
			t.Errorf("a resync rewrote the PodMonitor (%v)", err)
		}
		var cur v1.Cluster
		if err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: c.Name}, &cur); err != nil {
			t.Fatal(err)
		}
		cur.Spec.Monitoring.EnablePodMonitor = false
		cur.Spec.Monitoring.PodMonitorMetricRelabelConfigs = nil
		if err := admin.Update(ctx, &cur); err != nil {
			t.Fatal(err)
		}
		reconcileOnce(t, r, c)
		if err := admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: c.Name}, pm); err == nil {
			t.Errorf("the PodMonitor outlived enablePodMonitor: false")
		}
	})

	t.Run("the operator's metrics", func(t *testing.T) {
		found := operatorMetrics(t)
		if v, ok := found["pgward_operator_instances_not_ready{cluster=cluster-example,namespace="+ns+"}"]; !ok || v != 3 {
			t.Errorf("instances not ready: %v %v", v, ok)
		}
		if v := found["pgward_operator_clusters{phase="+kube.PhaseWaiting+"}"]; v < 1 {
			t.Errorf("clusters waiting for instances: %v\n%v", v, found)
		}
	})
}

func clusterUID(t *testing.T, c *v1.Cluster) types.UID {
	t.Helper()
	var cur v1.Cluster
	if err := admin.Get(ctxFor(t), types.NamespacedName{Namespace: c.Namespace, Name: c.Name}, &cur); err != nil {
		t.Fatal(err)
	}
	return cur.UID
}

// installPodMonitorCRD installs a PodMonitor CRD (the Prometheus
// operator's group, kind and version; its schema left open) into the
// test's API server.
func installPodMonitorCRD(t *testing.T) {
	t.Helper()
	preserve := true
	crd := &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "podmonitors.monitoring.coreos.com"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "monitoring.coreos.com",
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "podmonitors", Singular: "podmonitor", Kind: "PodMonitor", ListKind: "PodMonitorList"},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object", XPreserveUnknownFields: &preserve,
				}},
			}},
		},
	}
	if _, err := envtest.InstallCRDs(adminCfg, envtest.CRDInstallOptions{CRDs: []*apiextensionsv1.CustomResourceDefinition{crd}}); err != nil {
		t.Fatalf("installing the PodMonitor CRD: %v", err)
	}
}

// operatorMetrics gathers what the operator's metrics endpoint serves
// (controller-runtime's registry): "name{label=value,...}" -> value.
func operatorMetrics(t *testing.T) map[string]float64 {
	t.Helper()
	mfs, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			found[mf.GetName()+"{"+strings.Join(ls, ",")+"}"] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	return found
}
