package v1

import (
	corev1 "k8s.io/api/core/v1"
)

// Selector types of a managed service: which instances it routes to, the
// same as pgward's own -rw, -ro and -r Services.
const (
	ServiceSelectorRW = "rw"
	ServiceSelectorRO = "ro"
	ServiceSelectorR  = "r"
)

// ManagedServices changes the Services the operator keeps for a Cluster on
// Kubernetes (CloudNativePG's spec.managed.services). The local runtime
// has no Services: `pgward local uri` lists every instance instead.
type ManagedServices struct {
	// DisabledDefaultServices are default Services not to create: ro, r.
	// The read-write one cannot be disabled: replicas reach the primary
	// through it.
	// +optional
	// +kubebuilder:validation:MaxItems=2
	DisabledDefaultServices []string `json:"disabledDefaultServices,omitempty"`
	// Additional are further Services, each selecting pgward's instances
	// by role and exposing PostgreSQL's port only.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	Additional []ManagedService `json:"additional,omitempty"`
}

// ManagedService is one additional Service.
type ManagedService struct {
	// SelectorType is rw (the primary), ro (replicas) or r (any instance).
	// +kubebuilder:validation:Enum=rw;ro;r
	SelectorType string `json:"selectorType"`
	// UpdateStrategy is patch (default: the Service is changed in place) or
	// replace (deleted and created again, for changes Kubernetes refuses
	// in place).
	// +optional
	// +kubebuilder:validation:Enum=patch;replace
	UpdateStrategy string `json:"updateStrategy,omitempty"`
	// ServiceTemplate is the Service's name, labels, annotations and spec.
	// The selector and the target port are pgward's.
	ServiceTemplate ServiceTemplateSpec `json:"serviceTemplate"`
}

// ServiceTemplateSpec is a Service's metadata and spec.
type ServiceTemplateSpec struct {
	// +optional
	ObjectMeta ServiceMetadata `json:"metadata,omitempty"`
	// Spec of the Service. Allowed: type (ClusterIP, NodePort,
	// LoadBalancer), ports (PostgreSQL's only), and the traffic and load
	// balancer settings; never a selector, externalIPs or
	// publishNotReadyAddresses.
	// +optional
	Spec corev1.ServiceSpec `json:"spec,omitempty"`
}

// ServiceMetadata is the part of a Service's metadata a user sets.
type ServiceMetadata struct {
	// Name of the Service.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}
