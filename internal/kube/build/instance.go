package build

import (
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"

	v1 "github.com/pgward/pgward/api/v1"
)

// Volume names of an instance pod.
const (
	volData    = "pgdata"
	volConfig  = "pgward"
	volSocket  = "socket"
	volTmp     = "tmp"
	volToken   = "kube-api-access"
	container  = "postgres"
	pvcRWO     = corev1.ReadWriteOnce
	tokenTTL   = 3600
	secretMode = 0o400
)

// PVC is the data volume of an instance. Its size comes from
// spec.storage.size, which the admission webhook requires on Kubernetes.
//
// storage.pvcTemplate is the base of its spec (validation refuses what
// would conflict with size and storageClass, or not give each instance a
// fresh file-system volume); size, class and the default access mode are
// pgward's on top.
func PVC(c *v1.Cluster, name string) (*corev1.PersistentVolumeClaim, error) {
	st := c.Spec.StorageConfiguration
	size, err := resource.ParseQuantity(st.Size)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: spec.storage.size %q: %w", c.Name, st.Size, err)
	}
	spec := corev1.PersistentVolumeClaimSpec{}
	if t := st.PersistentVolumeClaimTemplate; t != nil {
		spec = *t.DeepCopy()
	}
	if st.StorageClass != nil {
		spec.StorageClassName = new(*st.StorageClass)
	}
	if len(spec.AccessModes) == 0 {
		spec.AccessModes = []corev1.PersistentVolumeAccessMode{pvcRWO}
	}
	if spec.Resources.Requests == nil {
		spec.Resources.Requests = corev1.ResourceList{}
	}
	spec.Resources.Requests[corev1.ResourceStorage] = size
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: objectMeta(c, name, map[string]string{InstanceLabel: name}),
		Spec:       spec,
	}, nil
}

// InstanceLabels are the labels of an instance's pod; role is RolePrimary
// or RoleReplica and decides which Services select it.
func InstanceLabels(c *v1.Cluster, name, role string) map[string]string {
	labels := commonLabels(c)
	labels[InstanceLabel] = name
	labels[RoleLabel] = role
	return labels
}

// Pod is an instance: the instance manager as PID 1 (`pgward instance run`),
// which runs PostgreSQL as its child. The pod passes the restricted Pod
// Security Standard: non-root (uid/gid 26), no privilege escalation, no
// capabilities, RuntimeDefault seccomp, read-only root filesystem.
func Pod(c *v1.Cluster, name, role string, opts Options) *corev1.Pod {
	meta := objectMeta(c, name, nil)
	meta.Labels = withInherited(c, InstanceLabels(c, name, role))
	ctr := instanceContainer(opts)
	shapeContainer(c, &ctr)
	volumes := instanceVolumes(c, name)
	if v, m := shmVolume(c); v != nil {
		volumes = append(volumes, *v)
		ctr.VolumeMounts = append(ctr.VolumeMounts, *m)
	}
	tbsVolumes, tbsMounts := tablespaceVolumes(c, name)
	volumes = append(volumes, tbsVolumes...)
	ctr.VolumeMounts = append(ctr.VolumeMounts, tbsMounts...)
	walVols, walMounts := walVolumes(c, name)
	volumes = append(volumes, walVols...)
	ctr.VolumeMounts = append(ctr.VolumeMounts, walMounts...)
	if pv := c.Spec.ProjectedVolumeTemplate; pv != nil {
		volumes = append(volumes, corev1.Volume{Name: volProjected, VolumeSource: corev1.VolumeSource{Projected: pv.DeepCopy()}})
	}
	pod := &corev1.Pod{
		ObjectMeta: meta,
		Spec: corev1.PodSpec{
			ServiceAccountName: ServiceAccountName(c),
			// The instance manager calls the API server only to renew the
			// cluster's Lease while primary (the Role allows nothing more),
			// with the short-lived token projected below rather than a
			// long-lived automounted one.
			AutomountServiceAccountToken: new(false),
			// Service environment variables would leak every Service of the
			// namespace into PostgreSQL's environment for nothing.
			EnableServiceLinks: new(false),
			// spec.stopDelay: the instance manager plans its shutdown (smart,
			// fast, immediate) to end within it (internal/instance).
			TerminationGracePeriodSeconds: new(int64(c.Spec.StopDelay() / time.Second)),
			SecurityContext:               podSecurityContext(c),
			Affinity:                      affinity(c),
			NodeSelector:                  nodeSelector(c),
			Tolerations:                   tolerations(c),
			TopologySpreadConstraints:     topologySpread(c),
			PriorityClassName:             c.Spec.PriorityClassName,
			SchedulerName:                 c.Spec.SchedulerName,
			Containers:                    []corev1.Container{ctr},
			Volumes:                       volumes,
		},
	}
	withOperandImage(pod, c, opts)
	return pod
}

