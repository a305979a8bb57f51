package v1

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Import types (spec.bootstrap.initdb.import.type).
const (
	ImportMicroservice = "microservice"
	ImportMonolith     = "monolith"
)

// Locale providers PostgreSQL 15 has (builtin is PostgreSQL 17's).
const (
	LocaleProviderLibc = "libc"
	LocaleProviderICU  = "icu"
)

var (
	// icuLocaleRE is a BCP 47 language tag as ICU reads it: a 2-3 letter
	// language, then subtags of letters and digits (script, region,
	// variants, -u- extensions such as co-phonebk). It also keeps the value
	// safe for initdb's argument vector and a SQL literal.
	icuLocaleRE = regexp.MustCompile(`^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{1,8})*$`)
	// jobsRE is --jobs=N with N from 1 to 64.
	jobsRE = regexp.MustCompile(`^--jobs=([1-9]|[1-5][0-9]|6[0-4])$`)
)

// dumpFlags and restoreFlags are the pg_dump and pg_restore options an
// import may add: each only leaves something out, or (--jobs) sets the
// parallelism. Anything else reaches a command line pgward composes
// (--file, --dbname, --host, --role, --superuser would redirect the dump,
// the restore or the identity it runs as), so it is refused.
var (
	dumpFlags = []string{"--no-comments", "--no-publications", "--no-subscriptions",
		"--no-security-labels", "--no-tablespaces", "--no-toast-compression", "--no-unlogged-table-data",
		"--no-large-objects", "--no-blobs"}
	restoreFlags = []string{"--no-comments", "--no-publications", "--no-subscriptions",
		"--no-security-labels", "--no-tablespaces", "--disable-triggers"}
)

// validateInitDBExtras checks the initdb options beyond the application
// database: locale provider, ICU locale, WAL segment size, extra options,
// the SQL references and the import. Everything here reaches initdb's or
// pg_dump's argument vector, a SQL statement or a file, so every value is
// checked before either runtime writes anything.
func (s *ClusterSpec) validateInitDBExtras(p *field.Path) field.ErrorList {
	if s.Bootstrap == nil || s.Bootstrap.InitDB == nil {
		return nil
	}
	in := s.Bootstrap.InitDB
	var errs field.ErrorList
	if in.Locale != "" && !localeRE.MatchString(in.Locale) {
		errs = append(errs, field.Invalid(p.Child("locale"), in.Locale, "must be 1-64 letters, digits, '_', '.', '@' or '-'"))
	}
	switch in.LocaleProvider {
	case "", LocaleProviderLibc:
		if in.ICULocale != "" {
			errs = append(errs, field.Forbidden(p.Child("icuLocale"), "is used only with localeProvider: icu"))
		}
	case LocaleProviderICU:
		switch {
		case in.ICULocale == "":
			errs = append(errs, field.Required(p.Child("icuLocale"), "the ICU locale of the cluster (e.g. en-US): initdb needs one with localeProvider icu"))
		case len(in.ICULocale) > 64 || !icuLocaleRE.MatchString(in.ICULocale):
			errs = append(errs, field.Invalid(p.Child("icuLocale"), truncate(in.ICULocale),
				"must be a BCP 47 language tag: a 2-3 letter language, then '-'-separated subtags of letters and digits (e.g. en-US, de-DE-u-co-phonebk)"))
		}
		if enc := serverEncodings[cleanEncodingName(in.Encoding)]; in.Encoding != "" && enc != "UTF8" {
			errs = append(errs, field.Invalid(p.Child("encoding"), in.Encoding, "must be UTF8 with localeProvider icu"))
		}
	case "builtin":
		errs = append(errs, field.Invalid(p.Child("localeProvider"), in.LocaleProvider,
			"the builtin locale provider needs PostgreSQL 17; pgward runs PostgreSQL 15 (use libc or icu)"))
	default:
		errs = append(errs, field.NotSupported(p.Child("localeProvider"), in.LocaleProvider, []string{LocaleProviderLibc, LocaleProviderICU}))
	}
	if in.ICURules != "" {
		errs = append(errs, field.Forbidden(p.Child("icuRules"), "ICU tailoring rules need PostgreSQL 16; pgward runs PostgreSQL 15"))
	}
	if in.BuiltinLocale != "" {
		errs = append(errs, field.Forbidden(p.Child("builtinLocale"), "the builtin locale provider needs PostgreSQL 17; pgward runs PostgreSQL 15"))
	}
	if n := in.WalSegmentSize; n != 0 && (n < 1 || n > 1024 || n&(n-1) != 0) {
		errs = append(errs, field.Invalid(p.Child("walSegmentSize"), n, "must be a power of 2 from 1 to 1024 (MB)"))
	}
	for i, o := range in.Options {
		op := p.Child("options").Index(i)
		switch o {
		case "--data-checksums", "-k":
			if in.DataChecksums != nil && !*in.DataChecksums {
				errs = append(errs, field.Invalid(op, o, "contradicts dataChecksums: false"))
			}
		default:
			errs = append(errs, field.Invalid(op, truncate(o),
				"is not an initdb option pgward passes: allowed are --data-checksums and -k (locale, encoding and WAL segment size have their own fields; what initdb writes into its postgresql.conf, such as --text-search-config, would be ignored because pgward renders its own: use postgresql.parameters; the rest would change what pgward relies on: authentication, the data and WAL directories, the superuser)"))
		}
	}
	for _, r := range []struct {
		name string
		refs *SQLRefs
	}{{"postInitSQLRefs", in.PostInitSQLRefs}, {"postInitApplicationSQLRefs", in.PostInitApplicationSQLRefs}, {"postInitTemplateSQLRefs", in.PostInitTemplateSQLRefs}} {
		errs = append(errs, validateSQLRefs(r.refs, p.Child(r.name))...)
	}
	if in.Import != nil {
		errs = append(errs, s.validateImport(in, p.Child("import"))...)
	}
	return errs
}

