package v1

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"golang.org/x/net/publicsuffix"
)

// Bounds on what a manifest may ask for: each is far above any real use and
// keeps a mistaken (or hostile) manifest from creating thousands of
// directories, objects or certificate names before anything fails.
const (
	MaxInstances   = 32
	MaxParameters  = 1000
	MaxHBALines    = 1000
	MaxIdentLines  = 1000
	MaxAltDNSNames = 100
	// MaxCatchAllNetworks bounds spec.postgresql.catchAllNetworks (one
	// pg_hba rule each).
	MaxCatchAllNetworks = 64
)

// MaxClusterNameLength leaves room in 63-character DNS labels for the
// suffixes of the objects a Cluster produces ("-rw", "-replication", "-12").
const MaxClusterNameLength = 50

var (
	// identifierRE is an unquoted PostgreSQL identifier that needs no
	// quoting anywhere pgward writes it (SQL, conninfo, pg_hba).
	identifierRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)
	// localeRE is the character set of encoding and locale names; it keeps
	// them safe to pass to initdb and to quote in SQL.
	localeRE = regexp.MustCompile(`^[A-Za-z0-9_.@-]{1,64}$`)
)

// reservedOwners cannot own the application database: postgres is the
// superuser and streaming_replica is pgward's replication role.
// PostgreSQL itself refuses to create roles named public, none,
// current_user, session_user or current_role.
var reservedOwners = []string{"postgres", ReplicationUser, MonitorRole, "public", "none", "current_user", "session_user", "current_role"}

// reservedDatabases exist after initdb; creating one of them would fail.
var reservedDatabases = []string{"postgres", "template0", "template1"}

// Validate checks a Cluster after SetDefaults and returns every problem
// with its field path.
func (c *Cluster) Validate() field.ErrorList {
	var errs field.ErrorList
	errs = append(errs, c.validateTypeMeta()...)
	errs = append(errs, c.validateMetadata(field.NewPath("metadata"))...)
	errs = append(errs, c.Spec.validate(field.NewPath("spec"))...)
	errs = append(errs, c.Spec.validatePodShape(field.NewPath("spec"), c.Name)...)
	errs = append(errs, c.validateSecretReferences()...)
	errs = append(errs, c.Spec.validateImage(field.NewPath("spec"))...)
	errs = append(errs, c.validateServices()...)
	errs = append(errs, c.validateReplica(field.NewPath("spec", "replica"))...)
	errs = append(errs, c.Spec.validateReplicationSlots(field.NewPath("spec"), c.Name)...)
	errs = append(errs, c.Spec.validatePrimaryLease(field.NewPath("spec", "primaryLease"))...)
	errs = append(errs, c.Spec.validateInstanceTiming(field.NewPath("spec"))...)
	return errs
}

// ValidateUpdate checks that changing oldC into newC is allowed: newC must
// be valid, and what cannot change once the cluster exists (its identity,
// how it was bootstrapped, the size of its volumes, which can grow but not
// shrink) did not change. Both are compared after SetDefaults so that
// leaving a defaulted field out is not a change.
func ValidateUpdate(oldC, newC *Cluster) field.ErrorList {
	errs := newC.Validate()
	oldD, newD := oldC.DeepCopy(), newC.DeepCopy()
	SetDefaults(oldD)
	SetDefaults(newD)
	meta := field.NewPath("metadata")
	if newD.Name != oldD.Name {
		errs = append(errs, field.Invalid(meta.Child("name"), newD.Name, "field is immutable"))
	}
	if newD.Namespace != oldD.Namespace {
		errs = append(errs, field.Invalid(meta.Child("namespace"), newD.Namespace, "field is immutable"))
	}
	spec := field.NewPath("spec")
	if !equality.Semantic.DeepEqual(oldD.Spec.Bootstrap, newD.Spec.Bootstrap) {
		errs = append(errs, field.Forbidden(spec.Child("bootstrap"),
			"field is immutable: the cluster was already created with it"))
	}
	errs = append(errs, validateBackupUpdate(oldD.Spec.Backup, newD.Spec.Backup, spec.Child("backup"))...)
	if (oldD.Spec.WalStorage == nil) != (newD.Spec.WalStorage == nil) {
		errs = append(errs, field.Forbidden(spec.Child("walStorage"), "cannot be added or removed once the cluster exists: its WAL is where it was created"))
	} else if oldD.Spec.WalStorage != nil {
		errs = append(errs, validateStorageUpdate(oldD.Spec.WalStorage.Size, newD.Spec.WalStorage.Size, spec.Child("walStorage", "size"))...)
	}
	errs = append(errs, validateStorageUpdate(oldD.Spec.StorageConfiguration.Size,
		newD.Spec.StorageConfiguration.Size, spec.Child("storage", "size"))...)
	errs = append(errs, validateReplicaUpdate(oldD, newD, spec.Child("replica"))...)
	errs = append(errs, validateTablespacesUpdate(&oldD.Spec, &newD.Spec, spec)...)
	return errs
}

