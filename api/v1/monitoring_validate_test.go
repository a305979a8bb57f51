package v1

import (
	"strings"
	"testing"
)

func TestValidateMonitoring(t *testing.T) {
	sep := "a\nb"
	tests := []struct {
		name string
		m    MonitoringConfiguration
		want []string
	}{
		{"CloudNativePG's sample", MonitoringConfiguration{
			CustomQueriesConfigMap: []ConfigMapKeySelector{{Name: "example-monitoring", Key: "custom-queries"}},
			CustomQueriesSecret:    []SecretKeySelector{{Name: "example-monitoring-secret", Key: "pg-database"}},
		}, nil},
		{"a PodMonitor with relabelings, TLS on", MonitoringConfiguration{
			EnablePodMonitor:               true,
			TLSConfig:                      &ClusterMonitoringTLSConfiguration{Enabled: true},
			PodMonitorRelabelConfigs:       []RelabelConfig{{SourceLabels: []string{"__meta_kubernetes_pod_name"}, TargetLabel: "pod", Action: "replace"}},
			PodMonitorMetricRelabelConfigs: []RelabelConfig{{SourceLabels: []string{"__name__"}, Regex: "cnpg_.*", Action: "Drop"}},
		}, nil},
		{"plain HTTP", MonitoringConfiguration{TLSConfig: &ClusterMonitoringTLSConfiguration{}},
			[]string{"spec.monitoring.tls.enabled|no plain-HTTP mode"}},
		{"bad references", MonitoringConfiguration{
			CustomQueriesConfigMap: []ConfigMapKeySelector{{Name: "Bad_Name", Key: "k"}, {Name: "m", Key: "../k"}, {Name: "m", Key: "k"}, {Name: "m", Key: "k"}},
		}, []string{"spec.monitoring.customQueriesConfigMap[0].name", "spec.monitoring.customQueriesConfigMap[1].key", "spec.monitoring.customQueriesConfigMap[3]|Duplicate"}},
		{"bad relabelings", MonitoringConfiguration{EnablePodMonitor: true, PodMonitorRelabelConfigs: []RelabelConfig{
			{Action: "explode"},
			{SourceLabels: []string{"a-b"}, TargetLabel: "x", Regex: "(", Separator: &sep},
			{Action: "hashmod", TargetLabel: "x"},
		}}, []string{
			"spec.monitoring.podMonitorRelabelings[0].action",
			"spec.monitoring.podMonitorRelabelings[1].sourceLabels[0]", "spec.monitoring.podMonitorRelabelings[1].regex",
			"spec.monitoring.podMonitorRelabelings[1]|control characters", "spec.monitoring.podMonitorRelabelings[2].modulus",
		}},
		{"relabelings without a PodMonitor", MonitoringConfiguration{PodMonitorRelabelConfigs: []RelabelConfig{{Action: "drop", SourceLabels: []string{"a"}}}},
			[]string{"spec.monitoring.podMonitorRelabelings|enablePodMonitor"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := validCluster()
			c.Spec.Monitoring = &tc.m
			checkErrors(t, c.Validate(), tc.want)
		})
	}
	// An unsupported CloudNativePG monitoring field is named as such.
	_, err := LoadCluster([]byte("apiVersion: postgresql.cnpg.io/v1\nkind: Cluster\nmetadata: {name: a}\nspec:\n  monitoring:\n    metricsQueriesTTL: 30s\n"))
	if err == nil || !strings.Contains(err.Error(), "does not support yet") {
		t.Errorf("metricsQueriesTTL: %v", err)
	}
}