func validateSQLRefs(r *SQLRefs, p *field.Path) field.ErrorList {
	if r == nil {
		return nil
	}
	var errs field.ErrorList
	check := func(ip *field.Path, name, key string) {
		errs = append(errs, validateSecretName(ip.Child("name"), name)...)
		if key == "" || len(key) > 253 || !configKeyRE.MatchString(key) {
			errs = append(errs, field.Invalid(ip.Child("key"), truncate(key), "must be a key name: letters, digits, '-', '_' or '.'"))
		}
	}
	for i, s := range r.SecretRefs {
		check(p.Child("secretRefs").Index(i), s.Name, s.Key)
	}
	for i, c := range r.ConfigMapRefs {
		check(p.Child("configMapRefs").Index(i), c.Name, c.Key)
	}
	return errs
}

// configKeyRE is a Secret or ConfigMap key (Kubernetes' rule), which is
// also a safe file name for the local runtime's secret store.
var configKeyRE = regexp.MustCompile(`^[-._a-zA-Z0-9]+$`)

func (s *ClusterSpec) validateImport(in *BootstrapInitDB, p *field.Path) field.ErrorList {
	im := in.Import
	var errs field.ErrorList
	src := s.externalCluster(im.Source.ExternalCluster)
	sp := p.Child("source", "externalCluster")
	switch {
	case im.Source.ExternalCluster == "":
		errs = append(errs, field.Required(sp, "the name of an entry of spec.externalClusters"))
	case src == nil:
		errs = append(errs, field.NotFound(sp, im.Source.ExternalCluster))
	case len(src.ConnectionParameters) == 0:
		errs = append(errs, field.Invalid(sp, im.Source.ExternalCluster, "has no connectionParameters to import through"))
	}
	dp, rp := p.Child("databases"), p.Child("roles")
	switch im.Type {
	case ImportMicroservice:
		if len(im.Databases) != 1 || im.Databases[0] == "*" {
			errs = append(errs, field.Invalid(dp, len(im.Databases), "a microservice import takes exactly one database (imported into the application database)"))
		}
		if len(im.Roles) > 0 {
			errs = append(errs, field.Forbidden(rp, "only a monolith import copies roles; a microservice import gives everything to the application owner"))
		}
	case ImportMonolith:
		if len(im.Databases) == 0 {
			errs = append(errs, field.Required(dp, "the databases to import, or \"*\""))
		}
		if len(im.PostImportApplicationSQL) > 0 {
			errs = append(errs, field.Forbidden(p.Child("postImportApplicationSQL"), "runs only after a microservice import (a monolith import has no application database of its own)"))
		}
	default:
		errs = append(errs, field.NotSupported(p.Child("type"), im.Type, []string{ImportMicroservice, ImportMonolith}))
	}
	seen := map[string]bool{}
	for i, d := range im.Databases {
		ip := dp.Index(i)
		if seen[d] {
			errs = append(errs, field.Duplicate(ip, d))
		}
		seen[d] = true
		if d == "*" {
			if len(im.Databases) > 1 {
				errs = append(errs, field.Invalid(ip, d, "\"*\" stands for every database: list nothing beside it"))
			}
			continue
		}
		errs = append(errs, validateImportName(ip, d)...)
		if slices.Contains(reservedDatabases, d) {
			errs = append(errs, field.Invalid(ip, d, "is created by initdb and cannot be imported"))
		}
		if im.Type == ImportMonolith && d == in.Database {
			errs = append(errs, field.Invalid(ip, d, "is the application database pgward creates (bootstrap.initdb.database): use a microservice import to fill it, or name the application database differently"))
		}
	}
	seen = map[string]bool{}
	for i, r := range im.Roles {
		ip := rp.Index(i)
		if seen[r] {
			errs = append(errs, field.Duplicate(ip, r))
		}
		seen[r] = true
		if r == "*" {
			if len(im.Roles) > 1 {
				errs = append(errs, field.Invalid(ip, r, "\"*\" stands for every role: list nothing beside it"))
			}
			continue
		}
		errs = append(errs, validateImportName(ip, r)...)
		if IsReservedImportRole(r, in.Owner) {
			errs = append(errs, field.Invalid(ip, r, "is a role pgward or PostgreSQL owns (postgres, streaming_replica, the application owner, pg_*): it cannot be imported"))
		}
	}
	errs = append(errs, validateSQL(im.PostImportApplicationSQL, p.Child("postImportApplicationSQL"))...)
	errs = append(errs, validateToolOptions(im.PgDumpExtraOptions, dumpFlags, p.Child("pgDumpExtraOptions"), "pg_dump")...)
	errs = append(errs, validateToolOptions(im.PgRestoreExtraOptions, restoreFlags, p.Child("pgRestoreExtraOptions"), "pg_restore")...)
	return errs
}

