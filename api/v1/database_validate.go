package v1

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"
)

var (
	// dbObjectRE is what a declared database, schema, owner or tablespace
	// may be called. PostgreSQL accepts more once quoted; this set keeps
	// CloudNativePG's names (declarative-icu) and leaves out whatever
	// could surprise a reader or a log (spaces, quotes, control
	// characters). Every name reaches SQL quoted as an identifier anyway.
	dbObjectRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$-]{0,62}$`)
	// extensionRE is an extension's name as its control file is named
	// (uuid-ossp, pg_trgm); extensionVersionRE its version (1.6, 2.0.1-dev).
	extensionRE        = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_-]{0,62}$`)
	extensionVersionRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,63}$`)
)

// reservedDatabaseOwners cannot own a declared database or schema: the
// superuser, pgward's own identities, and the names PostgreSQL reads as
// something else (public, current_user, ...).
func reservedDatabaseOwner(name string) bool {
	return slices.Contains(reservedOwners, name) || slices.Contains(reservedIdentities, name) || strings.HasPrefix(name, "pg_")
}

// Validate checks a Database's spec on its own: every value that reaches a
// SQL statement, and the options PostgreSQL 15 does not have. What depends
// on the Cluster (its application database) is CheckDatabase's; what only
// the server knows (does the template exist, is the extension installed)
// is reported by the instance manager.
func (d *DatabaseSpec) Validate(p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if d.Cluster.Name == "" {
		errs = append(errs, field.Required(p.Child("cluster", "name"), "the Cluster (same namespace) holding the database"))
	} else {
		errs = append(errs, dnsErrors(p.Child("cluster", "name"), d.Cluster.Name, validation.IsDNS1123Subdomain)...)
	}
	errs = append(errs, checkEnsure(p.Child("ensure"), d.Ensure)...)
	name := p.Child("name")
	switch {
	case !dbObjectRE.MatchString(d.Name):
		errs = append(errs, invalidName(name, d.Name))
	case slices.Contains(reservedDatabases, d.Name):
		errs = append(errs, field.Invalid(name, d.Name, "is a database PostgreSQL and pgward need: it cannot be declared"))
	}
	errs = append(errs, checkOwner(p.Child("owner"), d.Owner, true)...)
	if d.Template != "" {
		switch {
		case !dbObjectRE.MatchString(d.Template):
			errs = append(errs, invalidName(p.Child("template"), d.Template))
		case d.Template == d.Name:
			errs = append(errs, field.Invalid(p.Child("template"), d.Template, "a database cannot be its own template"))
		case d.Template == "postgres":
			// Not a template: copying it copies whatever was put there.
			errs = append(errs, field.Invalid(p.Child("template"), d.Template, "must be template0, template1 or a database marked isTemplate"))
		}
	}
	enc := ""
	if d.Encoding != "" {
		var ok bool
		if enc, ok = serverEncodings[cleanEncodingName(d.Encoding)]; !ok {
			errs = append(errs, field.Invalid(p.Child("encoding"), truncate(d.Encoding), "is not a valid server encoding name (e.g. UTF8, LATIN1, SQL_ASCII)"))
		}
	}
	for _, l := range []struct{ name, value string }{{"locale", d.Locale}, {"localeCollate", d.LocaleCollate}, {"localeCType", d.LocaleCType}} {
		if l.value != "" && !localeRE.MatchString(l.value) {
			errs = append(errs, field.Invalid(p.Child(l.name), truncate(l.value), "must be 1-64 letters, digits, '_', '.', '@' or '-'"))
		}
	}
	switch d.LocaleProvider {
	case "", LocaleProviderLibc:
		if d.ICULocale != "" {
			errs = append(errs, field.Forbidden(p.Child("icuLocale"), "is used only with localeProvider: icu"))
		}
	case LocaleProviderICU:
		switch {
		case d.ICULocale == "":
			errs = append(errs, field.Required(p.Child("icuLocale"), "the database's ICU locale (e.g. en-US): localeProvider icu needs one"))
		case len(d.ICULocale) > 64 || !icuLocaleRE.MatchString(d.ICULocale):
			errs = append(errs, field.Invalid(p.Child("icuLocale"), truncate(d.ICULocale), "must be a BCP 47 language tag (e.g. en-US, de-DE-u-co-phonebk)"))
		}
		if enc != "" && enc != "UTF8" {
			errs = append(errs, field.Invalid(p.Child("encoding"), d.Encoding, "must be UTF8 with localeProvider icu"))
		}
	case "builtin":
		errs = append(errs, field.Invalid(p.Child("localeProvider"), d.LocaleProvider, "the builtin locale provider needs PostgreSQL 17; pgward runs PostgreSQL 15 (use libc or icu)"))
	default:
		errs = append(errs, field.NotSupported(p.Child("localeProvider"), d.LocaleProvider, []string{LocaleProviderLibc, LocaleProviderICU}))
	}
	if d.ICURules != "" {
		errs = append(errs, field.Forbidden(p.Child("icuRules"), "ICU tailoring rules need PostgreSQL 16; pgward runs PostgreSQL 15"))
	}
	if d.BuiltinLocale != "" {
		errs = append(errs, field.Forbidden(p.Child("builtinLocale"), "the builtin locale provider needs PostgreSQL 17; pgward runs PostgreSQL 15"))
	}
	if d.CollationVersion != "" {
		errs = append(errs, field.Forbidden(p.Child("collationVersion"), "pgward does not support yet setting a collation version: PostgreSQL records the one the database is created with"))
	}
	if d.ConnectionLimit != nil && *d.ConnectionLimit < -1 {
		errs = append(errs, field.Invalid(p.Child("connectionLimit"), *d.ConnectionLimit, "must be -1 (no limit) or more"))
	}
	if d.Tablespace != "" {
		switch {
		case !dbObjectRE.MatchString(d.Tablespace):
			errs = append(errs, invalidName(p.Child("tablespace"), d.Tablespace))
		case d.Tablespace == "pg_global":
			errs = append(errs, field.Invalid(p.Child("tablespace"), d.Tablespace, "holds shared catalogs only"))
		}
	}
	if d.AllowConnections != nil && !*d.AllowConnections && (len(d.Schemas) > 0 || len(d.Extensions) > 0) {
		errs = append(errs, field.Forbidden(p.Child("allowConnections"), "schemas and extensions are managed from inside the database: it must allow connections"))
	}
	if d.ReclaimPolicy != "" && d.ReclaimPolicy != DatabaseReclaimRetain && d.ReclaimPolicy != DatabaseReclaimDelete {
		errs = append(errs, field.NotSupported(p.Child("databaseReclaimPolicy"), d.ReclaimPolicy, []string{DatabaseReclaimRetain, DatabaseReclaimDelete}))
	}
	if len(d.FDWs) > 0 {
		errs = append(errs, field.Forbidden(p.Child("fdws"), "foreign data wrappers: a CloudNativePG field pgward does not support yet"))
	}
	if len(d.Servers) > 0 {
		errs = append(errs, field.Forbidden(p.Child("servers"), "foreign servers: a CloudNativePG field pgward does not support yet"))
	}
	seen := map[string]bool{}
	for i, s := range d.Schemas {
		q := p.Child("schemas").Index(i)
		switch {
		case !dbObjectRE.MatchString(s.Name):
			errs = append(errs, invalidName(q.Child("name"), s.Name))
		case strings.HasPrefix(s.Name, "pg_") || s.Name == "information_schema":
			errs = append(errs, field.Invalid(q.Child("name"), s.Name, "is a system schema's name"))
		case seen[s.Name]:
			errs = append(errs, field.Duplicate(q.Child("name"), s.Name))
		}
		seen[s.Name] = true
		errs = append(errs, checkEnsure(q.Child("ensure"), s.Ensure)...)
		if s.Owner != "" {
			errs = append(errs, checkOwner(q.Child("owner"), s.Owner, false)...)
		}
	}
	seen = map[string]bool{}
	for i, e := range d.Extensions {
		q := p.Child("extensions").Index(i)
		switch {
		case !extensionRE.MatchString(e.Name):
			errs = append(errs, field.Invalid(q.Child("name"), truncate(e.Name), "must be an extension's name: letters, digits, '_' or '-', at most 63"))
		case seen[e.Name]:
			errs = append(errs, field.Duplicate(q.Child("name"), e.Name))
		}
		seen[e.Name] = true
		errs = append(errs, checkEnsure(q.Child("ensure"), e.Ensure)...)
		if e.Version != "" && !extensionVersionRE.MatchString(e.Version) {
			errs = append(errs, field.Invalid(q.Child("version"), truncate(e.Version), "must be a version: letters, digits, '.', '_', '+' or '-'"))
		}
		if e.Schema != "" && (!dbObjectRE.MatchString(e.Schema) || e.Schema == "information_schema") {
			errs = append(errs, invalidName(q.Child("schema"), e.Schema))
		}
	}
	return errs
}

func invalidName(p *field.Path, v string) *field.Error {
	return field.Invalid(p, truncate(v), "must be a name of 1-63 characters: a letter or '_', then letters, digits, '_', '$' or '-'")
}

func checkEnsure(p *field.Path, v string) field.ErrorList {
	if v != "" && v != "present" && v != "absent" {
		return field.ErrorList{field.NotSupported(p, v, []string{"present", "absent"})}
	}
	return nil
}

func checkOwner(p *field.Path, owner string, required bool) field.ErrorList {
	switch {
	case owner == "" && required:
		return field.ErrorList{field.Required(p, "the role owning it")}
	case !dbObjectRE.MatchString(owner):
		return field.ErrorList{invalidName(p, owner)}
	case reservedDatabaseOwner(owner):
		return field.ErrorList{field.Invalid(p, owner, "is a role pgward or PostgreSQL owns: it cannot own a declared database or schema")}
	}
	return nil
}

// CheckDatabase checks a Database against the Cluster it names: its
// application database may be declared (for schemas and extensions), but
// never dropped, given away or closed, since the application connects to
// it as its owner.
func (c *Cluster) CheckDatabase(d *DatabaseSpec, p *field.Path) field.ErrorList {
	app := c.Spec.Bootstrap.Application()
	if d.Name != app.Database {
		return nil
	}
	var errs field.ErrorList
	const why = "the Cluster's application database: the application connects to it as its owner"
	if d.Ensure == "absent" {
		errs = append(errs, field.Forbidden(p.Child("ensure"), "cannot be absent for "+why))
	}
	if d.ReclaimPolicy == DatabaseReclaimDelete {
		errs = append(errs, field.Forbidden(p.Child("databaseReclaimPolicy"), "cannot be delete for "+why))
	}
	if d.Owner != app.Owner {
		errs = append(errs, field.Invalid(p.Child("owner"), d.Owner, fmt.Sprintf("must be %q for %s", app.Owner, why)))
	}
	if d.AllowConnections != nil && !*d.AllowConnections {
		errs = append(errs, field.Forbidden(p.Child("allowConnections"), "cannot be false for "+why))
	}
	return errs
}

// DatabaseConflicts says, for each declaration of names (the Databases of
// one Cluster, in their order of precedence), whether an earlier one
// already declares the same PostgreSQL database: "" when not.
func DatabaseConflicts(objects, names []string) []string {
	out := make([]string, len(names))
	first := map[string]string{}
	for i, n := range names {
		if o, ok := first[n]; ok {
			out[i] = fmt.Sprintf("Database %q already declares database %q in this Cluster", o, n)
			continue
		}
		first[n] = objects[i]
	}
	return out
}

// LoadDatabase decodes one Database document strictly and validates it on
// its own. The apiVersion may be CloudNativePG's, read as pgward's; its
// foreign data wrappers and servers are refused by name.
func LoadDatabase(doc []byte) (*Database, error) {
	if len(doc) > MaxManifestSize {
		return nil, fmt.Errorf("the document is %d bytes long, more than the %d allowed", len(doc), MaxManifestSize)
	}
	var generic struct {
		Spec   map[string]any `json:"spec"`
		Status any            `json:"status"`
	}
	if err := yaml.Unmarshal(doc, &generic); err != nil {
		return nil, fmt.Errorf("not valid YAML: %s", oneLine(err.Error()))
	}
	var errs []error
	for _, k := range []string{"fdws", "servers"} {
		if _, ok := generic.Spec[k]; ok {
			errs = append(errs, fmt.Errorf(`field "spec.%s" is a Cloud Native PostgreSQL field that pgward does not support yet (foreign data wrappers and servers)`, k))
		}
	}
	if generic.Status != nil {
		errs = append(errs, errors.New(`field "status" is written by pgward and cannot be set in a manifest`))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	var d Database
	if err := yaml.UnmarshalStrict(doc, &d); err != nil {
		return nil, fmt.Errorf("Database: %s", oneLine(err.Error()))
	}
	if !slices.Contains(append([]string{APIVersion}, foreignAPIVersions...), d.APIVersion) {
		return nil, fmt.Errorf("apiVersion %q is not supported: use %s", d.APIVersion, APIVersion)
	}
	if d.Kind != DatabaseKind {
		return nil, fmt.Errorf("kind %q is not %s", d.Kind, DatabaseKind)
	}
	d.APIVersion = APIVersion
	var ferrs field.ErrorList
	if d.Name == "" {
		ferrs = append(ferrs, field.Required(field.NewPath("metadata", "name"), ""))
	} else {
		ferrs = append(ferrs, dnsErrors(field.NewPath("metadata", "name"), d.Name, validation.IsDNS1123Subdomain)...)
	}
	ferrs = append(ferrs, d.Spec.Validate(field.NewPath("spec"))...)
	if agg := ferrs.ToAggregate(); agg != nil {
		return nil, fmt.Errorf("Database %q: %w", d.Name, agg)
	}
	return &d, nil
}

// DatabaseDeclaration is what a runtime hands the primary's instance
// manager for one Database: its object's name and generation (which the
// manager's report echoes) and the spec. Absent entries the runtime adds
// for a deleted declaration with databaseReclaimPolicy delete.
type DatabaseDeclaration struct {
	Object     string       `json:"object"`
	Generation int64        `json:"generation,omitempty"`
	Spec       DatabaseSpec `json:"spec"`
}

// CanonicalEncoding is PostgreSQL's name for an encoding (utf-8: UTF8);
// "" for none or one it does not know.
func CanonicalEncoding(s string) string { return serverEncodings[cleanEncodingName(s)] }
