package build

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	v1 "github.com/pgward/pgward/api/v1"
)

// Services returns the read-write (primary), read-only (replicas) and read
// (any instance) Services. They expose PostgreSQL only: the status port is
// reached by the operator on each pod's own address.
func Services(c *v1.Cluster) []*corev1.Service {
	return []*corev1.Service{
		service(c, rwService(c), RolePrimary),
		service(c, roService(c), RoleReplica),
		service(c, rService(c), ""),
	}
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
