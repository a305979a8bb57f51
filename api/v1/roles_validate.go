package v1

import (
	"fmt"
	"slices"
	"strings"

	"github.com/pgward/pgward/internal/safetext"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// serverFileRoles give access to the server's files and programs: a member
// can read pgward's keys and run commands as the PostgreSQL OS user.
var serverFileRoles = []string{"pg_execute_server_program", "pg_read_server_files", "pg_write_server_files"}

// validateManaged checks the declared roles. The classes refused: pgward's
// own roles and PostgreSQL's (never managed from a manifest); superuser
// and replication roles (postgres is the only superuser, replication
// authenticates by certificate); and, unless superuser access is on, every
// way to the server's files: CREATEROLE (which in PostgreSQL 15 can grant
// the server-file roles) and membership in those roles.
func (s *ClusterSpec) validateManaged(path *field.Path) field.ErrorList {
	if s.Managed == nil {
		return nil
	}
	var errs field.ErrorList
	superuser := s.EnableSuperuserAccess != nil && *s.EnableSuperuserAccess
	owner := s.Bootstrap.Application().Owner
	seen := map[string]bool{}
	for i, r := range s.Managed.Roles {
		p := path.Child("managed", "roles").Index(i)
		name := p.Child("name")
		errs = append(errs, validateIdentifier(name, r.Name)...)
		switch {
		case seen[r.Name]:
			errs = append(errs, field.Duplicate(name, r.Name))
		case slices.Contains(reservedOwners, r.Name) || slices.Contains(reservedIdentities, r.Name) || strings.HasPrefix(r.Name, "pg_"):
			errs = append(errs, field.Invalid(name, r.Name, "is a role pgward or PostgreSQL owns: it cannot be managed from the manifest"))
		case r.Name == owner && (r.PasswordSecret != nil || r.DisablePassword):
			errs = append(errs, field.Forbidden(p.Child("passwordSecret"), "the application owner's password is its bootstrap secret's (rotate-password, or the secret itself)"))
		case r.Name == owner && (r.Ensure == "absent" || !r.Login):
			errs = append(errs, field.Forbidden(p.Child("login"), "the application owner must exist and log in: the application connects as it"))
		}
		seen[r.Name] = true
		if r.Ensure != "" && r.Ensure != "present" && r.Ensure != "absent" {
			errs = append(errs, field.NotSupported(p.Child("ensure"), r.Ensure, []string{"present", "absent"}))
		}
		if r.Superuser {
			errs = append(errs, field.Forbidden(p.Child("superuser"), "postgres is the only superuser (spec.enableSuperuserAccess)"))
		}
		if r.Replication {
			errs = append(errs, field.Forbidden(p.Child("replication"), "replication authenticates by certificate as streaming_replica, never with a password"))
		}
		if r.CreateRole && !superuser {
			errs = append(errs, field.Forbidden(p.Child("createrole"),
				"a CREATEROLE role can grant itself pg_execute_server_program in PostgreSQL 15, and so read pgward's keys: allowed only with spec.enableSuperuserAccess"))
		}
		if r.PasswordSecret != nil {
			errs = append(errs, validateSecretName(p.Child("passwordSecret", "name"), r.PasswordSecret.Name)...)
			if r.DisablePassword {
				errs = append(errs, field.Forbidden(p.Child("disablePassword"), "passwordSecret and disablePassword exclude each other"))
			}
		}
		if r.ConnectionLimit != nil && *r.ConnectionLimit < -1 {
			errs = append(errs, field.Invalid(p.Child("connectionLimit"), *r.ConnectionLimit, "must be -1 (no limit) or more"))
		}
		if err := safetext.Check(r.Comment); err != nil {
			errs = append(errs, field.Invalid(p.Child("comment"), "", err.Error()))
		} else if len(r.Comment) > 1024 {
			errs = append(errs, field.TooLong(p.Child("comment"), "", 1024))
		}
		for j, in := range r.InRoles {
			q := p.Child("inRoles").Index(j)
			if err := safetext.Check(in); err != nil || in == "" || len(in) > 63 {
				errs = append(errs, field.Invalid(q, truncate(in), "must be a role name"))
				continue
			}
			switch {
			case in == r.Name:
				errs = append(errs, field.Invalid(q, in, "a role cannot be a member of itself"))
			case in == SuperuserRole || slices.Contains(reservedIdentities, in):
				errs = append(errs, field.Invalid(q, in, "is one of pgward's roles: membership would hand over its privileges"))
			case slices.Contains(serverFileRoles, in) && !superuser:
				errs = append(errs, field.Forbidden(q, fmt.Sprintf("%s gives access to the server's files and programs (pgward's keys included): allowed only with spec.enableSuperuserAccess", in)))
			}
		}
	}
	return errs
}

// ManagedPasswordSecrets lists the secrets managed roles take passwords
// from, with the field naming each and the role it is for.
func (c *Cluster) ManagedPasswordSecrets() []SecretKeyUse {
	if c.Spec.Managed == nil {
		return nil
	}
	var out []SecretKeyUse
	for i, r := range c.Spec.Managed.Roles {
		if r.PasswordSecret != nil && r.Ensure != "absent" {
			out = append(out, SecretKeyUse{
				Field: fmt.Sprintf("spec.managed.roles[%d].passwordSecret", i), Name: r.PasswordSecret.Name, Key: "password", What: "role " + r.Name,
			})
		}
	}
	return out
}
