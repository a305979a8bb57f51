package v1

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/pgward/pgward/internal/safetext"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// PostgresUID and PostgresGID are the user and group PostgreSQL runs as in
// pgward's image (CloudNativePG's postgresUID/postgresGID 26): the data
// volume belongs to them, so a security context may only name them.
const (
	PostgresUID int64 = 26
	PostgresGID int64 = 26
)

// MaxDescriptionLength bounds spec.description.
const MaxDescriptionLength = 4096

// ProjectedVolumeMount is where projectedVolumeTemplate is mounted,
// read-only, as CloudNativePG mounts it.
const ProjectedVolumeMount = "/projected"

// PodShapeFields lists the top-level fields that shape the pods (and their
// volumes) and nothing else; `local up` names the ones a manifest sets.
func (s *ClusterSpec) PodShapeFields() []string {
	var out []string
	add := func(set bool, name string) {
		if set {
			out = append(out, name)
		}
	}
	add(s.Affinity != nil, "affinity")
	add(len(s.TopologySpreadConstraints) > 0, "topologySpreadConstraints")
	add(s.PriorityClassName != "", "priorityClassName")
	add(s.SchedulerName != "", "schedulerName")
	add(s.Resources != nil, "resources")
	add(len(s.Env) > 0, "env")
	add(len(s.EnvFrom) > 0, "envFrom")
	add(s.InheritedMetadata != nil, "inheritedMetadata")
	add(s.PodSecurityContext != nil, "podSecurityContext")
	add(s.SecurityContext != nil, "securityContext")
	add(s.SeccompProfile != nil, "seccompProfile")
	add(s.Probes != nil, "probes")
	add(s.ProjectedVolumeTemplate != nil, "projectedVolumeTemplate")
	add(s.ServiceAccountTemplate != nil, "serviceAccountTemplate")
	add(s.EnablePDB != nil, "enablePDB")
	add(s.StorageConfiguration.PersistentVolumeClaimTemplate != nil, "storage.pvcTemplate")
	return out
}

// setStorageDefaults takes the size and class a pvcTemplate gives when
// storage.size or storage.storageClass is left out, so that everything
// downstream (the PVCs, the shrink check) reads one value.
func setStorageDefaults(st *StorageConfiguration) {
	t := st.PersistentVolumeClaimTemplate
	if t == nil {
		return
	}
	if q, ok := t.Resources.Requests[corev1.ResourceStorage]; ok && st.Size == "" {
		st.Size = q.String()
	}
	if t.StorageClassName != nil && st.StorageClass == nil {
		st.StorageClass = new(*t.StorageClassName)
	}
}

// validatePodShape checks the pod-shape fields. The API server checks
// pods again when the operator creates them; these checks are the ones a
// user must see at admission (or at `pgward validate`), naming the field:
// everything that would weaken the pods' security, and what would make
// every pod creation fail.
func (s *ClusterSpec) validatePodShape(p *field.Path, clusterName string) field.ErrorList {
	var errs field.ErrorList
	// Shown on terminals (`local up`, kubectl): no control characters,
	// which could rewrite what the terminal shows.
	if err := safetext.Check(s.Description); err != nil {
		errs = append(errs, field.Invalid(p.Child("description"), field.OmitValueType{}, err.Error()))
	}
	if len(s.Description) > MaxDescriptionLength {
		errs = append(errs, field.TooLong(p.Child("description"), "", MaxDescriptionLength))
	}
	if s.Affinity != nil {
		errs = append(errs, validateAffinity(s.Affinity, p.Child("affinity"))...)
	}
	for i, t := range s.TopologySpreadConstraints {
		tp := p.Child("topologySpreadConstraints").Index(i)
		if t.MaxSkew < 1 {
			errs = append(errs, field.Invalid(tp.Child("maxSkew"), t.MaxSkew, "must be at least 1"))
		}
		errs = append(errs, validateTopologyKey(t.TopologyKey, tp.Child("topologyKey"))...)
		switch t.WhenUnsatisfiable {
		case corev1.DoNotSchedule, corev1.ScheduleAnyway:
		default:
			errs = append(errs, field.NotSupported(tp.Child("whenUnsatisfiable"), t.WhenUnsatisfiable,
				[]string{string(corev1.DoNotSchedule), string(corev1.ScheduleAnyway)}))
		}
		errs = append(errs, validateSelector(t.LabelSelector, tp.Child("labelSelector"))...)
	}
	if s.PriorityClassName != "" {
		errs = append(errs, dnsErrors(p.Child("priorityClassName"), s.PriorityClassName, validation.IsDNS1123Subdomain)...)
	}
	if s.SchedulerName != "" {
		errs = append(errs, dnsErrors(p.Child("schedulerName"), s.SchedulerName, validation.IsDNS1123Subdomain)...)
	}
	if s.Resources != nil {
		errs = append(errs, validateResources(*s.Resources, p.Child("resources"))...)
	}
	errs = append(errs, s.validateEnv(p, clusterName)...)
	if m := s.InheritedMetadata; m != nil {
		errs = append(errs, validateInheritedMetadata(m, p.Child("inheritedMetadata"))...)
	}
	if t := s.ServiceAccountTemplate; t != nil {
		errs = append(errs, validateInheritedMetadata(&t.Metadata, p.Child("serviceAccountTemplate", "metadata"))...)
	}
	errs = append(errs, validatePodSecurityContext(s.PodSecurityContext, p.Child("podSecurityContext"))...)
	errs = append(errs, validateContainerSecurityContext(s.SecurityContext, p.Child("securityContext"))...)
	errs = append(errs, validateSeccomp(s.SeccompProfile, p.Child("seccompProfile"))...)
	errs = append(errs, validateProbes(s.Probes, p.Child("probes"))...)
	errs = append(errs, s.validateProjectedVolume(p.Child("projectedVolumeTemplate"), clusterName)...)
	errs = append(errs, validatePVCTemplate(s.StorageConfiguration, p.Child("storage"))...)
	return errs
}