// shapeContainer applies the pod-shape fields to the postgres container:
// resources, the user's environment (before pgward's, so that pgward's
// value would win a name validation let through), probe timing, the
// security context and the projected volume's read-only mount.
func shapeContainer(c *v1.Cluster, ctr *corev1.Container) {
	if r := c.Spec.Resources; r != nil {
		ctr.Resources = *r.DeepCopy()
	}
	var env []corev1.EnvVar
	for _, e := range c.Spec.Env {
		env = append(env, *e.DeepCopy())
	}
	ctr.Env = append(env, ctr.Env...)
	for _, e := range c.Spec.EnvFrom {
		ctr.EnvFrom = append(ctr.EnvFrom, *e.DeepCopy())
	}
	tuneProbes(c, ctr)
	probeLimits(c, ctr)
	ctr.SecurityContext = containerSecurityContext(c)
	if c.Spec.ProjectedVolumeTemplate != nil {
		ctr.VolumeMounts = append(ctr.VolumeMounts, corev1.VolumeMount{Name: volProjected, MountPath: v1.ProjectedVolumeMount, ReadOnly: true})
	}
}

func instanceContainer(opts Options) corev1.Container {
	probe := func(path string, period, timeout, failures int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Path: path, Port: intstr.FromString(statusPortName), Scheme: corev1.URISchemeHTTPS,
			}},
			PeriodSeconds:    period,
			TimeoutSeconds:   timeout,
			FailureThreshold: failures,
		}
	}
	// initdb or a base backup of a large primary can take long: the startup
	// probe allows spec.startDelay (probeLimits; an hour by default) before
	// liveness takes over. It looks every second, and readiness every 2 s,
	// because a pod is in no Service until its Ready condition says so: with
	// 10 s periods a pod recreated a few seconds before a failover (the old
	// primary, rejoined) was promoted while not Ready yet, and <c>-rw had no
	// endpoint for up to 20 s (docs/benchmarks.md, pod deletion). Each look
	// is one HTTPS request to the instance manager (readiness: one ping of
	// PostgreSQL).
	startup := probe("/healthz", 1, 1, 0)
	return corev1.Container{
		Name:            container,
		Image:           opts.Image,
		ImagePullPolicy: corev1.PullPolicy(opts.ImagePullPolicy),
		Command:         []string{"pgward", "instance", "run", "--config", ConfigFile},
		Ports: []corev1.ContainerPort{
			{Name: postgresPortName, ContainerPort: PostgresPort, Protocol: corev1.ProtocolTCP},
			{Name: statusPortName, ContainerPort: StatusPort, Protocol: corev1.ProtocolTCP},
			{Name: MetricsPortName, ContainerPort: MetricsPort, Protocol: corev1.ProtocolTCP},
		},
		// HOME points at the only writable scratch place, for libpq's
		// ~/.postgresql lookups.
		Env:            []corev1.EnvVar{{Name: "HOME", Value: TmpDir}},
		StartupProbe:   startup,
		LivenessProbe:  probe("/healthz", 10, 5, 3),
		ReadinessProbe: probe("/readyz", 2, 2, 3),
		SecurityContext: &corev1.SecurityContext{
			RunAsNonRoot:             new(true),
			RunAsUser:                new(PostgresUID),
			RunAsGroup:               new(PostgresGID),
			AllowPrivilegeEscalation: new(false),
			Privileged:               new(false),
			ReadOnlyRootFilesystem:   new(true),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		VolumeMounts: []corev1.VolumeMount{
			{Name: volData, MountPath: DataMount},
			{Name: volConfig, MountPath: ConfigDir, ReadOnly: true},
			{Name: volSocket, MountPath: SocketDir},
			{Name: volTmp, MountPath: TmpDir},
			{Name: volToken, MountPath: TokenDir, ReadOnly: true},
		},
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
}

// instanceVolumes are the data PVC, the projected configuration and
// secrets, two small emptyDirs (the socket directory and /tmp: the only
// writable paths outside the data volume) and the service account token.
func instanceVolumes(c *v1.Cluster, name string) []corev1.Volume {
	return []corev1.Volume{
		{Name: volData, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: name},
		}},
		{Name: volConfig, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			DefaultMode: new(int32(secretMode)),
			Sources:     configProjection(c, name),
		}}},
		{Name: volSocket, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
			Medium: corev1.StorageMediumMemory, SizeLimit: new(resource.MustParse("1Mi")),
		}}},
		scratchVolume(c),
		{Name: volToken, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			DefaultMode: new(int32(0o444)),
			Sources: []corev1.VolumeProjection{
				{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
					Path: "token", ExpirationSeconds: new(int64(tokenTTL)),
				}},
				{ConfigMap: &corev1.ConfigMapProjection{
					LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"},
					Items:                []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}},
				}},
				{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{
					Path: "namespace", FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"},
				}}}},
			},
		}}},
	}
}

