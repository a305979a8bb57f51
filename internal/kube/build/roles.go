package build

import (
	"slices"

	v1 "github.com/pgward/pgward/api/v1"
)

// RoleSecretKeys are the keys of a managed role's password secret the
// instance manager reads (the username, when present, must be the
// role's).
var RoleSecretKeys = []string{"username", "password"}

// RoleSecretNames are the Secrets spec.managed.roles takes passwords from,
// sorted and each once. A role that is to be absent keeps its secret in
// the list: switching ensure back and forth must not change what the
// pods project (a pod's volumes are fixed when it is created).
func RoleSecretNames(c *v1.Cluster) []string {
	if c.Spec.Managed == nil {
		return nil
	}
	var out []string
	for _, r := range c.Spec.Managed.Roles {
		if r.PasswordSecret != nil && !slices.Contains(out, r.PasswordSecret.Name) {
			out = append(out, r.PasswordSecret.Name)
		}
	}
	slices.Sort(out)
	return out
}