func validateAffinity(a *AffinityConfiguration, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch a.PodAntiAffinityType {
	case "", "preferred", "required":
	default:
		errs = append(errs, field.NotSupported(p.Child("podAntiAffinityType"), a.PodAntiAffinityType, []string{"preferred", "required"}))
	}
	if a.TopologyKey != "" {
		errs = append(errs, validateTopologyKey(a.TopologyKey, p.Child("topologyKey"))...)
	}
	errs = append(errs, metav1validation.ValidateLabels(a.NodeSelector, p.Child("nodeSelector"))...)
	for i, t := range a.Tolerations {
		tp := p.Child("tolerations").Index(i)
		if t.Key != "" {
			errs = append(errs, metav1validation.ValidateLabelName(t.Key, tp.Child("key"))...)
		}
		switch t.Operator {
		case "", corev1.TolerationOpEqual:
		case corev1.TolerationOpExists:
			if t.Value != "" {
				errs = append(errs, field.Invalid(tp.Child("value"), t.Value, "must be empty when operator is Exists"))
			}
		default:
			errs = append(errs, field.NotSupported(tp.Child("operator"), t.Operator, []string{string(corev1.TolerationOpEqual), string(corev1.TolerationOpExists)}))
		}
		switch t.Effect {
		case "", corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
		default:
			errs = append(errs, field.NotSupported(tp.Child("effect"), t.Effect, []string{"NoSchedule", "PreferNoSchedule", "NoExecute"}))
		}
		if t.TolerationSeconds != nil && t.Effect != corev1.TaintEffectNoExecute {
			errs = append(errs, field.Invalid(tp.Child("tolerationSeconds"), *t.TolerationSeconds, "only applies to effect NoExecute"))
		}
	}
	if aa := a.AdditionalPodAntiAffinity; aa != nil {
		errs = append(errs, validatePodAffinityTerms(aa.RequiredDuringSchedulingIgnoredDuringExecution, aa.PreferredDuringSchedulingIgnoredDuringExecution, p.Child("additionalPodAntiAffinity"))...)
	}
	if pa := a.AdditionalPodAffinity; pa != nil {
		errs = append(errs, validatePodAffinityTerms(pa.RequiredDuringSchedulingIgnoredDuringExecution, pa.PreferredDuringSchedulingIgnoredDuringExecution, p.Child("additionalPodAffinity"))...)
	}
	return errs
}

func validatePodAffinityTerms(req []corev1.PodAffinityTerm, pref []corev1.WeightedPodAffinityTerm, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	term := func(t corev1.PodAffinityTerm, tp *field.Path) {
		errs = append(errs, validateTopologyKey(t.TopologyKey, tp.Child("topologyKey"))...)
		errs = append(errs, validateSelector(t.LabelSelector, tp.Child("labelSelector"))...)
		errs = append(errs, validateSelector(t.NamespaceSelector, tp.Child("namespaceSelector"))...)
	}
	for i, t := range req {
		term(t, p.Child("requiredDuringSchedulingIgnoredDuringExecution").Index(i))
	}
	for i, w := range pref {
		wp := p.Child("preferredDuringSchedulingIgnoredDuringExecution").Index(i)
		if w.Weight < 1 || w.Weight > 100 {
			errs = append(errs, field.Invalid(wp.Child("weight"), w.Weight, "must be between 1 and 100"))
		}
		term(w.PodAffinityTerm, wp.Child("podAffinityTerm"))
	}
	return errs
}

func validateTopologyKey(key string, p *field.Path) field.ErrorList {
	if key == "" {
		return field.ErrorList{field.Required(p, "a node label, e.g. kubernetes.io/hostname or topology.kubernetes.io/zone")}
	}
	return metav1validation.ValidateLabelName(key, p)
}

