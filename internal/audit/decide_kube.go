package audit

import (
	"fmt"
	"slices"
	"strings"
)

// Decisions about what the Kubernetes API holds for a running cluster
// (pods as admitted, projected secrets, NetworkPolicies, secrets). The
// Kubernetes adapter (internal/kube/audit.go) reduces API objects to the
// plain types here, so the decisions stay free of client libraries.

// ContainerSecurity is the effective security context of one container of
// a pod: the container's fields, else the pod's.
type ContainerSecurity struct {
	Pod, Container           string
	RunAsNonRoot             *bool
	RunAsUser                *int64
	AllowPrivilegeEscalation *bool
	Privileged               *bool
	ReadOnlyRootFilesystem   *bool
	CapDrop, CapAdd          []string
	// Seccomp is the profile type ("RuntimeDefault", "Localhost",
	// "Unconfined"; empty when none is set).
	Seccomp                       string
	HostNetwork, HostPID, HostIPC bool
	AutomountServiceAccountToken  *bool
}

func isTrue(b *bool) bool  { return b != nil && *b }
func isFalse(b *bool) bool { return b != nil && !*b }

// DecidePodSecurity checks every container (init containers included) of
// the cluster's pods against what pgward sets and docs/security.md
// promises: runAsNonRoot, uid wantUID, no privilege escalation, not
// privileged, every capability dropped and none added, a read-only root
// filesystem, a seccomp profile (RuntimeDefault or the user's Localhost
// one, never Unconfined or none), no host namespace and no automounted
// service-account token.
func DecidePodSecurity(cs []ContainerSecurity, wantUID int64) Part {
	if len(cs) == 0 {
		return Part{"", Warn, "no pod of the cluster found"}
	}
	var bad []string
	pods := map[string]bool{}
	for _, c := range cs {
		pods[c.Pod] = true
		var w []string
		if !isTrue(c.RunAsNonRoot) {
			w = append(w, "runAsNonRoot not true")
		}
		switch {
		case c.RunAsUser == nil:
			w = append(w, "runAsUser not set")
		case *c.RunAsUser != wantUID:
			w = append(w, fmt.Sprintf("runAsUser %d (want %d)", *c.RunAsUser, wantUID))
		}
		if !isFalse(c.AllowPrivilegeEscalation) {
			w = append(w, "allowPrivilegeEscalation not false")
		}
		if isTrue(c.Privileged) {
			w = append(w, "privileged")
		}
		if !slices.Contains(c.CapDrop, "ALL") {
			w = append(w, "capabilities do not drop ALL")
		}
		if len(c.CapAdd) > 0 {
			w = append(w, "capabilities add "+strings.Join(c.CapAdd, ","))
		}
		if !isTrue(c.ReadOnlyRootFilesystem) {
			w = append(w, "readOnlyRootFilesystem not true")
		}
		if c.Seccomp != "RuntimeDefault" && c.Seccomp != "Localhost" {
			w = append(w, "seccomp profile "+orNone(c.Seccomp)+" (want RuntimeDefault)")
		}
		if c.HostNetwork || c.HostPID || c.HostIPC {
			w = append(w, "shares a host namespace")
		}
		if !isFalse(c.AutomountServiceAccountToken) {
			w = append(w, "automountServiceAccountToken not false")
		}
		if len(w) > 0 {
			bad = append(bad, fmt.Sprintf("pod %s container %s: %s", c.Pod, c.Container, strings.Join(w, ", ")))
		}
	}
	if len(bad) > 0 {
		return Part{"", Fail, strings.Join(bad, "; ")}
	}
	return Part{"", Pass, fmt.Sprintf("%d containers in %d pods: runAsNonRoot, uid %d, no privilege escalation, capabilities drop ALL, read-only root filesystem, seccomp, no host namespace, no automounted token", len(cs), len(pods), wantUID)}
}

