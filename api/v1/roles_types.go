package v1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// ManagedConfiguration holds what pgward keeps as declared inside
// PostgreSQL, repairing drift.
type ManagedConfiguration struct {
	// Roles are database roles, reconciled continuously on the primary.
	// +optional
	// +kubebuilder:validation:MaxItems=1000
	Roles []RoleConfiguration `json:"roles,omitempty"`
	// Services changes the operator's Services on Kubernetes.
	// +optional
	Services *ManagedServices `json:"services,omitempty"`
}

// RoleConfiguration is one role, with Cloud Native PostgreSQL's fields.
type RoleConfiguration struct {
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`
	// +optional
	Comment string `json:"comment,omitempty"`
	// Ensure is present (default) or absent (the role is dropped).
	// +optional
	// +kubebuilder:validation:Enum=present;absent
	Ensure string `json:"ensure,omitempty"`
	// PasswordSecret names a secret (keys username, password) whose
	// password the role gets; a change applies within a second.
	// +optional
	PasswordSecret *LocalObjectReference `json:"passwordSecret,omitempty"`
	// DisablePassword removes the role's password.
	// +optional
	DisablePassword bool `json:"disablePassword,omitempty"`
	// ConnectionLimit (-1, the default: no limit).
	// +optional
	ConnectionLimit *int64 `json:"connectionLimit,omitempty"`
	// ValidUntil is when the password stops being valid (empty: never).
	// +optional
	ValidUntil *metav1.Time `json:"validUntil,omitempty"`
	// InRoles are the roles this one is a member of, exactly.
	// +optional
	// +kubebuilder:validation:MaxItems=100
	InRoles []string `json:"inRoles,omitempty"`
	// Inherit (default true) makes the role use its roles' privileges.
	// +optional
	Inherit *bool `json:"inherit,omitempty"`
	// Login lets the role connect.
	// +optional
	Login bool `json:"login,omitempty"`
	// CreateDB lets the role create databases.
	// +optional
	CreateDB bool `json:"createdb,omitempty"`
	// CreateRole is refused unless superuser access is on: in PostgreSQL
	// 15 such a role can grant itself pg_execute_server_program.
	// +optional
	CreateRole bool `json:"createrole,omitempty"`
	// BypassRLS lets the role bypass row-level security.
	// +optional
	BypassRLS bool `json:"bypassrls,omitempty"`
	// Superuser and Replication are refused: postgres is the only
	// superuser, and replication authenticates by certificate.
	// +optional
	Superuser bool `json:"superuser,omitempty"`
	// +optional
	Replication bool `json:"replication,omitempty"`
}