// IsReservedImportRole reports whether an import must leave role r alone:
// pgward's own roles, PostgreSQL's, and the application owner (whose
// password pgward sets).
func IsReservedImportRole(r, owner string) bool {
	return r == "postgres" || r == "streaming_replica" || r == owner || strings.HasPrefix(r, "pg_") ||
		slices.Contains(reservedOwners, r)
}

// validateImportName refuses a database or role name that is not a plain
// lower-case identifier: the names reach pg_dump's argument vector and SQL.
func validateImportName(p *field.Path, name string) field.ErrorList {
	if !identifierRE.MatchString(name) {
		return field.ErrorList{field.Invalid(p, truncate(name),
			"must be a lower-case PostgreSQL identifier (a letter or '_', then letters, digits or '_', at most 63), or \"*\"")}
	}
	return nil
}

func validateToolOptions(opts, allowed []string, p *field.Path, tool string) field.ErrorList {
	var errs field.ErrorList
	for i, o := range opts {
		if jobsRE.MatchString(o) || slices.Contains(allowed, o) {
			continue
		}
		msg := fmt.Sprintf("is not a %s option pgward passes: allowed are --jobs=N (1-64) and %s; other options could redirect the %s's target, file or identity",
			tool, strings.Join(allowed, ", "), strings.TrimPrefix(tool, "pg_"))
		if strings.HasPrefix(o, "--jobs") || strings.HasPrefix(o, "-j") {
			msg = "must be --jobs=N with N from 1 to 64 (one argument, no space)"
		}
		errs = append(errs, field.Invalid(p.Index(i), truncate(o), msg))
	}
	return errs
}