func validateSelector(s *metav1.LabelSelector, p *field.Path) field.ErrorList {
	if s == nil {
		return nil
	}
	return metav1validation.ValidateLabelSelector(s, metav1validation.LabelSelectorValidationOptions{}, p)
}

// validateResources checks the container's requests and limits: known
// quantities, no negative one, no request above its limit (the API server
// would refuse every pod), and no dynamic resource claims, which need
// ResourceClaims pgward does not make.
func validateResources(r corev1.ResourceRequirements, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	check := func(list corev1.ResourceList, lp *field.Path) {
		for _, name := range slices.Sorted(keysOf(list)) {
			q := list[name]
			np := lp.Key(string(name))
			if q.Sign() < 0 {
				errs = append(errs, field.Invalid(np, q.String(), "must not be negative"))
			}
			if string(name) != string(corev1.ResourceCPU) && string(name) != string(corev1.ResourceMemory) &&
				string(name) != string(corev1.ResourceEphemeralStorage) && !strings.HasPrefix(string(name), corev1.ResourceHugePagesPrefix) {
				errs = append(errs, field.NotSupported(np, string(name), []string{"cpu", "memory", "ephemeral-storage", "hugepages-<size>"}))
			}
		}
	}
	check(r.Requests, p.Child("requests"))
	check(r.Limits, p.Child("limits"))
	for _, name := range slices.Sorted(keysOf(r.Requests)) {
		limit, ok := r.Limits[name]
		if req := r.Requests[name]; ok && req.Cmp(limit) > 0 {
			errs = append(errs, field.Invalid(p.Child("requests").Key(string(name)), req.String(),
				fmt.Sprintf("must not be more than the limit (%s)", limit.String())))
		}
	}
	if len(r.Claims) > 0 {
		errs = append(errs, field.Forbidden(p.Child("claims"), "dynamic resource claims are not supported: pgward makes no ResourceClaim for the pods"))
	}
	return errs
}

func keysOf[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// Environment variables the postgres container may not get from the user,
// compared without regard to case. Each class is something a process in
// the container reads that would change what pgward secured: pgward's own
// settings, libpq's and PostgreSQL's (PGPASSWORD, PGSSLMODE, PGDATA...),
// pgBackRest's options (PGBACKREST_REPO1_CIPHER_TYPE would turn off the
// backups' encryption), the dynamic loader's and glibc's (LD_PRELOAD,
// GCONV_PATH, GLIBC_TUNABLES load code), the shells' that archive_command
// runs in (BASH_ENV, ENV), OpenSSL's and Kerberos' configuration, TLS
// trust (SSL_CERT_FILE), the Go runtime's (GODEBUG re-enables weak TLS),
// proxies the object store's traffic would go through, the Kubernetes
// service variables, and the locale initdb would otherwise take.
var (
	reservedEnvPrefixes = []string{
		"PG", "LD_", "LC_", "OPENSSL_", "KRB5", "MALLOC_", "BASH_FUNC_", "KUBERNETES_",
	}
	reservedEnvNames = []string{
		"HOME", "PATH", "TMPDIR", "SHELL", "ENV", "BASH_ENV", "IFS", "CDPATH", "PS4", "SHELLOPTS", "BASHOPTS",
		"GLIBC_TUNABLES", "GCONV_PATH", "NLSPATH", "LOCPATH", "HOSTALIASES", "RESOLV_HOST_CONF", "LOCALDOMAIN", "RES_OPTIONS",
		"LANG", "LANGUAGE", "SSL_CERT_FILE", "SSL_CERT_DIR", "KUBECONFIG",
		"GODEBUG", "GOGC", "GOMAXPROCS", "GOMEMLIMIT", "GOTRACEBACK", "GOFIPS140", "GORACE", "GOCOVERDIR",
		"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY",
	}
)

// reservedEnv explains why a variable name is refused, or returns "".
func reservedEnv(name string) string {
	u := strings.ToUpper(name)
	if slices.Contains(reservedEnvNames, u) {
		return "pgward sets it or a process in the container reads it in a way that changes what pgward secured"
	}
	for _, pre := range reservedEnvPrefixes {
		if strings.HasPrefix(u, pre) {
			return fmt.Sprintf("names starting with %s are read by pgward, PostgreSQL, libpq, pgBackRest or the system in ways that change what pgward secured", pre)
		}
	}
	return ""
}

// reservedEnvPrefix explains why an envFrom prefix is refused: the keys of
// a ConfigMap or Secret are not known at admission (and change later), so
// the prefix itself must make every name it can produce a free one.
func reservedEnvPrefix(prefix string) string {
	u := strings.ToUpper(prefix)
	if u == "" {
		return "required: the keys of a ConfigMap or Secret are not known in advance, and a prefix (e.g. APP_) keeps them from setting a variable pgward or PostgreSQL reads"
	}
	for _, n := range reservedEnvNames {
		if strings.HasPrefix(n, u) {
			return fmt.Sprintf("a key could complete it to %s, which is refused", n)
		}
	}
	for _, pre := range reservedEnvPrefixes {
		if strings.HasPrefix(pre, u) || strings.HasPrefix(u, pre) {
			return fmt.Sprintf("a key could complete it to a name starting with %s, which is refused", pre)
		}
	}
	return ""
}

func (s *ClusterSpec) validateEnv(p *field.Path, clusterName string) field.ErrorList {
	env, from := s.Env, s.EnvFrom
	var errs field.ErrorList
	for i, e := range env {
		np := p.Child("env").Index(i).Child("name")
		for _, msg := range validation.IsEnvVarName(e.Name) {
			errs = append(errs, field.Invalid(np, e.Name, msg))
		}
		if why := reservedEnv(e.Name); why != "" {
			errs = append(errs, field.Forbidden(np, fmt.Sprintf("%q cannot be set: %s", e.Name, why)))
		}
		if e.Value != "" && e.ValueFrom != nil {
			errs = append(errs, field.Invalid(p.Child("env").Index(i).Child("valueFrom"), "", "give value or valueFrom, not both"))
		}
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			if why := s.pgwardSecret(e.ValueFrom.SecretKeyRef.Name, clusterName); why != "" {
				errs = append(errs, field.Forbidden(p.Child("env").Index(i).Child("valueFrom", "secretKeyRef", "name"), why))
			}
		}
	}
	for i, f := range from {
		fp := p.Child("envFrom").Index(i)
		if f.Prefix != "" {
			for _, msg := range validation.IsEnvVarName(f.Prefix) {
				errs = append(errs, field.Invalid(fp.Child("prefix"), f.Prefix, msg))
			}
		}
		if why := reservedEnvPrefix(f.Prefix); why != "" {
			errs = append(errs, field.Forbidden(fp.Child("prefix"), why))
		}
		switch {
		case (f.ConfigMapRef == nil) == (f.SecretRef == nil):
			errs = append(errs, field.Invalid(fp, "", "give exactly one of configMapRef and secretRef"))
		case f.ConfigMapRef != nil:
			errs = append(errs, dnsErrors(fp.Child("configMapRef", "name"), f.ConfigMapRef.Name, validation.IsDNS1123Subdomain)...)
		default:
			errs = append(errs, dnsErrors(fp.Child("secretRef", "name"), f.SecretRef.Name, validation.IsDNS1123Subdomain)...)
			if why := s.pgwardSecret(f.SecretRef.Name, clusterName); why != "" {
				errs = append(errs, field.Forbidden(fp.Child("secretRef", "name"), why))
			}
		}
	}
	return errs
}

