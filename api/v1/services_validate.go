package v1

import (
	"encoding/json"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// PostgresPort is PostgreSQL's port in a pod, the only one a managed
// service may route to.
const PostgresPort = 5432

// serviceSpecAllowed are the Service spec fields a managed service may set:
// its type, its port, and how traffic and load balancers treat it. The rest
// is refused by name, closing these classes: choosing which pods it routes
// to (selector: pgward selects by selectorType, so a Service cannot reach
// other pods through the operator), routing elsewhere (externalName, and
// externalIPs, which let a Service capture traffic to any address),
// routing to instances that are not ready (publishNotReadyAddresses: a
// fenced or starting instance), and addresses the API server allocates.
var serviceSpecAllowed = []string{
	"type", "ports", "sessionAffinity", "sessionAffinityConfig", "externalTrafficPolicy",
	"internalTrafficPolicy", "loadBalancerSourceRanges", "loadBalancerClass", "loadBalancerIP",
	"ipFamilies", "ipFamilyPolicy", "allocateLoadBalancerNodePorts", "healthCheckNodePort",
	"trafficDistribution",
}

// reservedLabelPrefix is pgward's label domain: its labels select pods
// and decide which objects the operator caches and owns.
const reservedLabelPrefix = "pgward.io/"

// DefaultServiceSuffixes are the suffixes of the default Services' names
// (<cluster>-rw, -ro, -r), by selector type.
var DefaultServiceSuffixes = map[string]string{
	ServiceSelectorRW: "-rw", ServiceSelectorRO: "-ro", ServiceSelectorR: "-r",
}

// KeepsDefaultService reports whether the default Service of selector
// type t is kept (rw always is).
func (s *ClusterSpec) KeepsDefaultService(t string) bool {
	if t == ServiceSelectorRW || s.Managed == nil || s.Managed.Services == nil {
		return true
	}
	return !slices.Contains(s.Managed.Services.DisabledDefaultServices, t)
}

// validateServices checks spec.managed.services.
func (c *Cluster) validateServices() field.ErrorList {
	if c.Spec.Managed == nil || c.Spec.Managed.Services == nil {
		return nil
	}
	ms := c.Spec.Managed.Services
	path := field.NewPath("spec", "managed", "services")
	var errs field.ErrorList
	for i, d := range ms.DisabledDefaultServices {
		p := path.Child("disabledDefaultServices").Index(i)
		switch {
		case d == ServiceSelectorRW:
			errs = append(errs, field.Forbidden(p, "the read-write Service cannot be disabled: replicas reach the primary through it, and the server certificate names it"))
		case d != ServiceSelectorRO && d != ServiceSelectorR:
			errs = append(errs, field.NotSupported(p, d, []string{ServiceSelectorRO, ServiceSelectorR}))
		case slices.Contains(ms.DisabledDefaultServices[:i], d):
			errs = append(errs, field.Duplicate(p, d))
		}
	}
	reserved := map[string]bool{}
	for _, suffix := range DefaultServiceSuffixes {
		reserved[c.Name+suffix] = true
	}
	seen := map[string]bool{}
	for i, a := range ms.Additional {
		p := path.Child("additional").Index(i)
		switch a.SelectorType {
		case ServiceSelectorRW, ServiceSelectorRO, ServiceSelectorR:
		default:
			errs = append(errs, field.NotSupported(p.Child("selectorType"), a.SelectorType, []string{ServiceSelectorRW, ServiceSelectorRO, ServiceSelectorR}))
		}
		switch a.UpdateStrategy {
		case "", "patch", "replace":
		default:
			errs = append(errs, field.NotSupported(p.Child("updateStrategy"), a.UpdateStrategy, []string{"patch", "replace"}))
		}
		meta := p.Child("serviceTemplate", "metadata")
		name := a.ServiceTemplate.ObjectMeta.Name
		switch {
		case name == "":
			errs = append(errs, field.Required(meta.Child("name"), "the Service's name"))
		case reserved[name]:
			errs = append(errs, field.Invalid(meta.Child("name"), name, "is the name of one of pgward's own Services of this cluster"))
		case seen[name]:
			errs = append(errs, field.Duplicate(meta.Child("name"), name))
		default:
			errs = append(errs, dnsErrors(meta.Child("name"), name, validation.IsDNS1035Label)...)
		}
		seen[name] = true
		errs = append(errs, metav1validation.ValidateLabels(a.ServiceTemplate.ObjectMeta.Labels, meta.Child("labels"))...)
		for k := range a.ServiceTemplate.ObjectMeta.Labels {
			if strings.HasPrefix(k, reservedLabelPrefix) {
				errs = append(errs, field.Invalid(meta.Child("labels").Key(k), k, "pgward.io/ labels are pgward's: they select its pods and objects"))
			}
		}
		errs = append(errs, apivalidation.ValidateAnnotations(a.ServiceTemplate.ObjectMeta.Annotations, meta.Child("annotations"))...)
		errs = append(errs, validateServiceSpec(&a.ServiceTemplate.Spec, p.Child("serviceTemplate", "spec"))...)
	}
	return errs
}

// validateServiceSpec allows serviceSpecAllowed only, a type with a
// selector, and PostgreSQL's port as the one target.
func validateServiceSpec(s *corev1.ServiceSpec, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	raw, err := json.Marshal(s)
	if err != nil {
		return field.ErrorList{field.InternalError(path, err)}
	}
	var set map[string]any
	if err := json.Unmarshal(raw, &set); err != nil {
		return field.ErrorList{field.InternalError(path, err)}
	}
	for _, k := range sortedKeys(set) {
		if !slices.Contains(serviceSpecAllowed, k) {
			errs = append(errs, field.Forbidden(path.Child(k), "not allowed in a managed service: pgward sets the selector and the target port; externalIPs, externalName, publishNotReadyAddresses and cluster IPs are refused (docs/operator.md)"))
		}
	}
	switch s.Type {
	case "", corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort, corev1.ServiceTypeLoadBalancer:
	default:
		errs = append(errs, field.NotSupported(path.Child("type"), s.Type, []string{"ClusterIP", "NodePort", "LoadBalancer"}))
	}
	if len(s.Ports) > 1 {
		errs = append(errs, field.TooMany(path.Child("ports"), len(s.Ports), 1))
	}
	for i, port := range s.Ports {
		p := path.Child("ports").Index(i)
		if port.Protocol != "" && port.Protocol != corev1.ProtocolTCP {
			errs = append(errs, field.NotSupported(p.Child("protocol"), port.Protocol, []string{"TCP"}))
		}
		if port.Port < 0 || port.Port > 65535 {
			errs = append(errs, field.Invalid(p.Child("port"), port.Port, "must be a port number (0: 5432)"))
		}
		if port.NodePort != 0 && s.Type != corev1.ServiceTypeNodePort && s.Type != corev1.ServiceTypeLoadBalancer {
			errs = append(errs, field.Forbidden(p.Child("nodePort"), "only for type NodePort or LoadBalancer"))
		}
		switch tp := port.TargetPort; {
		case tp.Type == intstr.Int && (tp.IntVal == 0 || tp.IntVal == PostgresPort):
		case tp.Type == intstr.String && tp.StrVal == "postgresql":
		default:
			errs = append(errs, field.Invalid(p.Child("targetPort"), tp.String(), "a managed service routes to PostgreSQL's port only (5432, named postgresql)"))
		}
	}
	return errs
}
