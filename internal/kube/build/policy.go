package build

import (
	"maps"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	v1 "github.com/pgward/pgward/api/v1"
)

// PodDisruptionBudgets keep voluntary disruptions (node drains) from taking
// the primary (a switchover must move it first) or more than one replica at
// a time. A single-instance cluster has no replica budget.
//
// With spec.enablePDB false there are none (CloudNativePG's field, for
// e.g. a single-node cluster that must be drainable).
func PodDisruptionBudgets(c *v1.Cluster) []*policyv1.PodDisruptionBudget {
	if !PDBsEnabled(c) {
		return nil
	}
	primary := ClusterLabels(c)
	primary[RoleLabel] = RolePrimary
	out := []*policyv1.PodDisruptionBudget{{
		ObjectMeta: objectMeta(c, PrimaryPDBName(c), nil),
		Spec: policyv1.PodDisruptionBudgetSpec{
			MinAvailable: new(intstr.FromInt32(1)),
			Selector:     &metav1.LabelSelector{MatchLabels: primary},
		},
	}}
	if c.Spec.Instances > 1 {
		replicas := ClusterLabels(c)
		replicas[RoleLabel] = RoleReplica
		out = append(out, &policyv1.PodDisruptionBudget{
			ObjectMeta: objectMeta(c, ReplicaPDBName(c), nil),
			Spec: policyv1.PodDisruptionBudgetSpec{
				MaxUnavailable: new(intstr.FromInt32(1)),
				Selector:       &metav1.LabelSelector{MatchLabels: replicas},
			},
		})
	}
	return out
}

// ServiceAccount is the identity of the cluster's pods. Its token is never
// automounted (see Pod).
func ServiceAccount(c *v1.Cluster) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{
		ObjectMeta:                   serviceAccountMeta(c),
		AutomountServiceAccountToken: new(false),
	}
}

// serviceAccountMeta adds serviceAccountTemplate's labels and annotations
// (e.g. a cloud provider's workload identity) under pgward's own.
func serviceAccountMeta(c *v1.Cluster) metav1.ObjectMeta {
	meta := objectMeta(c, ServiceAccountName(c), nil)
	t := c.Spec.ServiceAccountTemplate
	if t == nil {
		return meta
	}
	labels := maps.Clone(t.Metadata.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, meta.Labels)
	meta.Labels = labels
	if len(t.Metadata.Annotations) > 0 {
		if meta.Annotations == nil {
			meta.Annotations = map[string]string{}
		}
		maps.Copy(meta.Annotations, t.Metadata.Annotations)
	}
	return meta
}

// Role grants the cluster's pods read access to their own objects only,
// each named (resourceNames): the Cluster, its pods, and the secrets the
// pods already mount. Never the CA (its key signs certificates) nor the
// operator's client certificate, and nothing of any other cluster. The one
// write is get and update of the cluster's own Lease, which the primary
// renews: not create (the operator creates it), not patch or delete, and no
// other Lease (a node's, the operator's leader election, another
// cluster's).
func Role(c *v1.Cluster) *rbacv1.Role {
	n := Secrets(c)
	instances := InstanceNames(c)
	secrets := []string{n.ServerTLS, n.Replication, n.App}
	if n.Superuser != "" {
		secrets = append(secrets, n.Superuser)
	}
	for _, name := range instances {
		secrets = append(secrets, InstanceConfigSecretName(name))
	}
	return &rbacv1.Role{
		ObjectMeta: objectMeta(c, ServiceAccountName(c), nil),
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{v1.Group}, Resources: []string{"clusters"}, ResourceNames: []string{c.Name}, Verbs: []string{"get", "watch"}},
			{APIGroups: []string{""}, Resources: []string{"pods"}, ResourceNames: instances, Verbs: []string{"get"}},
			{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: secrets, Verbs: []string{"get", "watch"}},
			{APIGroups: []string{coordinationv1.GroupName}, Resources: []string{"leases"}, ResourceNames: []string{LeaseName(c)}, Verbs: []string{"get", "update"}},
		},
	}
}