// validateInheritedMetadata refuses keys that belong to pgward (its labels
// select the pods for the Services and budgets; its annotations drive the
// operator), to Kubernetes itself (kubernetes.io and k8s.io prefixes: they
// change how Kubernetes treats an object), and the annotations that set a
// pod's AppArmor or seccomp profile from outside its security context.
func validateInheritedMetadata(m *EmbeddedObjectMetadata, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	errs = append(errs, metav1validation.ValidateLabels(m.Labels, p.Child("labels"))...)
	for _, k := range slices.Sorted(keysOf(m.Labels)) {
		if why := reservedMetadataKey(k); why != "" {
			errs = append(errs, field.Forbidden(p.Child("labels").Key(k), why))
		}
	}
	var size int
	for _, k := range slices.Sorted(keysOf(m.Annotations)) {
		kp := p.Child("annotations").Key(k)
		size += len(k) + len(m.Annotations[k])
		for _, msg := range validation.IsQualifiedName(strings.ToLower(k)) {
			errs = append(errs, field.Invalid(kp, k, msg))
		}
		if why := reservedMetadataKey(k); why != "" {
			errs = append(errs, field.Forbidden(kp, why))
		}
	}
	if size > 64<<10 {
		errs = append(errs, field.TooLong(p.Child("annotations"), "", 64<<10))
	}
	return errs
}

// pgwardLabelKeys are the app.kubernetes.io labels pgward sets.
var pgwardLabelKeys = []string{"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/managed-by", "app.kubernetes.io/component"}

func reservedMetadataKey(key string) string {
	prefix, _, ok := strings.Cut(strings.ToLower(key), "/")
	if !ok {
		return ""
	}
	under := func(domain string) bool { return prefix == domain || strings.HasSuffix(prefix, "."+domain) }
	switch {
	case slices.Contains(pgwardLabelKeys, strings.ToLower(key)):
		return "pgward sets this key on its objects"
	case under("pgward.io"):
		return "keys under pgward.io are pgward's own (the Services and disruption budgets select pods by them)"
	case under("cnpg.io") || under("k8s.enterprisedb.io"):
		return "a CloudNativePG key: nothing reads it here"
	case strings.Contains(prefix, "apparmor") || strings.Contains(prefix, "seccomp"):
		return "a pod's AppArmor and seccomp profiles are set by its security context, within the restricted profile"
	case under("kubernetes.io") || under("k8s.io"):
		return "keys under kubernetes.io and k8s.io belong to Kubernetes and change how it treats the object"
	}
	return ""
}