func orWhole(key string) string {
	if key == "" {
		return "(whole)"
	}
	return "key " + key
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// Projection is one secret reaching a pod through a volume: a key
// projected to a file with its effective mode, or (Key empty) a whole
// secret.
type Projection struct {
	Pod, Volume, Secret, Key string
	// Mode is the file's mode: the item's, else the volume's defaultMode,
	// else Kubernetes' default 0644.
	Mode int32
}

// MaxSecretMode is the widest mode a projected secret key may have: its
// owner may read and write it, no one else anything (pgward projects 0400).
const MaxSecretMode = 0o600

// DecideProjectionModes checks the secrets the cluster's pods mount:
// every key projected one by one (never a whole secret, which would bring
// keys the instance does not need), no wider than MaxSecretMode, and none
// of what no pod may hold (forbidden: "secret" for every key of a secret,
// such as the operator's client certificate, or "secret/key", such as the
// CA's private key).
func DecideProjectionModes(ps []Projection, forbidden []string) Part {
	if len(ps) == 0 {
		return Part{"", Warn, "no secret projected into a pod of the cluster (no pod found?)"}
	}
	var bad []string
	pods := map[string]bool{}
	for _, p := range ps {
		pods[p.Pod] = true
		where := fmt.Sprintf("pod %s volume %s secret %s", p.Pod, p.Volume, p.Secret)
		switch {
		case slices.Contains(forbidden, p.Secret) || (p.Key != "" && slices.Contains(forbidden, p.Secret+"/"+p.Key)):
			bad = append(bad, where+" "+orWhole(p.Key)+" is never to be in a pod")
		case p.Key == "" && slices.ContainsFunc(forbidden, func(f string) bool { return strings.HasPrefix(f, p.Secret+"/") }):
			bad = append(bad, where+" (whole, with a key never to be in a pod)")
		case p.Key == "":
			bad = append(bad, fmt.Sprintf("%s mounted whole (mode %04o; want key by key)", where, p.Mode))
		case p.Mode&^MaxSecretMode != 0:
			bad = append(bad, fmt.Sprintf("%s key %s is %04o (want 0400, at most %04o)", where, p.Key, p.Mode, MaxSecretMode))
		}
	}
	if len(bad) > 0 {
		return Part{"", Fail, strings.Join(bad, "; ")}
	}
	return Part{"", Pass, fmt.Sprintf("%d secret keys in %d pods, each projected alone and at most %04o; no CA key or controller certificate", len(ps), len(pods), MaxSecretMode)}
}

// PolicyCheck is one NetworkPolicy pgward makes for a cluster that enables
// them, as found in the API.
type PolicyCheck struct {
	Name  string
	Found bool
	// Differs says how the stored policy differs from pgward's (empty:
	// the same pod selector, policy types and rules).
	Differs string
}

// DecideNetworkPolicies checks, with NetworkPolicies enabled, that each of
// pgward's exists as pgward builds it; disabled, there is nothing to check.
func DecideNetworkPolicies(enabled bool, checks []PolicyCheck) Part {
	if !enabled {
		return Part{"", Pass, "not enabled (spec.networkPolicy.enabled is false): nothing to check"}
	}
	var bad, names []string
	for _, c := range checks {
		names = append(names, c.Name)
		switch {
		case !c.Found:
			bad = append(bad, c.Name+" is missing")
		case c.Differs != "":
			bad = append(bad, c.Name+" differs from pgward's: "+c.Differs)
		}
	}
	if len(bad) > 0 {
		return Part{"", Fail, strings.Join(bad, ", ")}
	}
	return Part{"", Pass, "present as pgward builds them: " + strings.Join(names, ", ")}
}

// DecideSuperuserSecret checks that, with superuser access off, the
// superuser secret pgward would generate does not exist (it would hold a password nobody
// should have).
func DecideSuperuserSecret(access bool, name string, exists bool) Part {
	switch {
	case access:
		return Part{"", Pass, "superuser access is on (spec.enableSuperuserAccess): postgres has a generated password by choice"}
	case exists:
		return Part{"", Fail, "secret " + name + " exists although superuser access is off"}
	}
	return Part{"", Pass, "no secret " + name}
}

// DecideSuperuserPassword judges what an instance says of postgres's
// password when superuser access is off.
func DecideSuperuserPassword(subject string, has bool) Part {
	if has {
		return Part{subject, Fail, "postgres has a password although superuser access is off"}
	}
	return Part{subject, Pass, "postgres has no password"}
}
