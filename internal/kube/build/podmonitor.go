package build

import (
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	v1 "github.com/pgward/pgward/api/v1"
)

// PodMonitorClusterLabel is the label the PodMonitor gives every series:
// the Cluster's name, which the alerts and the dashboard of
// config/monitoring group by.
const PodMonitorClusterLabel = "pgward_cluster"

// PodMonitor is the Prometheus operator's PodMonitor for c (unstructured:
// pgward does not depend on its module). It scrapes port metrics of every
// instance over TLS with the <c>-metrics client certificate, verifying the
// server certificate for the name <c>-rw (it carries the Service names,
// not pod addresses). The CA comes from <c>-metrics (ca.crt, the CA that
// signed it), which is the server's CA unless the user brought a separate
// server CA: then from that secret, never from <c>-ca, which holds the
// CA's key. The user's relabelings follow pgward's, which add
// pgward_cluster.
func PodMonitor(c *v1.Cluster) (*unstructured.Unstructured, error) {
	n := Secrets(c)
	caSecret := n.Metrics
	if n.ServerCA != n.ClientCA {
		caSecret = n.ServerCA
	}
	relabelings := []any{map[string]any{
		"sourceLabels": []any{"__meta_kubernetes_pod_label_pgward_io_cluster"},
		"targetLabel":  PodMonitorClusterLabel,
		"action":       "replace",
	}}
	user, err := relabelList(c.Spec.Monitoring.PodMonitorRelabelConfigs)
	if err != nil {
		return nil, err
	}
	relabelings = append(relabelings, user...)
	endpoint := map[string]any{
		"port":        MetricsPortName,
		"scheme":      "https",
		"path":        "/metrics",
		"relabelings": relabelings,
		"tlsConfig": map[string]any{
			"ca":         map[string]any{"secret": map[string]any{"name": caSecret, "key": KeyCACert}},
			"cert":       map[string]any{"secret": map[string]any{"name": n.Metrics, "key": KeyTLSCert}},
			"keySecret":  map[string]any{"name": n.Metrics, "key": KeyTLSKey},
			"serverName": ServerName(c),
		},
	}
	if m, err := relabelList(c.Spec.Monitoring.PodMonitorMetricRelabelConfigs); err != nil {
		return nil, err
	} else if len(m) > 0 {
		endpoint["metricRelabelings"] = m
	}
	meta := objectMeta(c, c.Name, nil)
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "monitoring.coreos.com/v1",
		"kind":       "PodMonitor",
		"spec": map[string]any{
			"selector":            map[string]any{"matchLabels": toAny(ClusterLabels(c))},
			"podMetricsEndpoints": []any{endpoint},
		},
	}}
	u.SetName(meta.Name)
	u.SetNamespace(meta.Namespace)
	u.SetLabels(meta.Labels)
	u.SetOwnerReferences(meta.OwnerReferences)
	return u, nil
}

// relabelList turns the spec's relabelings into the PodMonitor's JSON.
func relabelList(rs []v1.RelabelConfig) ([]any, error) {
	if len(rs) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(rs)
	if err != nil {
		return nil, fmt.Errorf("encoding relabelings: %w", err)
	}
	var out []any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("encoding relabelings: %w", err)
	}
	return out, nil
}

func toAny(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