// validatePodSecurityContext keeps the pod within the restricted Pod
// Security Standard and pgward's user: it runs as user and group 26 (the
// data volume's owner), non-root, with a RuntimeDefault or Localhost
// seccomp profile, and no sysctls, Windows options or root group.
func validatePodSecurityContext(sc *corev1.PodSecurityContext, p *field.Path) field.ErrorList {
	if sc == nil {
		return nil
	}
	var errs field.ErrorList
	errs = append(errs, onlyID(sc.RunAsUser, PostgresUID, p.Child("runAsUser"), "user")...)
	errs = append(errs, onlyID(sc.RunAsGroup, PostgresGID, p.Child("runAsGroup"), "group")...)
	errs = append(errs, onlyID(sc.FSGroup, PostgresGID, p.Child("fsGroup"), "group")...)
	if sc.RunAsNonRoot != nil && !*sc.RunAsNonRoot {
		errs = append(errs, field.Forbidden(p.Child("runAsNonRoot"), "must be true: nothing of pgward runs as root"))
	}
	for i, g := range sc.SupplementalGroups {
		if g <= 0 {
			errs = append(errs, field.Forbidden(p.Child("supplementalGroups").Index(i), "the root group (0) or a negative id would give the pod root's group files"))
		}
	}
	if len(sc.Sysctls) > 0 {
		errs = append(errs, field.Forbidden(p.Child("sysctls"), "PostgreSQL needs no kernel setting from its pod"))
	}
	if sc.WindowsOptions != nil {
		errs = append(errs, field.Forbidden(p.Child("windowsOptions"), "the instances run on Linux"))
	}
	errs = append(errs, validateSELinux(sc.SELinuxOptions, p.Child("seLinuxOptions"))...)
	errs = append(errs, validateSeccomp(sc.SeccompProfile, p.Child("seccompProfile"))...)
	errs = append(errs, validateAppArmor(sc.AppArmorProfile, p.Child("appArmorProfile"))...)
	return errs
}

// validateContainerSecurityContext keeps the postgres container within the
// restricted profile and pgward's choices: no privilege, no escalation,
// every capability dropped (NET_BIND_SERVICE, the only one restricted
// allows, may be added back), non-root user 26, a read-only root file
// system, the default /proc mount.
func validateContainerSecurityContext(sc *corev1.SecurityContext, p *field.Path) field.ErrorList {
	if sc == nil {
		return nil
	}
	var errs field.ErrorList
	if sc.Privileged != nil && *sc.Privileged {
		errs = append(errs, field.Forbidden(p.Child("privileged"), "must be false: no privileged containers"))
	}
	if sc.AllowPrivilegeEscalation != nil && *sc.AllowPrivilegeEscalation {
		errs = append(errs, field.Forbidden(p.Child("allowPrivilegeEscalation"), "must be false: no privilege escalation"))
	}
	if sc.RunAsNonRoot != nil && !*sc.RunAsNonRoot {
		errs = append(errs, field.Forbidden(p.Child("runAsNonRoot"), "must be true: nothing of pgward runs as root"))
	}
	if sc.ReadOnlyRootFilesystem != nil && !*sc.ReadOnlyRootFilesystem {
		errs = append(errs, field.Forbidden(p.Child("readOnlyRootFilesystem"), "must be true: the data volume, the socket directory and /tmp are the only writable places"))
	}
	errs = append(errs, onlyID(sc.RunAsUser, PostgresUID, p.Child("runAsUser"), "user")...)
	errs = append(errs, onlyID(sc.RunAsGroup, PostgresGID, p.Child("runAsGroup"), "group")...)
	if c := sc.Capabilities; c != nil {
		if !slices.Contains(c.Drop, "ALL") {
			errs = append(errs, field.Forbidden(p.Child("capabilities", "drop"), "must include ALL: the container holds no capability"))
		}
		for i, a := range c.Add {
			if a != "NET_BIND_SERVICE" {
				errs = append(errs, field.Forbidden(p.Child("capabilities", "add").Index(i),
					fmt.Sprintf("%q cannot be added: the restricted profile allows NET_BIND_SERVICE only", a)))
			}
		}
	}
	if sc.ProcMount != nil && *sc.ProcMount != corev1.DefaultProcMount {
		errs = append(errs, field.NotSupported(p.Child("procMount"), *sc.ProcMount, []string{string(corev1.DefaultProcMount)}))
	}
	if sc.WindowsOptions != nil {
		errs = append(errs, field.Forbidden(p.Child("windowsOptions"), "the instances run on Linux"))
	}
	errs = append(errs, validateSELinux(sc.SELinuxOptions, p.Child("seLinuxOptions"))...)
	errs = append(errs, validateSeccomp(sc.SeccompProfile, p.Child("seccompProfile"))...)
	errs = append(errs, validateAppArmor(sc.AppArmorProfile, p.Child("appArmorProfile"))...)
	return errs
}