// validateStorageUpdate refuses removing or shrinking the volume size:
// volumes can be expanded but never shrunk.
func validateStorageUpdate(oldSize, newSize string, path *field.Path) field.ErrorList {
	if oldSize == "" {
		return nil
	}
	if newSize == "" {
		return field.ErrorList{field.Forbidden(path, fmt.Sprintf("cannot be removed (was %s)", oldSize))}
	}
	oldQ, errOld := resource.ParseQuantity(oldSize)
	newQ, errNew := resource.ParseQuantity(newSize)
	if errOld != nil || errNew != nil {
		return nil // Validate reports an unparsable new size.
	}
	if newQ.Cmp(oldQ) < 0 {
		return field.ErrorList{field.Forbidden(path,
			fmt.Sprintf("cannot shrink from %s to %s: volumes can only grow", oldSize, newSize))}
	}
	return nil
}

func (c *Cluster) validateTypeMeta() field.ErrorList {
	var errs field.ErrorList
	if c.APIVersion != "" && c.APIVersion != APIVersion {
		errs = append(errs, field.NotSupported(field.NewPath("apiVersion"), c.APIVersion, []string{APIVersion}))
	}
	if c.Kind != "" && c.Kind != Kind {
		errs = append(errs, field.NotSupported(field.NewPath("kind"), c.Kind, []string{Kind}))
	}
	return errs
}

func (c *Cluster) validateMetadata(path *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch name := c.Name; {
	case name == "":
		errs = append(errs, field.Required(path.Child("name"), "a cluster needs a name"))
	case len(name) > MaxClusterNameLength:
		errs = append(errs, field.TooLong(path.Child("name"), name, MaxClusterNameLength))
	default:
		errs = append(errs, dnsErrors(path.Child("name"), name, validation.IsDNS1035Label)...)
	}
	if c.Namespace != "" {
		errs = append(errs, dnsErrors(path.Child("namespace"), c.Namespace, validation.IsDNS1123Label)...)
	}
	keys := make([]string, 0, len(c.Annotations))
	for k := range c.Annotations {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if msg := operatorAnnotation(k); msg != "" {
			errs = append(errs, field.Invalid(path.Child("annotations").Key(k), field.OmitValueType{}, msg))
		}
	}
	errs = append(errs, c.validateDayTwoAnnotations(path)...)
	return errs
}

// RotateCAAnnotation asks the Kubernetes operator to rotate the cluster's
// generated CA now, with the same overlap as its automatic renewal; each
// new value is one request. It is the only pgward.io annotation a Cluster
// may carry.
const RotateCAAnnotation = "pgward.io/rotate-ca"

// SwitchoverAnnotation on a Cluster asks the operator for a switchover to
// the instance it names (`pgward promote`); the operator removes it once
// the request is taken, and the outcome is an event.
const SwitchoverAnnotation = "pgward.io/switchover-to"

// operatorAnnotation explains why an annotation addressed to an operator
// is refused, or returns "". CloudNativePG drives operations through
// annotations (cnpg.io/reconciliationLoop...); pgward implements only
// cnpg.io/fencedInstances and cnpg.io/hibernation (fencing.go), and
// accepting one would let a user believe an instance is fenced or a
// cluster hibernated when nothing happened. pgward reads no annotation of
// its own but RotateCAAnnotation and SwitchoverAnnotation, so any other
// under its prefix is a mistake too.
func operatorAnnotation(key string) string {
	prefix, _, ok := strings.Cut(key, "/")
	if !ok {
		return ""
	}
	switch {
	case key == FencedInstancesAnnotation || key == HibernationAnnotation:
		return "" // implemented (fencing.go), values checked there
	case prefix == "cnpg.io" || strings.HasSuffix(prefix, ".cnpg.io") || prefix == "k8s.enterprisedb.io":
		return "a CloudNativePG annotation that pgward does not implement: it would be ignored (remove it)"
	case key == RotateCAAnnotation || key == SwitchoverAnnotation || key == RestartAnnotation || key == ReloadAnnotation:
		return ""
	case prefix == "pgward.io" || strings.HasSuffix(prefix, ".pgward.io"):
		return "pgward reads no annotation but " + RotateCAAnnotation + ", " + SwitchoverAnnotation + ", " + RestartAnnotation + ", " + ReloadAnnotation + ": it would be ignored (remove it)"
	}
	return ""
}

// dnsErrors turns the messages of an apimachinery name check into errors.
func dnsErrors(path *field.Path, value string, check func(string) []string) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range check(value) {
		errs = append(errs, field.Invalid(path, value, msg))
	}
	return errs
}

