package build

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	v1 "github.com/pgward/pgward/api/v1"
)

// Services returns the read-write (primary), read-only (replicas) and read
// (any instance) Services. They expose PostgreSQL only: the status port is
// reached by the operator on each pod's own address.
// spec.managed.services.disabledDefaultServices leaves out -ro and -r.
// primary is the planner's target primary, which the read-write Service
// selects by name (PrimarySelector).
func Services(c *v1.Cluster, primary string) []*corev1.Service {
	rw := service(c, rwService(c), "")
	rw.Spec.Selector = PrimarySelector(c, primary)
	out := []*corev1.Service{rw}
	if c.Spec.KeepsDefaultService(v1.ServiceSelectorRO) {
		out = append(out, service(c, roService(c), RoleReplica))
	}
	if c.Spec.KeepsDefaultService(v1.ServiceSelectorR) {
		out = append(out, service(c, rService(c), ""))
	}
	return out
}

// AdditionalServiceLabel marks the Services of spec.managed.services.additional.
const AdditionalServiceLabel = "pgward.io/service"

// AdditionalServices are spec.managed.services.additional: the template's
// labels, annotations and spec, with pgward's labels and owner, the
// selector of the selector type, and PostgreSQL's port as the target
// (validation refused anything else).
func AdditionalServices(c *v1.Cluster) []*corev1.Service {
	if c.Spec.Managed == nil || c.Spec.Managed.Services == nil {
		return nil
	}
	role := map[string]string{v1.ServiceSelectorRW: RolePrimary, v1.ServiceSelectorRO: RoleReplica, v1.ServiceSelectorR: ""}
	var out []*corev1.Service
	for _, a := range c.Spec.Managed.Services.Additional {
		t := a.ServiceTemplate
		extra := map[string]string{AdditionalServiceLabel: "additional"}
		labels := map[string]string{}
		for k, v := range t.ObjectMeta.Labels {
			labels[k] = v
		}
		for k, v := range extra {
			labels[k] = v
		}
		s := service(c, t.ObjectMeta.Name, role[a.SelectorType])
		for k, v := range s.Labels {
			labels[k] = v
		}
		s.Labels = labels
		if len(t.ObjectMeta.Annotations) > 0 {
			s.Annotations = map[string]string{}
			for k, v := range t.ObjectMeta.Annotations {
				s.Annotations[k] = v
			}
		}
		spec := *t.Spec.DeepCopy()
		spec.Selector = s.Spec.Selector
		if spec.Type == "" {
			spec.Type = corev1.ServiceTypeClusterIP
		}
		port := s.Spec.Ports[0]
		if len(spec.Ports) == 1 {
			p := spec.Ports[0]
			if p.Port != 0 {
				port.Port = p.Port
			}
			if p.Name != "" {
				port.Name = p.Name
			}
			port.NodePort = p.NodePort
			port.AppProtocol = p.AppProtocol
		}
		spec.Ports = []corev1.ServicePort{port}
		s.Spec = spec
		out = append(out, s)
	}
	return out
}

// UpdateByReplace reports whether the additional Service name is to be
// deleted and created again when it differs, rather than patched.
func UpdateByReplace(c *v1.Cluster, name string) bool {
	if c.Spec.Managed == nil || c.Spec.Managed.Services == nil {
		return false
	}
	for _, a := range c.Spec.Managed.Services.Additional {
		if a.ServiceTemplate.ObjectMeta.Name == name {
			return a.UpdateStrategy == "replace"
		}
	}
	return false
}

// PrimarySelector is the read-write Service's selector: the cluster's pod
// of instance primary, by name, not by the role label. Moving the primary
// is then one change of one object (the Service), which the EndpointSlice
// controller turns into one EndpointSlice update: the old address out and
// the new one in together. With the role label it took two pod patches and
// two updates, and kube-proxy applies a second change no sooner than its
// minimum sync period (1 s by default) after the first: clients were sent
// to no primary, or to the stopped old one too, for up to a second of every
// switchover (docs/benchmarks.md, switchover on real pods).
func PrimarySelector(c *v1.Cluster, primary string) map[string]string {
	s := ClusterLabels(c)
	s[InstanceLabel] = primary
	return s
}

func service(c *v1.Cluster, name, role string) *corev1.Service {
	selector := ClusterLabels(c)
	if role != "" {
		selector[RoleLabel] = role
	}
	return &corev1.Service{
		ObjectMeta: objectMeta(c, name, nil),
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: selector,
			Ports: []corev1.ServicePort{{
				Name:       postgresPortName,
				Protocol:   corev1.ProtocolTCP,
				Port:       PostgresPort,
				TargetPort: intstr.FromString(postgresPortName),
			}},
		},
	}
}

// AdditionalServiceNames are the names of spec.managed.services.additional.
func AdditionalServiceNames(c *v1.Cluster) []string {
	if c.Spec.Managed == nil || c.Spec.Managed.Services == nil {
		return nil
	}
	var out []string
	for _, a := range c.Spec.Managed.Services.Additional {
		out = append(out, a.ServiceTemplate.ObjectMeta.Name)
	}
	return out
}