func onlyID(id *int64, want int64, p *field.Path, what string) field.ErrorList {
	if id == nil || *id == want {
		return nil
	}
	return field.ErrorList{field.Forbidden(p, fmt.Sprintf("must be %d (or left out): PostgreSQL runs as the image's postgres %s %d, which owns the data volume; %d is not", want, what, want, *id))}
}

func validateSeccomp(sp *corev1.SeccompProfile, p *field.Path) field.ErrorList {
	if sp == nil {
		return nil
	}
	switch sp.Type {
	case corev1.SeccompProfileTypeRuntimeDefault:
		if sp.LocalhostProfile != nil {
			return field.ErrorList{field.Invalid(p.Child("localhostProfile"), *sp.LocalhostProfile, "only with type Localhost")}
		}
	case corev1.SeccompProfileTypeLocalhost:
		if sp.LocalhostProfile == nil || !isRelativeFile(*sp.LocalhostProfile) {
			return field.ErrorList{field.Required(p.Child("localhostProfile"), "a relative path under the kubelet's seccomp directory, without ..")}
		}
	default:
		return field.ErrorList{field.NotSupported(p.Child("type"), sp.Type,
			[]string{string(corev1.SeccompProfileTypeRuntimeDefault), string(corev1.SeccompProfileTypeLocalhost)})}
	}
	return nil
}

func validateAppArmor(ap *corev1.AppArmorProfile, p *field.Path) field.ErrorList {
	if ap == nil {
		return nil
	}
	switch ap.Type {
	case corev1.AppArmorProfileTypeRuntimeDefault:
	case corev1.AppArmorProfileTypeLocalhost:
		if ap.LocalhostProfile == nil || *ap.LocalhostProfile == "" {
			return field.ErrorList{field.Required(p.Child("localhostProfile"), "the name of a profile loaded on the node")}
		}
	default:
		return field.ErrorList{field.NotSupported(p.Child("type"), ap.Type,
			[]string{string(corev1.AppArmorProfileTypeRuntimeDefault), string(corev1.AppArmorProfileTypeLocalhost)})}
	}
	return nil
}

// validateSELinux allows what the restricted profile allows: the container
// types and a level, never a user or a role.
func validateSELinux(se *corev1.SELinuxOptions, p *field.Path) field.ErrorList {
	if se == nil {
		return nil
	}
	var errs field.ErrorList
	if se.User != "" {
		errs = append(errs, field.Forbidden(p.Child("user"), "the restricted profile allows no SELinux user"))
	}
	if se.Role != "" {
		errs = append(errs, field.Forbidden(p.Child("role"), "the restricted profile allows no SELinux role"))
	}
	switch se.Type {
	case "", "container_t", "container_init_t", "container_kvm_t", "container_engine_t":
	default:
		errs = append(errs, field.NotSupported(p.Child("type"), se.Type, []string{"container_t", "container_init_t", "container_kvm_t", "container_engine_t"}))
	}
	return errs
}

func isRelativeFile(s string) bool {
	return s != "" && !path.IsAbs(s) && !slices.Contains(strings.Split(s, "/"), "..")
}

// maxProbeLag bounds maximumLag: 1 TiB of WAL is beyond any lag a
// readiness check means to tolerate, and keeps the byte count far from
// int64's edge where it is compared.
var maxProbeLag = resource.MustParse("1Ti")