func (s *ClusterSpec) validate(path *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch {
	case s.Instances < 1:
		errs = append(errs, field.Invalid(path.Child("instances"), s.Instances, "must be at least 1"))
	case s.Instances > MaxInstances:
		errs = append(errs, field.Invalid(path.Child("instances"), s.Instances,
			fmt.Sprintf("must be at most %d (one primary and its replicas)", MaxInstances)))
	}
	minSync, _, _ := s.SyncBounds()
	superuser := s.EnableSuperuserAccess != nil && *s.EnableSuperuserAccess
	errs = append(errs, s.PostgresConfiguration.validate(path.Child("postgresql"), s.Instances, minSync > 0, superuser)...)
	errs = append(errs, validateBootstrap(s.Bootstrap, path.Child("bootstrap"))...)
	errs = append(errs, s.validateInitDBExtras(path.Child("bootstrap", "initdb"))...)
	if s.SuperuserSecret != nil {
		errs = append(errs, validateSecretName(path.Child("superuserSecret", "name"), s.SuperuserSecret.Name)...)
	}
	errs = append(errs, validateCertificates(s.Certificates, path.Child("certificates"))...)
	errs = append(errs, s.validateSyncReplicas(path)...)
	errs = append(errs, s.validatePodSelectorRefs(path)...)
	errs = append(errs, validateStorage(s.StorageConfiguration, path.Child("storage"))...)
	if s.WalStorage != nil {
		errs = append(errs, validateStorage(*s.WalStorage, path.Child("walStorage"))...)
	}
	errs = append(errs, s.validateTablespaces(path)...)
	errs = append(errs, validateNetworkPolicy(s.NetworkPolicy, path.Child("networkPolicy"))...)
	errs = append(errs, s.validateBackup(path)...)
	errs = append(errs, s.validateManaged(path)...)
	errs = append(errs, validateMonitoring(s.Monitoring, path.Child("monitoring"))...)
	switch s.PrimaryUpdateStrategy {
	case "", "unsupervised", "supervised":
	default:
		errs = append(errs, field.NotSupported(path.Child("primaryUpdateStrategy"), s.PrimaryUpdateStrategy, []string{"unsupervised", "supervised"}))
	}
	switch s.PrimaryUpdateMethod {
	case "", "switchover", "restart":
	default:
		errs = append(errs, field.NotSupported(path.Child("primaryUpdateMethod"), s.PrimaryUpdateMethod, []string{"switchover", "restart"}))
	}
	return errs
}

// validateNetworkPolicy checks the clients' selectors. Clients listed while
// the policies are off are refused: whoever wrote them believes PostgreSQL
// is closed to everyone else, and it is not.
func validateNetworkPolicy(np *NetworkPolicyConfiguration, path *field.Path) field.ErrorList {
	if np == nil {
		return nil
	}
	var errs field.ErrorList
	clients := path.Child("clients")
	if !np.Enabled && len(np.Clients) > 0 {
		errs = append(errs, field.Forbidden(clients,
			"has no effect unless networkPolicy.enabled is true: PostgreSQL would stay open to every pod"))
	}
	errs = append(errs, validatePeers(np.Clients, clients)...)
	metrics := path.Child("metricsClients")
	if !np.Enabled && len(np.MetricsClients) > 0 {
		errs = append(errs, field.Forbidden(metrics,
			"has no effect unless networkPolicy.enabled is true: the metrics port would stay open to every pod"))
	}
	return append(errs, validatePeers(np.MetricsClients, metrics)...)
}

func validatePeers(peers []NetworkPolicyPeer, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, peer := range peers {
		p := path.Index(i)
		if peer.PodSelector == nil && peer.NamespaceSelector == nil {
			errs = append(errs, field.Required(p, "a podSelector, a namespaceSelector or both"))
			continue
		}
		opts := metav1validation.LabelSelectorValidationOptions{}
		errs = append(errs, metav1validation.ValidateLabelSelector(peer.PodSelector, opts, p.Child("podSelector"))...)
		errs = append(errs, metav1validation.ValidateLabelSelector(peer.NamespaceSelector, opts, p.Child("namespaceSelector"))...)
	}
	return errs
}