// RoleBinding binds Role to ServiceAccount.
func RoleBinding(c *v1.Cluster) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{
		ObjectMeta: objectMeta(c, ServiceAccountName(c), nil),
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: ServiceAccountName(c)},
		Subjects: []rbacv1.Subject{{
			Kind: rbacv1.ServiceAccountKind, Name: ServiceAccountName(c), Namespace: c.Namespace,
		}},
	}
}

// NetworkPolicies returns, when c enables them, the three policies that
// select every instance: PostgreSQL's port admits the listed clients and
// the cluster's own instances (replication), the status port admits only
// the operator's pods in the operator's namespace, the metrics port only
// the listed metrics clients (nobody when there are none). Since a pod
// selected by any policy accepts only what some policy allows, everything
// else is denied. Without the option it returns nil.
func NetworkPolicies(c *v1.Cluster, opts Options) []*networkingv1.NetworkPolicy {
	if !NetworkPolicyEnabled(c) {
		return nil
	}
	tcp := corev1.ProtocolTCP
	port := func(p int32) []networkingv1.NetworkPolicyPort {
		return []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: new(intstr.FromInt32(p))}}
	}
	pods := &metav1.LabelSelector{MatchLabels: ClusterLabels(c)}
	peers := []networkingv1.NetworkPolicyPeer{{PodSelector: pods.DeepCopy()}}
	for _, cl := range c.Spec.NetworkPolicy.Clients {
		peers = append(peers, networkingv1.NetworkPolicyPeer{
			PodSelector: cl.PodSelector.DeepCopy(), NamespaceSelector: cl.NamespaceSelector.DeepCopy(),
		})
	}
	var metricsIngress []networkingv1.NetworkPolicyIngressRule
	if mc := c.Spec.NetworkPolicy.MetricsClients; len(mc) > 0 {
		rule := networkingv1.NetworkPolicyIngressRule{Ports: port(MetricsPort)}
		for _, cl := range mc {
			rule.From = append(rule.From, networkingv1.NetworkPolicyPeer{
				PodSelector: cl.PodSelector.DeepCopy(), NamespaceSelector: cl.NamespaceSelector.DeepCopy(),
			})
		}
		metricsIngress = append(metricsIngress, rule)
	}
	ingress := []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	return []*networkingv1.NetworkPolicy{
		{
			ObjectMeta: objectMeta(c, PostgresPolicyName(c), nil),
			Spec: networkingv1.NetworkPolicySpec{
				PodSelector: *pods.DeepCopy(),
				PolicyTypes: ingress,
				Ingress:     []networkingv1.NetworkPolicyIngressRule{{Ports: port(PostgresPort), From: peers}},
			},
		},
		{
			ObjectMeta: objectMeta(c, StatusPolicyName(c), nil),
			Spec: networkingv1.NetworkPolicySpec{
				PodSelector: *pods.DeepCopy(),
				PolicyTypes: ingress,
				Ingress: []networkingv1.NetworkPolicyIngressRule{{
					Ports: port(StatusPort),
					From: []networkingv1.NetworkPolicyPeer{{
						NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{
							corev1.LabelMetadataName: opts.OperatorNamespace,
						}},
						PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{nameLabel: OperatorName}},
					}},
				}},
			},
		},
		{
			ObjectMeta: objectMeta(c, MetricsPolicyName(c), nil),
			Spec: networkingv1.NetworkPolicySpec{
				PodSelector: *pods.DeepCopy(),
				PolicyTypes: ingress,
				Ingress:     metricsIngress,
			},
		},
	}
}

// PrimaryLease is the cluster's Lease, held by the instance that should be
// primary. leaseSeconds is informative (the bound after which the operator
// may promote another instance); pgward's decisions never read the Lease's
// times, only the change of its resourceVersion (plan.FenceTiming).
func PrimaryLease(c *v1.Cluster, holder string, leaseSeconds int32, now metav1.MicroTime) *coordinationv1.Lease {
	return &coordinationv1.Lease{
		ObjectMeta: objectMeta(c, LeaseName(c), nil),
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity:       &holder,
			LeaseDurationSeconds: &leaseSeconds,
			AcquireTime:          &now,
			RenewTime:            &now,
		},
	}
}