// validateProbes checks the timing fields as the API server would check
// the probes they end up in.
func validateProbes(pc *ProbesConfiguration, p *field.Path) field.ErrorList {
	if pc == nil {
		return nil
	}
	var errs field.ErrorList
	check := func(pr *Probe, pp *field.Path, successMustBeOne bool) {
		for _, f := range []struct {
			name string
			v    int32
		}{
			{"initialDelaySeconds", pr.InitialDelaySeconds}, {"timeoutSeconds", pr.TimeoutSeconds},
			{"periodSeconds", pr.PeriodSeconds}, {"successThreshold", pr.SuccessThreshold}, {"failureThreshold", pr.FailureThreshold},
		} {
			if f.v < 0 {
				errs = append(errs, field.Invalid(pp.Child(f.name), f.v, "must not be negative"))
			}
		}
		if successMustBeOne && pr.SuccessThreshold > 1 {
			errs = append(errs, field.Invalid(pp.Child("successThreshold"), pr.SuccessThreshold, "must be 1 for a startup or liveness probe"))
		}
		if t := pr.TerminationGracePeriodSeconds; t != nil && *t < 1 {
			errs = append(errs, field.Invalid(pp.Child("terminationGracePeriodSeconds"), *t, "must be at least 1"))
		}
	}
	strategy := func(ps *ProbeWithStrategy, pp *field.Path) {
		switch ps.Type {
		case "", ProbeStrategyStreaming, ProbeStrategyQuery:
		case "pg_isready":
			errs = append(errs, field.Invalid(pp.Child("type"), ps.Type,
				"pgward does not run pg_isready: leave type out for pgward's own check, or use streaming or query"))
		default:
			errs = append(errs, field.NotSupported(pp.Child("type"), ps.Type, []string{string(ProbeStrategyStreaming), string(ProbeStrategyQuery)}))
		}
		if ps.MaximumLag == nil {
			return
		}
		switch {
		case ps.Type != ProbeStrategyStreaming:
			errs = append(errs, field.Invalid(pp.Child("maximumLag"), ps.MaximumLag.String(), "needs type: streaming (the lag of a streaming replica)"))
		case ps.MaximumLag.Sign() < 0:
			errs = append(errs, field.Invalid(pp.Child("maximumLag"), ps.MaximumLag.String(), "must not be negative"))
		case ps.MaximumLag.Cmp(maxProbeLag) > 0:
			errs = append(errs, field.Invalid(pp.Child("maximumLag"), ps.MaximumLag.String(), "must be at most "+maxProbeLag.String()))
		}
	}
	if pc.Startup != nil {
		check(&pc.Startup.Probe, p.Child("startup"), true)
		strategy(pc.Startup, p.Child("startup"))
	}
	if pc.Liveness != nil {
		check(&pc.Liveness.Probe, p.Child("liveness"), true)
	}
	if pc.Readiness != nil {
		check(&pc.Readiness.Probe, p.Child("readiness"), false)
		strategy(pc.Readiness, p.Child("readiness"))
		if pc.Readiness.TerminationGracePeriodSeconds != nil {
			errs = append(errs, field.Forbidden(p.Child("readiness", "terminationGracePeriodSeconds"), "Kubernetes allows it on startup and liveness probes only"))
		}
	}
	return errs
}

// validateProjectedVolume allows ConfigMaps, Secrets and the downward API.
// Never pgward's own secrets of the cluster (the CA's key and the
// operator's and scraper's client certificates must stay out of the pods;
// the pods already get what they need of the others), nor a service
// account token (the pods' identity is pgward's, and anything that can
// read the pod's files could act as it), nor anything else.
func (s *ClusterSpec) validateProjectedVolume(p *field.Path, clusterName string) field.ErrorList {
	pv := s.ProjectedVolumeTemplate
	if pv == nil {
		return nil
	}
	var errs field.ErrorList
	if len(pv.Sources) == 0 {
		errs = append(errs, field.Required(p.Child("sources"), "at least one source"))
	}
	items := func(list []corev1.KeyToPath, ip *field.Path) {
		for i, it := range list {
			if !isRelativeFile(it.Path) {
				errs = append(errs, field.Invalid(ip.Index(i).Child("path"), it.Path, "must be a relative path without .."))
			}
		}
	}
	for i, src := range pv.Sources {
		sp := p.Child("sources").Index(i)
		n := 0
		if src.Secret != nil {
			n++
			errs = append(errs, dnsErrors(sp.Child("secret", "name"), src.Secret.Name, validation.IsDNS1123Subdomain)...)
			if why := s.pgwardSecret(src.Secret.Name, clusterName); why != "" {
				errs = append(errs, field.Forbidden(sp.Child("secret", "name"), why))
			}
			items(src.Secret.Items, sp.Child("secret", "items"))
		}
		if src.ConfigMap != nil {
			n++
			errs = append(errs, dnsErrors(sp.Child("configMap", "name"), src.ConfigMap.Name, validation.IsDNS1123Subdomain)...)
			items(src.ConfigMap.Items, sp.Child("configMap", "items"))
		}
		if src.DownwardAPI != nil {
			n++
			for j, it := range src.DownwardAPI.Items {
				if !isRelativeFile(it.Path) {
					errs = append(errs, field.Invalid(sp.Child("downwardAPI", "items").Index(j).Child("path"), it.Path, "must be a relative path without .."))
				}
			}
		}
		if src.ServiceAccountToken != nil {
			errs = append(errs, field.Forbidden(sp.Child("serviceAccountToken"), "the pods' service account is pgward's: a token of it in a volume could be read and used by whoever reads the pod's files"))
		}
		if src.ClusterTrustBundle != nil || src.PodCertificate != nil {
			errs = append(errs, field.Forbidden(sp, "only secret, configMap and downwardAPI sources are supported"))
		}
		if n != 1 && src.ServiceAccountToken == nil && src.ClusterTrustBundle == nil && src.PodCertificate == nil {
			errs = append(errs, field.Invalid(sp, "", "give exactly one of secret, configMap and downwardAPI"))
		}
	}
	return errs
}