func (s *ClusterSpec) validateSyncReplicas(path *field.Path) field.ErrorList {
	var errs field.ErrorList
	minPath, maxPath := path.Child("minSyncReplicas"), path.Child("maxSyncReplicas")
	switch {
	case s.MinSyncReplicas < 0:
		errs = append(errs, field.Invalid(minPath, s.MinSyncReplicas, "must not be negative"))
	case s.MinSyncReplicas > s.MaxSyncReplicas:
		errs = append(errs, field.Invalid(minPath, s.MinSyncReplicas,
			fmt.Sprintf("must not be greater than maxSyncReplicas (%d)", s.MaxSyncReplicas)))
	}
	switch {
	case s.MaxSyncReplicas < 0:
		errs = append(errs, field.Invalid(maxPath, s.MaxSyncReplicas, "must not be negative"))
	case s.MaxSyncReplicas > 0 && s.MaxSyncReplicas >= s.Instances:
		errs = append(errs, field.Invalid(maxPath, s.MaxSyncReplicas,
			fmt.Sprintf("must be less than instances (%d): only replicas can be synchronous", s.Instances)))
	}
	if s.FailoverDelay < 0 {
		errs = append(errs, field.Invalid(path.Child("failoverDelay"), s.FailoverDelay, "must not be negative"))
	}
	errs = append(errs, s.validateFailureDomains(path.Child("postgresql"))...)
	return append(errs, s.validateSynchronous(path.Child("postgresql", "synchronous"))...)
}

func (s *ClusterSpec) validateSynchronous(path *field.Path) field.ErrorList {
	sy := s.PostgresConfiguration.Synchronous
	if sy == nil {
		return nil
	}
	var errs field.ErrorList
	if s.MinSyncReplicas != 0 || s.MaxSyncReplicas != 0 {
		errs = append(errs, field.Forbidden(path, "set either spec.postgresql.synchronous or minSyncReplicas/maxSyncReplicas, not both"))
	}
	if sy.Method != "any" && sy.Method != "first" {
		errs = append(errs, field.NotSupported(path.Child("method"), sy.Method, []string{"any", "first"}))
	}
	switch {
	case sy.Number < 1:
		errs = append(errs, field.Invalid(path.Child("number"), sy.Number, "must be at least 1"))
	case sy.Number >= s.Instances:
		errs = append(errs, field.Invalid(path.Child("number"), sy.Number,
			fmt.Sprintf("must be less than instances (%d): only replicas can be synchronous", s.Instances)))
	}
	if d := sy.DataDurability; d != "" && d != "required" && d != "preferred" {
		errs = append(errs, field.NotSupported(path.Child("dataDurability"), d, []string{"required", "preferred"}))
	}
	if q := sy.FailoverQuorum; q != nil && !*q && sy.DataDurability != "preferred" {
		errs = append(errs, field.Invalid(path.Child("failoverQuorum"), false,
			`with dataDurability "required" pgward never fails over to a standby that may lack an acknowledged commit; for failovers that may lose some, set dataDurability: preferred`))
	}
	return errs
}

func validateStorage(s StorageConfiguration, path *field.Path) field.ErrorList {
	if s.StorageClass != nil {
		if errs := validateSecretName(path.Child("storageClass"), *s.StorageClass); len(errs) > 0 {
			return errs // the same DNS-subdomain rule as a Secret's name
		}
	}
	if s.Size == "" {
		return nil
	}
	q, err := resource.ParseQuantity(s.Size)
	switch {
	case err != nil:
		return field.ErrorList{field.Invalid(path.Child("size"), s.Size, "not a quantity such as 1Gi: "+err.Error())}
	case q.Sign() <= 0:
		return field.ErrorList{field.Invalid(path.Child("size"), s.Size, "must be greater than zero")}
	}
	return nil
}

// validate checks parameters, pg_hba and pg_ident lines; instances decides
// which settings replication needs.
func (p *PostgresConfiguration) validate(path *field.Path, instances int, syncRequired, superuser bool) field.ErrorList {
	for _, b := range []struct {
		name     string
		n, limit int
	}{
		{"parameters", len(p.Parameters), MaxParameters}, {"pg_hba", len(p.PgHBA), MaxHBALines},
		{"pg_ident", len(p.PgIdent), MaxIdentLines}, {"catchAllNetworks", len(p.CatchAllNetworks), MaxCatchAllNetworks},
	} {
		if b.n > b.limit {
			return field.ErrorList{field.TooMany(path.Child(b.name), b.n, b.limit)}
		}
	}
	var errs field.ErrorList
	seen := map[string]bool{}
	for i, lib := range p.SharedPreloadLibraries {
		switch {
		case !slices.Contains(PreloadableLibraries, lib):
			errs = append(errs, field.NotSupported(path.Child("shared_preload_libraries").Index(i), lib, PreloadableLibraries))
		case seen[lib]:
			errs = append(errs, field.Duplicate(path.Child("shared_preload_libraries").Index(i), lib))
		}
		seen[lib] = true
	}
	errs = append(errs, validateParameters(p.Parameters, path.Child("parameters"), instances, syncRequired)...)
	for _, name := range sortedParamNames(p.Parameters) {
		if err := CheckModuleParameter(name, p.SharedPreloadLibraries); err != nil {
			errs = append(errs, field.Invalid(path.Child("parameters").Key(name), field.OmitValueType{}, err.Error()))
		}
	}
	for i, line := range p.PgHBA {
		r, err := ParseHBARule(line)
		switch {
		case err != nil:
			// The line is not echoed: its options may hold an LDAP or
			// RADIUS secret, and errors end up in events and logs.
			errs = append(errs, field.Invalid(path.Child("pg_hba").Index(i), field.OmitValueType{}, err.Error()))
		case !superuser && r.Method != "reject" && r.NamesUser(SuperuserRole):
			// Whatever the method, a rule for postgres is a way in that
			// enableSuperuserAccess: false promises does not exist (a
			// certificate with CN=postgres, a Kerberos principal).
			errs = append(errs, field.Invalid(path.Child("pg_hba").Index(i), field.OmitValueType{},
				fmt.Sprintf("a rule letting %q in needs enableSuperuserAccess: true", SuperuserRole)))
		}
	}
	for i, cidr := range p.CatchAllNetworks {
		if err := CheckCIDR(cidr); err != nil {
			errs = append(errs, field.Invalid(path.Child("catchAllNetworks").Index(i), cidr, err.Error()))
		}
	}
	errs = append(errs, validateLDAP(p.LDAP, path.Child("ldap"))...)
	errs = append(errs, p.validateSecretLogging(path)...)
	for i, line := range p.PgIdent {
		if err := ValidateIdentLine(line); err != nil {
			errs = append(errs, field.Invalid(path.Child("pg_ident").Index(i), field.OmitValueType{}, err.Error()))
		}
	}
	return errs
}