// configProjection lays out /etc/pgward: config.json and cluster.json, and
// under secrets/<secret>/<key> exactly the keys the instance manager reads,
// in the layout of the local runtime's secret directories. One projected
// volume instead of a volume per secret keeps every key a regular file
// inside its secret's directory (the instance manager refuses symbolic
// links there), and leaves out what pods must never hold: the CA's key and
// the operator's client certificate.
func configProjection(c *v1.Cluster, name string) []corev1.VolumeProjection {
	n := Secrets(c)
	type want struct{ secret, key string }
	wants := []want{
		{n.ServerTLS, KeyTLSCert}, {n.ServerTLS, KeyTLSKey},
		{n.ServerCA, KeyCACert}, {n.ClientCA, KeyCACert},
		{n.Replication, KeyTLSCert}, {n.Replication, KeyTLSKey},
		{n.App, "username"}, {n.App, "password"},
	}
	if n.Superuser != "" {
		wants = append(wants, want{n.Superuser, "username"}, want{n.Superuser, "password"})
	}
	// The object stores' credentials, CA and encryption key (spec.backup
	// and the external clusters a recovery reads): the instance manager
	// renders pgBackRest's configuration from these files, and names the
	// CA's file in it. Nothing of them reaches the environment or argv.
	for _, u := range c.BackupSecretKeys() {
		wants = append(wants, want{u.Name, u.Key})
	}
	// postgresql.ldap's bind password (the instance manager writes it
	// into pg_hba.conf, 0600) and the LDAP server's CA (named in
	// postgres' environment as LDAPTLS_CACERT): files only, never in the
	// environment's values or argv.
	for _, u := range c.LDAPSecretKeys() {
		wants = append(wants, want{u.Name, u.Key})
	}
	// The managed roles' password secrets, optional: a secret that does
	// not exist (yet) must not keep the pod from starting; the instance
	// manager reports the role it cannot reconcile, the operator the
	// missing secret (condition ManagedRoles), and the kubelet projects
	// the secret once it exists, and its new content when it changes.
	optional := map[string]bool{}
	for _, s := range RoleSecretNames(c) {
		if !slices.ContainsFunc(wants, func(w want) bool { return w.secret == s }) {
			optional[s] = true
		}
		for _, k := range RoleSecretKeys {
			wants = append(wants, want{s, k})
		}
	}
	// One projection per secret, in first-use order; a secret used twice
	// (the CA for both server and client) contributes each key once.
	var order []string
	items := map[string][]corev1.KeyToPath{}
	for _, w := range wants {
		path := "secrets/" + w.secret + "/" + w.key
		if slices.ContainsFunc(items[w.secret], func(k corev1.KeyToPath) bool { return k.Path == path }) {
			continue
		}
		if _, ok := items[w.secret]; !ok {
			order = append(order, w.secret)
		}
		items[w.secret] = append(items[w.secret], corev1.KeyToPath{Key: w.key, Path: path})
	}
	out := []corev1.VolumeProjection{{Secret: &corev1.SecretProjection{
		LocalObjectReference: corev1.LocalObjectReference{Name: InstanceConfigSecretName(name)},
		Items:                configItems(c),
	}}}
	for _, s := range order {
		p := &corev1.SecretProjection{
			LocalObjectReference: corev1.LocalObjectReference{Name: s},
			Items:                items[s],
		}
		if optional[s] {
			p.Optional = new(true)
		}
		out = append(out, corev1.VolumeProjection{Secret: p})
	}
	return out
}

// configItems are the keys of the instance config Secret a pod reads:
// config.json, cluster.json, the custom queries, the declared databases and, with SQL
// references, their SQL.
func configItems(c *v1.Cluster) []corev1.KeyToPath {
	items := []corev1.KeyToPath{
		{Key: configKeyJSON, Path: configKeyJSON},
		{Key: clusterKeyJSON, Path: clusterKeyJSON},
		{Key: CustomQueriesKey, Path: CustomQueriesKey},
		{Key: DatabasesKey, Path: DatabasesKey},
	}
	if c.Spec.HasSQLRefs() {
		items = append(items, corev1.KeyToPath{Key: BootstrapSQLKey, Path: BootstrapSQLKey})
	}
	return items
}
