package v1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// The pod-shape fields of a Cluster, with CloudNativePG's names and shapes.
// They mean something on Kubernetes only (nodes, pods, volumes): the
// operator puts them into the objects it makes, and `pgward local up`
// says, field by field, that they apply there.

// AffinityConfiguration places the instances' pods, as CloudNativePG's
// field of that name: pgward's anti-affinity between a cluster's pods
// (preferred by default, on the node) plus the user's node selector,
// tolerations and affinity terms.
type AffinityConfiguration struct {
	// EnablePodAntiAffinity keeps a cluster's instances apart by
	// TopologyKey (default true).
	// +optional
	EnablePodAntiAffinity *bool `json:"enablePodAntiAffinity,omitempty"`
	// TopologyKey is the node label the anti-affinity spreads over
	// (default kubernetes.io/hostname).
	// +optional
	TopologyKey string `json:"topologyKey,omitempty"`
	// NodeSelector limits the pods to nodes with these labels.
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`
	// NodeAffinity is the pods' node affinity.
	// +optional
	NodeAffinity *corev1.NodeAffinity `json:"nodeAffinity,omitempty"`
	// Tolerations let the pods run on tainted nodes.
	// +optional
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`
	// PodAntiAffinityType is preferred (default: the scheduler may put two
	// instances together when it must) or required (it never does).
	// +optional
	// +kubebuilder:validation:Enum=preferred;required
	PodAntiAffinityType string `json:"podAntiAffinityType,omitempty"`
	// AdditionalPodAntiAffinity terms are added to pgward's (or used alone
	// when EnablePodAntiAffinity is false).
	// +optional
	AdditionalPodAntiAffinity *corev1.PodAntiAffinity `json:"additionalPodAntiAffinity,omitempty"`
	// AdditionalPodAffinity terms are the pods' pod affinity.
	// +optional
	AdditionalPodAffinity *corev1.PodAffinity `json:"additionalPodAffinity,omitempty"`
}

// EmbeddedObjectMetadata is the labels and annotations of
// inheritedMetadata (CloudNativePG's type of that name).
type EmbeddedObjectMetadata struct {
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// ServiceAccountTemplate shapes the pods' ServiceAccount.
type ServiceAccountTemplate struct {
	// Metadata holds the labels and annotations of the ServiceAccount
	// (e.g. a cloud provider's workload identity annotation).
	Metadata EmbeddedObjectMetadata `json:"metadata"`
}

// ProbesConfiguration tunes the timing of the instance container's probes.
// pgward keeps its own handlers (the instance manager's /healthz and
// /readyz on the status port): only when and how often they run changes.
type ProbesConfiguration struct {
	// +optional
	Startup *ProbeWithStrategy `json:"startup,omitempty"`
	// +optional
	Liveness *LivenessProbe `json:"liveness,omitempty"`
	// +optional
	Readiness *ProbeWithStrategy `json:"readiness,omitempty"`
}

// ProbeWithStrategy is a startup or readiness probe's timing and what it
// checks.
type ProbeWithStrategy struct {
	Probe `json:",inline"`
	// Type is what the probe checks: "streaming" makes a replica pass only
	// while it streams from its upstream (and, with MaximumLag, replays
	// within that many bytes of the WAL the upstream reported); a primary
	// passes when it accepts connections. "query" (readiness only) is
	// pgward's default readiness: PostgreSQL answers a query. Empty keeps
	// pgward's default.
	// +optional
	// +kubebuilder:validation:Enum=streaming;query
	Type ProbeStrategyType `json:"type,omitempty"`
	// MaximumLag bounds a streaming replica's replay lag (type streaming
	// only).
	// +optional
	MaximumLag *resource.Quantity `json:"maximumLag,omitempty"`
}

// ProbeStrategyType is what a startup or readiness probe checks.
type ProbeStrategyType string

// The probe strategies pgward implements (CloudNativePG's pg_isready is
// not one: pgward's startup check is its instance manager answering).
const (
	ProbeStrategyStreaming ProbeStrategyType = "streaming"
	ProbeStrategyQuery     ProbeStrategyType = "query"
)

// LivenessProbe is the liveness probe's timing. (CloudNativePG's
// isolationCheck is refused as not supported.)
type LivenessProbe struct {
	Probe `json:",inline"`
}

// Probe is the timing of a Kubernetes probe; zero leaves pgward's value.
type Probe struct {
	// +optional
	// +kubebuilder:validation:Minimum=0
	InitialDelaySeconds int32 `json:"initialDelaySeconds,omitempty"`
	// +optional
	// +kubebuilder:validation:Minimum=0
	TimeoutSeconds int32 `json:"timeoutSeconds,omitempty"`
	// +optional
	// +kubebuilder:validation:Minimum=0
	PeriodSeconds int32 `json:"periodSeconds,omitempty"`
	// +optional
	// +kubebuilder:validation:Minimum=0
	SuccessThreshold int32 `json:"successThreshold,omitempty"`
	// +optional
	// +kubebuilder:validation:Minimum=0
	FailureThreshold int32 `json:"failureThreshold,omitempty"`
	// +optional
	TerminationGracePeriodSeconds *int64 `json:"terminationGracePeriodSeconds,omitempty"`
}

// StreamingLag reports whether p asks for the streaming strategy and, if
// so, its lag bound in bytes (nil: none). A nil p asks for nothing.
func (p *ProbeWithStrategy) StreamingLag() (streaming bool, maxLagBytes *int64) {
	if p == nil || p.Type != ProbeStrategyStreaming {
		return false, nil
	}
	if p.MaximumLag != nil {
		n := p.MaximumLag.Value()
		return true, &n
	}
	return true, nil
}