func sortedParamNames(params map[string]string) []string {
	names := make([]string, 0, len(params))
	for name := range params {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// validateParameters checks each parameter in name order, so the errors
// come out in a stable order.
func validateParameters(params map[string]string, path *field.Path, instances int, syncRequired bool) field.ErrorList {
	var errs field.ErrorList
	names := sortedParamNames(params)
	folded := make(map[string]string, len(names))
	for _, name := range names {
		value := params[name]
		p := path.Key(name)
		lower := strings.ToLower(name)
		if first, dup := folded[lower]; dup {
			errs = append(errs, field.Invalid(p, name, fmt.Sprintf(
				"duplicates %q: PostgreSQL folds parameter names to lower case", first)))
		} else {
			folded[lower] = name
		}
		if err := ValidateParameter(name, value); err != nil {
			errs = append(errs, field.Invalid(p, field.OmitValueType{}, err.Error()))
			continue
		}
		if msg := replicationConflict(name, value, instances); msg != "" {
			errs = append(errs, field.Invalid(p, value, msg))
		}
		if msg := weakens(name, value, syncRequired); msg != "" {
			errs = append(errs, field.Invalid(p, value, msg))
		}
	}
	if len(errs) == 0 {
		errs = append(errs, connectionSlots(params, path)...)
	}
	return errs
}

// pgwardSessions is how many connections an instance manager may hold at
// once (its status pool of two, and one for role or checkpoint work). They
// come from superuser_reserved_connections, so that clients filling
// max_connections cannot lock the manager out and get a healthy instance
// declared dead.
const pgwardSessions = 3

// maxBackends is PostgreSQL's MAX_BACKENDS: the sum of the process slots
// must stay below it.
const maxBackends = 0x3FFFF

// intParam is an integer parameter as PostgreSQL reads it, or def when
// the manifest does not set it.
func intParam(params map[string]string, name string, def int) int {
	v, ok := params[name]
	if !ok {
		return def
	}
	n, _, _ := scanInteger(v)
	return int(n)
}

// CrossParameterConflicts returns the parameters whose values PostgreSQL
// refuses in combination with others (its check hooks), by name.
func CrossParameterConflicts(params map[string]string) map[string]string {
	num := func(name string, def int) int { return intParam(params, name, def) }
	on := func(name string) bool {
		b, _ := parseBool(params[name])
		return b
	}
	out := map[string]string{}
	slots := num("max_connections", 100) + num("autovacuum_max_workers", 3) + 1 + num("max_worker_processes", 8) + num("max_wal_senders", 10)
	if slots > maxBackends {
		for _, n := range []string{"max_connections", "autovacuum_max_workers", "max_worker_processes", "max_wal_senders"} {
			if _, set := params[n]; set {
				out[n] = fmt.Sprintf("max_connections + autovacuum_max_workers + 1 + max_worker_processes + max_wal_senders is %d, above PostgreSQL's limit of %d", slots, maxBackends)
			}
		}
	}
	if on("log_statement_stats") && (on("log_parser_stats") || on("log_planner_stats") || on("log_executor_stats")) {
		out["log_statement_stats"] = "cannot be on while log_parser_stats, log_planner_stats or log_executor_stats is on"
	}
	return out
}

// connectionSlots checks what PostgreSQL checks only at start:
// superuser_reserved_connections must be less than max_connections. And
// it keeps room for pgward's own sessions.
func connectionSlots(params map[string]string, path *field.Path) field.ErrorList {
	reserved := intParam(params, "superuser_reserved_connections", 3)
	maxConns := intParam(params, "max_connections", 100)
	var errs field.ErrorList
	for name, msg := range CrossParameterConflicts(params) {
		errs = append(errs, field.Invalid(path.Key(name), field.OmitValueType{}, msg))
	}
	slices.SortFunc(errs, func(a, b *field.Error) int { return strings.Compare(a.Field, b.Field) })
	if reserved < pgwardSessions {
		errs = append(errs, field.Invalid(path.Key("superuser_reserved_connections"), reserved, fmt.Sprintf(
			"must be at least %d: pgward's instance manager uses that many superuser sessions, which clients must not be able to take", pgwardSessions)))
	}
	if maxConns <= reserved {
		errs = append(errs, field.Invalid(path.Key("max_connections"), maxConns, fmt.Sprintf(
			"must be greater than superuser_reserved_connections (%d): PostgreSQL would not start", reserved)))
	}
	return errs
}

// replicationConflict explains why a setting cannot work with replicas, or
// returns "".
func replicationConflict(name, value string, instances int) string {
	if instances <= 1 {
		return ""
	}
	switch name {
	case "wal_level":
		if strings.EqualFold(strings.TrimSpace(value), "minimal") {
			return "wal_level minimal cannot feed replicas: use replica or logical when instances > 1"
		}
	case "wal_log_hints":
		if isPostgresFalse(value) {
			return "wal_log_hints must stay on when instances > 1: pg_rewind needs it to rejoin a failed primary"
		}
	}
	return ""
}

// weakens explains why a value breaks a promise pgward makes (durability,
// integrity, no acknowledged write lost), or returns "". Names that can
// only weaken, whatever their value, are fixed parameters instead.
func weakens(name, value string, syncRequired bool) string {
	v := strings.ToLower(strings.TrimSpace(value))
	switch name {
	case "fsync":
		if isPostgresFalse(value) {
			return "fsync off loses committed data, and can corrupt the cluster, on any crash of the machine"
		}
	case "full_page_writes":
		if isPostgresFalse(value) {
			return "full_page_writes must stay on: off can leave torn pages after a crash, which no WAL can repair, and pg_rewind needs it to rejoin a failed primary"
		}
	case "ignore_checksum_failure":
		if !isPostgresFalse(value) {
			return "ignore_checksum_failure on reads corrupted pages as if they were sound"
		}
	case "synchronous_commit":
		if syncRequired && (v == "local" || isPostgresFalse(value)) {
			return "with synchronous replicas, synchronous_commit " + v + " acknowledges commits no standby has: a failover would lose them (use on, remote_write or remote_apply)"
		}
	}
	return ""
}

// isPostgresFalse reports whether PostgreSQL reads value as boolean false:
// off, false, no, 0, or any unambiguous prefix of them, in any case.
func isPostgresFalse(value string) bool {
	v := strings.ToLower(strings.TrimSpace(value))
	switch {
	case v == "":
		return false
	case v == "0", strings.HasPrefix("false", v), strings.HasPrefix("no", v):
		return true
	case len(v) >= 2 && strings.HasPrefix("off", v):
		return true // "o" alone is ambiguous with "on".
	}
	return false
}

func validateBootstrap(b *BootstrapConfiguration, path *field.Path) field.ErrorList {
	if b != nil && (b.Recovery != nil || b.PgBaseBackup != nil) {
		return nil // validateRecovery, validatePgBaseBackup
	}
	if b == nil || b.InitDB == nil {
		return field.ErrorList{field.Required(path.Child("initdb"),
			"exactly one bootstrap method is needed (SetDefaults chooses initdb)")}
	}
	return validateInitDB(b.InitDB, path.Child("initdb"))
}

func validateInitDB(in *BootstrapInitDB, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	errs = append(errs, validateIdentifier(path.Child("database"), in.Database)...)
	if slices.Contains(reservedDatabases, in.Database) {
		errs = append(errs, field.Invalid(path.Child("database"), in.Database, "is created by initdb and reserved"))
	}
	errs = append(errs, validateIdentifier(path.Child("owner"), in.Owner)...)
	if slices.Contains(reservedOwners, in.Owner) || strings.HasPrefix(in.Owner, "pg_") {
		errs = append(errs, field.Invalid(path.Child("owner"), in.Owner,
			"is a reserved role: the application owner must be an ordinary role"))
	}
	if in.Secret != nil {
		errs = append(errs, validateSecretName(path.Child("secret", "name"), in.Secret.Name)...)
	}
	locales := []struct{ name, value string }{
		{"encoding", in.Encoding}, {"localeCollate", in.LocaleCollate}, {"localeCType", in.LocaleCType},
	}
	bad := false
	for _, l := range locales {
		if l.value != "" && !localeRE.MatchString(l.value) {
			errs = append(errs, field.Invalid(path.Child(l.name), l.value,
				"must be 1-64 letters, digits, '_', '.', '@' or '-'"))
			bad = true
		}
	}
	if !bad {
		errs = append(errs, validateEncoding(in, path)...)
	}
	errs = append(errs, validateSQL(in.PostInitSQL, path.Child("postInitSQL"))...)
	errs = append(errs, validateSQL(in.PostInitApplicationSQL, path.Child("postInitApplicationSQL"))...)
	errs = append(errs, validateSQL(in.PostInitTemplateSQL, path.Child("postInitTemplateSQL"))...)
	return errs
}

// validateSQL refuses NUL bytes: the statements travel as C strings, which
// would silently end at the first NUL.
func validateSQL(statements []string, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, stmt := range statements {
		if j := strings.IndexByte(stmt, 0); j >= 0 {
			errs = append(errs, field.Invalid(path.Index(i), field.OmitValueType{},
				fmt.Sprintf("contains a NUL byte at byte %d", j)))
		}
	}
	return errs
}

func validateIdentifier(path *field.Path, name string) field.ErrorList {
	switch {
	case name == "":
		return field.ErrorList{field.Required(path, "")}
	case !identifierRE.MatchString(name):
		return field.ErrorList{field.Invalid(path, name,
			"must be a lower-case PostgreSQL identifier: a letter or '_', then letters, digits or '_', at most 63")}
	}
	return nil
}

func validateSecretName(path *field.Path, name string) field.ErrorList {
	if name == "" {
		return field.ErrorList{field.Required(path, "a secret name")}
	}
	return dnsErrors(path, name, validation.IsDNS1123Subdomain)
}

func validateCertificates(c *CertificatesConfiguration, path *field.Path) field.ErrorList {
	if c == nil {
		return nil
	}
	var errs field.ErrorList
	secrets := []struct{ name, value string }{
		{"serverCASecret", c.ServerCASecret},
		{"serverTLSSecret", c.ServerTLSSecret},
		{"clientCASecret", c.ClientCASecret},
		{"replicationTLSSecret", c.ReplicationTLSSecret},
	}
	for _, s := range secrets {
		if s.value != "" {
			errs = append(errs, dnsErrors(path.Child(s.name), s.value, validation.IsDNS1123Subdomain)...)
		}
	}
	// A user-provided certificate can only be verified with its CA.
	if c.ServerTLSSecret != "" && c.ServerCASecret == "" {
		errs = append(errs, field.Required(path.Child("serverCASecret"), "serverTLSSecret needs the CA that signed it"))
	}
	if c.ReplicationTLSSecret != "" && c.ClientCASecret == "" {
		errs = append(errs, field.Required(path.Child("clientCASecret"), "replicationTLSSecret needs the CA that signed it"))
	}
	if c.ServerTLSSecret != "" && len(c.ServerAltDNSNames) > 0 {
		errs = append(errs, field.Forbidden(path.Child("serverAltDNSNames"),
			"only applies to the server certificate pgward generates, not to serverTLSSecret"))
	}
	errs = append(errs, validateAltDNSNames(c.ServerAltDNSNames, path.Child("serverAltDNSNames"))...)
	return errs
}

// validateAltDNSNames accepts DNS names and wildcard names (*.example.com).
func validateAltDNSNames(names []string, path *field.Path) field.ErrorList {
	if len(names) > MaxAltDNSNames {
		return field.ErrorList{field.TooMany(path, len(names), MaxAltDNSNames)}
	}
	var errs field.ErrorList
	seen := make(map[string]bool, len(names))
	for i, name := range names {
		p := path.Index(i)
		check := validation.IsDNS1123Subdomain
		if domain, ok := strings.CutPrefix(name, "*."); ok {
			check = validation.IsWildcardDNS1123Subdomain
			// A wildcard over a public suffix (*.com, *.co.uk) would name
			// every host under it.
			if ps, _ := publicsuffix.PublicSuffix(domain); ps == domain {
				errs = append(errs, field.Invalid(p, name, "a wildcard directly under a public suffix ("+domain+") covers other people's hosts"))
			}
		}
		errs = append(errs, dnsErrors(p, name, check)...)
		if seen[name] {
			errs = append(errs, field.Duplicate(p, name))
		}
		seen[name] = true
	}
	return errs
}

// GeneratedSecretNames are the secrets pgward makes for cluster name in
// both runtimes (plus one <name>-<N>-config per instance on Kubernetes).
func GeneratedSecretNames(name string) []string {
	out := make([]string, 0, len(generatedSecretSuffixes))
	for _, s := range generatedSecretSuffixes {
		out = append(out, name+s)
	}
	return out
}

var generatedSecretSuffixes = []string{"-ca", "-server", "-replication", "-controller", "-app", "-superuser", "-metrics", BackupKeySuffix}

// secretRef is one secret a manifest names, and what it is for.
type secretRef struct {
	path *field.Path
	name string
	// kind groups references that may name the same secret: a TLS
	// secret may also hold the CA that signed it (as cert-manager's do).
	kind string
}

// validateSecretReferences refuses a secret reference that names one of
// the secrets pgward generates for this cluster, or the same secret as
// another reference for something else. Either would make pgward write
// credentials over a CA (or the reverse) and break the cluster for good,
// or hand the pods a secret they must never hold (the CA's key, the
// operator's certificate). Another cluster's secrets are refused where they
// can be seen: the operator checks their owner when it reads them.
func (c *Cluster) validateSecretReferences() field.ErrorList {
	spec := field.NewPath("spec")
	var refs []secretRef
	if b := c.Spec.Bootstrap; b != nil && b.InitDB != nil && b.InitDB.Secret != nil {
		refs = append(refs, secretRef{spec.Child("bootstrap", "initdb", "secret", "name"), b.InitDB.Secret.Name, "app credentials"})
	}
	if b := c.Spec.Bootstrap; b != nil && b.PgBaseBackup != nil && b.PgBaseBackup.Secret != nil {
		refs = append(refs, secretRef{spec.Child("bootstrap", "pg_basebackup", "secret", "name"), b.PgBaseBackup.Secret.Name, "app credentials"})
	}
	if b := c.Spec.Bootstrap; b != nil && b.Recovery != nil && b.Recovery.Secret != nil {
		refs = append(refs, secretRef{spec.Child("bootstrap", "recovery", "secret", "name"), b.Recovery.Secret.Name, "app credentials"})
	}
	for _, u := range c.ManagedPasswordSecrets() {
		refs = append(refs, secretRef{field.NewPath(u.Field).Child("name"), u.Name, "credentials of " + u.What})
	}
	for _, u := range c.BackupSecretKeys() {
		// The generated key is named like a generated secret on purpose.
		if u.Name == c.Name+BackupKeySuffix && u.Field == "spec.backup.barmanObjectStore.encryptionKey" {
			continue
		}
		refs = append(refs, secretRef{field.NewPath(u.Field).Child("name"), u.Name, u.What})
	}
	if s := c.Spec.SuperuserSecret; s != nil {
		refs = append(refs, secretRef{spec.Child("superuserSecret", "name"), s.Name, "superuser credentials"})
	}
	if cert := c.Spec.Certificates; cert != nil {
		p := spec.Child("certificates")
		// A certificate's secret may hold the CA that signed it too (as
		// cert-manager's do), and one CA may sign both kinds.
		clientCA := "client CA"
		if cert.ClientCASecret == cert.ServerCASecret {
			clientCA = "server TLS"
		}
		replication := "replication TLS"
		if cert.ReplicationTLSSecret == cert.ClientCASecret {
			replication = clientCA
		}
		for _, r := range []secretRef{
			{p.Child("serverCASecret"), cert.ServerCASecret, "server TLS"},
			{p.Child("serverTLSSecret"), cert.ServerTLSSecret, "server TLS"},
			{p.Child("clientCASecret"), cert.ClientCASecret, clientCA},
			{p.Child("replicationTLSSecret"), cert.ReplicationTLSSecret, replication},
		} {
			if r.name != "" {
				refs = append(refs, r)
			}
		}
	}
	var errs field.ErrorList
	generated := GeneratedSecretNames(c.Name)
	instanceConfig := regexp.MustCompile("^" + regexp.QuoteMeta(c.Name) + `-[0-9]+-config$`)
	first := map[string]secretRef{}
	for _, r := range refs {
		switch {
		case slices.Contains(generated, r.name) || instanceConfig.MatchString(r.name):
			errs = append(errs, field.Invalid(r.path, r.name,
				"is the name of a secret pgward generates for this cluster: name your secret differently"))
			continue
		case r.name == WebhookSecretName:
			errs = append(errs, field.Invalid(r.path, r.name, "is the operator's own secret"))
			continue
		}
		if f, ok := first[r.name]; ok && f.kind != r.kind {
			errs = append(errs, field.Invalid(r.path, r.name,
				fmt.Sprintf("is also %s (%s): one secret cannot hold both", f.path, f.kind)))
			continue
		}
		if _, ok := first[r.name]; !ok {
			first[r.name] = r
		}
	}
	return errs
}

// WebhookSecretName is the operator's webhook certificate secret.
const WebhookSecretName = "pgward-webhook-cert" // #nosec G101 -- a Secret's name, not a credential