// ResolvedSQL is the SQL of the initdb references, in the order it runs
// (each entry is one key's content, which may hold several statements).
// The runtimes resolve it (the operator from Secrets and ConfigMaps, the
// local runtime from the manifest file) and hand it to the instance
// manager in a file of its own configuration.
// +kubebuilder:object:generate=false
type ResolvedSQL struct {
	PostInitSQL            []string `json:"postInitSQL,omitempty"`
	PostInitApplicationSQL []string `json:"postInitApplicationSQL,omitempty"`
	PostInitTemplateSQL    []string `json:"postInitTemplateSQL,omitempty"`
}

// HasSQLRefs reports whether bootstrap.initdb names any SQL reference.
func (s *ClusterSpec) HasSQLRefs() bool {
	if s.Bootstrap == nil || s.Bootstrap.InitDB == nil {
		return false
	}
	in := s.Bootstrap.InitDB
	return in.PostInitSQLRefs != nil || in.PostInitApplicationSQLRefs != nil || in.PostInitTemplateSQLRefs != nil
}

// SQLLookup returns the value of a Secret's (secret true) or a
// ConfigMap's key.
// +kubebuilder:object:generate=false
type SQLLookup func(secret bool, name, key string) (string, error)

// ResolveSQLRefs reads every reference of bootstrap.initdb through get, in
// CloudNativePG's order (Secrets, then ConfigMaps), and refuses a value
// with a NUL byte. Errors name the field of the reference.
func (s *ClusterSpec) ResolveSQLRefs(get SQLLookup) (*ResolvedSQL, error) {
	out := &ResolvedSQL{}
	if !s.HasSQLRefs() {
		return out, nil
	}
	in := s.Bootstrap.InitDB
	p := field.NewPath("spec", "bootstrap", "initdb")
	var errs []string
	read := func(refs *SQLRefs, name string) []string {
		if refs == nil {
			return nil
		}
		var sql []string
		one := func(ip *field.Path, secret bool, n, k string) {
			v, err := get(secret, n, k)
			switch {
			case err != nil:
				errs = append(errs, fmt.Sprintf("%s: %v", ip, err))
			case strings.IndexByte(v, 0) >= 0:
				errs = append(errs, fmt.Sprintf("%s: the value holds a NUL byte", ip))
			default:
				sql = append(sql, v)
			}
		}
		for i, r := range refs.SecretRefs {
			one(p.Child(name, "secretRefs").Index(i), true, r.Name, r.Key)
		}
		for i, r := range refs.ConfigMapRefs {
			one(p.Child(name, "configMapRefs").Index(i), false, r.Name, r.Key)
		}
		return sql
	}
	out.PostInitSQL = read(in.PostInitSQLRefs, "postInitSQLRefs")
	out.PostInitApplicationSQL = read(in.PostInitApplicationSQLRefs, "postInitApplicationSQLRefs")
	out.PostInitTemplateSQL = read(in.PostInitTemplateSQLRefs, "postInitTemplateSQLRefs")
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return out, nil
}

// ImportSourceCluster returns the external cluster
// bootstrap.initdb.import reads, or nil.
func (s *ClusterSpec) ImportSourceCluster() *ExternalCluster {
	if s.Bootstrap == nil || s.Bootstrap.InitDB == nil || s.Bootstrap.InitDB.Import == nil {
		return nil
	}
	return s.externalCluster(s.Bootstrap.InitDB.Import.Source.ExternalCluster)
}

// WalSegSizeArg is initdb's --wal-segsize argument, or "" for the default.
func (in *BootstrapInitDB) WalSegSizeArg() string {
	if in.WalSegmentSize == 0 {
		return ""
	}
	return strconv.Itoa(in.WalSegmentSize)
}
