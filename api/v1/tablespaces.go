package v1

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// TablespaceConfiguration declares one tablespace (CloudNativePG's field
// names): pgward gives it storage of its own on every instance and creates
// it on the primary.
type TablespaceConfiguration struct {
	// Name of the tablespace: a lower-case PostgreSQL identifier (a letter,
	// then letters, digits or '_'), not starting with pg_, at most 59
	// characters (its Kubernetes volume is named tbs-<name>).
	Name string `json:"name"`
	// Storage of the tablespace: on Kubernetes one PVC per instance
	// (size required there); locally a directory beside the instance's
	// data directory (size recorded, not enforced).
	// +optional
	Storage StorageConfiguration `json:"storage,omitempty"`
	// Owner of the tablespace (default: postgres); changing it is applied
	// with ALTER TABLESPACE.
	// +optional
	Owner DatabaseRoleRef `json:"owner,omitempty"`
	// Temporary tablespaces are listed in temp_tablespaces, which pgward
	// then sets (and a user may not).
	// +optional
	Temporary bool `json:"temporary,omitempty"`
}

// DatabaseRoleRef names a PostgreSQL role.
type DatabaseRoleRef struct {
	// +optional
	Name string `json:"name,omitempty"`
}

// MaxTablespaces bounds spec.tablespaces (one volume per tablespace per
// instance on Kubernetes).
const MaxTablespaces = 32

// maxTablespaceName keeps "tbs-<name>", the pod's volume name, within a
// 63-character DNS label.
const maxTablespaceName = 59

// tablespaceNameRE starts with a letter and never ends with '_', so that
// the Kubernetes name made of it ('_' becomes '-') is a valid DNS label
// part, and two names never map to the same volume ('-' is not allowed).
var tablespaceNameRE = regexp.MustCompile(`^[a-z]([a-z0-9_]*[a-z0-9])?$`)

// TablespaceOwner is who owns t: its declared owner, else postgres.
func (t TablespaceConfiguration) TablespaceOwner() string {
	if t.Owner.Name != "" {
		return t.Owner.Name
	}
	return SuperuserRole
}

// TemporaryTablespaces are the names pgward sets temp_tablespaces to, in
// the manifest's order (PostgreSQL picks among them at random per
// temporary object, so order only matters for reproducible files).
func (s *ClusterSpec) TemporaryTablespaces() []string {
	var names []string
	for _, t := range s.Tablespaces {
		if t.Temporary {
			names = append(names, t.Name)
		}
	}
	return names
}

// validateTablespaces checks names as PostgreSQL and Kubernetes will take
// them, the owners, the sizes, and what pgward must own once a tablespace
// is temporary (temp_tablespaces).
func (s *ClusterSpec) validateTablespaces(path *field.Path) field.ErrorList {
	if len(s.Tablespaces) == 0 {
		return nil
	}
	p := path.Child("tablespaces")
	if len(s.Tablespaces) > MaxTablespaces {
		return field.ErrorList{field.TooMany(p, len(s.Tablespaces), MaxTablespaces)}
	}
	var errs field.ErrorList
	seen := map[string]bool{}
	absent := map[string]bool{}
	if s.Managed != nil {
		for _, r := range s.Managed.Roles {
			if r.Ensure == "absent" {
				absent[r.Name] = true
			}
		}
	}
	for i, t := range s.Tablespaces {
		tp := p.Index(i)
		name := tp.Child("name")
		switch {
		case t.Name == "":
			errs = append(errs, field.Required(name, "a tablespace needs a name"))
		case strings.HasPrefix(t.Name, "pg_"):
			errs = append(errs, field.Invalid(name, t.Name, "names starting with pg_ are reserved for PostgreSQL's own tablespaces"))
		case len(t.Name) > maxTablespaceName:
			errs = append(errs, field.TooLong(name, t.Name, maxTablespaceName))
		case !tablespaceNameRE.MatchString(t.Name):
			errs = append(errs, field.Invalid(name, t.Name,
				"must be a lower-case PostgreSQL identifier: a letter, then letters, digits or '_', not ending with '_'"))
		case seen[t.Name]:
			errs = append(errs, field.Duplicate(name, t.Name))
		}
		seen[t.Name] = true
		if o := t.Owner.Name; o != "" {
			op := tp.Child("owner", "name")
			switch {
			case !identifierRE.MatchString(o):
				errs = append(errs, validateIdentifier(op, o)...)
			case strings.HasPrefix(o, "pg_") || (o != SuperuserRole && slices.Contains(reservedOwners, o)) || (o != SuperuserRole && slices.Contains(reservedIdentities, o)):
				errs = append(errs, field.Invalid(op, o, "is a role pgward or PostgreSQL owns: it cannot own a tablespace"))
			case absent[o]:
				errs = append(errs, field.Invalid(op, o, "spec.managed.roles declares this role absent"))
			}
		}
		errs = append(errs, validateStorage(t.Storage, tp.Child("storage"))...)
	}
	if len(s.TemporaryTablespaces()) > 0 {
		if _, ok := s.PostgresConfiguration.Parameters["temp_tablespaces"]; ok {
			errs = append(errs, field.Forbidden(path.Child("postgresql", "parameters").Key("temp_tablespaces"),
				"pgward sets it to the tablespaces declared temporary in spec.tablespaces"))
		}
	}
	// pgBackRest follows a tablespace's link from wherever it runs, and
	// pgward has not yet taught its backups and restores where each
	// instance keeps them: refused rather than a backup that misses them.
	if s.Backup != nil {
		errs = append(errs, field.Forbidden(p, "tablespaces with spec.backup are not supported yet: backups would not hold them"))
	}
	if s.Bootstrap != nil && s.Bootstrap.Recovery != nil {
		errs = append(errs, field.Forbidden(p, "tablespaces with bootstrap.recovery are not supported yet: the restore would not put them in place"))
	}
	return errs
}

// validateTablespacesUpdate refuses what cannot apply to a running
// cluster: a tablespace removed or renamed (PostgreSQL drops only an empty
// tablespace, which the manifest cannot tell, and pgward would otherwise
// leave it behind while the manifest says it is gone) and a volume shrunk.
func validateTablespacesUpdate(oldS, newS *ClusterSpec, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	p := path.Child("tablespaces")
	byName := map[string]TablespaceConfiguration{}
	for _, t := range newS.Tablespaces {
		byName[t.Name] = t
	}
	for i, old := range oldS.Tablespaces {
		n, ok := byName[old.Name]
		if !ok {
			errs = append(errs, field.Forbidden(p.Index(i), fmt.Sprintf(
				"tablespace %q cannot be removed or renamed: pgward does not drop tablespaces (PostgreSQL drops only an empty one); it stays declared", old.Name)))
			continue
		}
		idx := slices.IndexFunc(newS.Tablespaces, func(t TablespaceConfiguration) bool { return t.Name == old.Name })
		errs = append(errs, validateStorageUpdate(old.Storage.Size, n.Storage.Size, p.Index(idx).Child("storage", "size"))...)
	}
	return errs
}

// IsTablespaceName reports whether name is a tablespace name validation
// accepts, for the runtimes to check again before it reaches a path or
// SQL.
func IsTablespaceName(name string) bool {
	return len(name) <= maxTablespaceName && tablespaceNameRE.MatchString(name) && !strings.HasPrefix(name, "pg_")
}