// pgwardSecret explains why a secret may not be handed to the pods through
// env, envFrom or the projected volume, or returns "": the secrets pgward
// generates for the cluster (the CA's key, the operator's and the
// scraper's client certificates must never reach a pod; of the others the
// pods already get exactly the keys they need), the instances' own
// configuration secrets, and the CA secrets the spec names, which may hold
// a CA's key.
func (s *ClusterSpec) pgwardSecret(name, clusterName string) string {
	if slices.Contains(GeneratedSecretNames(clusterName), name) ||
		(strings.HasPrefix(name, clusterName+"-") && strings.HasSuffix(name, "-config")) {
		return fmt.Sprintf("%q is one of pgward's own secrets of this cluster: the pods get exactly the keys they need of them", name)
	}
	if c := s.Certificates; c != nil && (name == c.ServerCASecret || name == c.ClientCASecret) {
		return fmt.Sprintf("%q is a CA secret of spec.certificates: it may hold the CA's key, which no pod may hold", name)
	}
	return ""
}

// validatePVCTemplate checks storage.pvcTemplate against size and
// storageClass (after SetDefaults took what they left out from it) and
// refuses what would not give each instance a fresh file-system volume of
// its own: a block volume, a volume bound by name (every instance's claim
// would name the same one), or a volume pre-filled from a data source
// (a data directory pgward did not make; bootstrap.recovery is the way).
func validatePVCTemplate(st StorageConfiguration, p *field.Path) field.ErrorList {
	t := st.PersistentVolumeClaimTemplate
	if t == nil {
		return nil
	}
	tp := p.Child("pvcTemplate")
	var errs field.ErrorList
	if q, ok := t.Resources.Requests[corev1.ResourceStorage]; ok {
		if size, err := resource.ParseQuantity(st.Size); err == nil && size.Cmp(q) != 0 {
			errs = append(errs, field.Invalid(tp.Child("resources", "requests", "storage"), q.String(),
				fmt.Sprintf("conflicts with spec.storage.size %s: give the size once", st.Size)))
		}
	}
	for _, name := range slices.Sorted(keysOf(t.Resources.Requests)) {
		if name != corev1.ResourceStorage {
			errs = append(errs, field.NotSupported(tp.Child("resources", "requests").Key(string(name)), string(name), []string{"storage"}))
		}
	}
	for _, name := range slices.Sorted(keysOf(t.Resources.Limits)) {
		if name != corev1.ResourceStorage {
			errs = append(errs, field.NotSupported(tp.Child("resources", "limits").Key(string(name)), string(name), []string{"storage"}))
			continue
		}
		limit := t.Resources.Limits[name]
		if size, err := resource.ParseQuantity(st.Size); err == nil && size.Cmp(limit) > 0 {
			errs = append(errs, field.Invalid(tp.Child("resources", "limits", "storage"), limit.String(),
				fmt.Sprintf("is less than the size %s", st.Size)))
		}
	}
	if t.StorageClassName != nil && st.StorageClass != nil && *t.StorageClassName != *st.StorageClass {
		errs = append(errs, field.Invalid(tp.Child("storageClassName"), *t.StorageClassName,
			fmt.Sprintf("conflicts with spec.storage.storageClass %q: give the class once", *st.StorageClass)))
	}
	if t.StorageClassName != nil && *t.StorageClassName != "" {
		errs = append(errs, dnsErrors(tp.Child("storageClassName"), *t.StorageClassName, validation.IsDNS1123Subdomain)...)
	}
	for i, m := range t.AccessModes {
		switch m {
		case corev1.ReadWriteOnce, corev1.ReadWriteOncePod, corev1.ReadWriteMany:
		default:
			errs = append(errs, field.NotSupported(tp.Child("accessModes").Index(i), m, []string{"ReadWriteOnce", "ReadWriteOncePod", "ReadWriteMany"}))
		}
	}
	if t.VolumeMode != nil && *t.VolumeMode != corev1.PersistentVolumeFilesystem {
		errs = append(errs, field.NotSupported(tp.Child("volumeMode"), *t.VolumeMode, []string{string(corev1.PersistentVolumeFilesystem)}))
	}
	if t.VolumeName != "" {
		errs = append(errs, field.Forbidden(tp.Child("volumeName"), "each instance needs a volume of its own: a template cannot name one"))
	}
	if t.DataSource != nil || t.DataSourceRef != nil {
		errs = append(errs, field.Forbidden(tp.Child("dataSource"), "a volume filled from elsewhere would hold a data directory pgward did not make: use bootstrap.recovery"))
	}
	errs = append(errs, validateSelector(t.Selector, tp.Child("selector"))...)
	return errs
}
