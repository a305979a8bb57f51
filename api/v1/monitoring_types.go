package v1

// MonitoringConfiguration is CloudNativePG's spec.monitoring: custom
// queries for each instance's exporter, the built-in queries, and a
// PodMonitor for the Prometheus operator.
type MonitoringConfiguration struct {
	// CustomQueriesConfigMap are ConfigMap keys holding custom queries in
	// CloudNativePG's YAML format (locally: ConfigMaps in the manifest
	// file). They run on every instance as pgward_monitor, a role in
	// pg_monitor and nothing else, read-only, each within a timeout.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	CustomQueriesConfigMap []ConfigMapKeySelector `json:"customQueriesConfigMap,omitempty"`
	// CustomQueriesSecret are Secret keys holding custom queries, as above.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	CustomQueriesSecret []SecretKeySelector `json:"customQueriesSecret,omitempty"`
	// DisableDefaultQueries turns off the exporter's statistics collectors
	// (connections, locks, database sizes, checkpoints, archiver); health,
	// role, replication, WAL and certificate metrics stay, since pgward's
	// alerts need them.
	// +optional
	DisableDefaultQueries *bool `json:"disableDefaultQueries,omitempty"`
	// EnablePodMonitor makes the operator create a PodMonitor
	// (monitoring.coreos.com/v1) that scrapes every instance over TLS with
	// the <cluster>-metrics client certificate. Kubernetes only; refused
	// with a condition when the PodMonitor CRD is not installed.
	// +optional
	EnablePodMonitor bool `json:"enablePodMonitor,omitempty"`
	// PodMonitorMetricRelabelConfigs are the PodMonitor endpoint's
	// metricRelabelings.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	PodMonitorMetricRelabelConfigs []RelabelConfig `json:"podMonitorMetricRelabelings,omitempty"`
	// PodMonitorRelabelConfigs are the PodMonitor endpoint's relabelings.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	PodMonitorRelabelConfigs []RelabelConfig `json:"podMonitorRelabelings,omitempty"`
	// TLSConfig: pgward's exporter always serves TLS 1.3 and requires the
	// metrics client certificate, so only enabled: true is accepted.
	// +optional
	TLSConfig *ClusterMonitoringTLSConfiguration `json:"tls,omitempty"`
}

// ClusterMonitoringTLSConfiguration is CloudNativePG's monitoring.tls.
type ClusterMonitoringTLSConfiguration struct {
	// Enabled must be true: the exporter has no plain-HTTP mode.
	// +optional
	Enabled bool `json:"enabled,omitempty"`
}

// RelabelConfig is the Prometheus operator's relabeling rule, copied into
// the PodMonitor as written.
type RelabelConfig struct {
	// +optional
	// +kubebuilder:validation:MaxItems=32
	SourceLabels []string `json:"sourceLabels,omitempty"`
	// +optional
	Separator *string `json:"separator,omitempty"`
	// +optional
	TargetLabel string `json:"targetLabel,omitempty"`
	// +optional
	Regex string `json:"regex,omitempty"`
	// +optional
	Modulus uint64 `json:"modulus,omitempty"`
	// +optional
	Replacement *string `json:"replacement,omitempty"`
	// +optional
	Action string `json:"action,omitempty"`
}

// StatisticsOff reports whether the built-in statistics
// collectors are off.
func (m *MonitoringConfiguration) StatisticsOff() bool {
	return m != nil && m.DisableDefaultQueries != nil && *m.DisableDefaultQueries
}
