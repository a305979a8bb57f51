package audit

import (
	"strings"
	"testing"
)

func ptr[T any](v T) *T { return &v }

// pgwardContainer is a container as pgward builds it.
func pgwardContainer() ContainerSecurity {
	return ContainerSecurity{
		Pod: "c-1", Container: "postgres",
		RunAsNonRoot: ptr(true), RunAsUser: ptr(int64(26)),
		AllowPrivilegeEscalation: ptr(false), Privileged: ptr(false), ReadOnlyRootFilesystem: ptr(true),
		CapDrop: []string{"ALL"}, Seccomp: "RuntimeDefault", AutomountServiceAccountToken: ptr(false),
	}
}

func TestDecidePodSecurity(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*ContainerSecurity)
		st     Status
		want   string
	}{
		{"as pgward builds it", func(*ContainerSecurity) {}, Pass, "uid 26"},
		{"a user's Localhost seccomp profile", func(c *ContainerSecurity) { c.Seccomp = "Localhost" }, Pass, ""},
		{"runAsNonRoot unset", func(c *ContainerSecurity) { c.RunAsNonRoot = nil }, Fail, "runAsNonRoot not true"},
		{"runAsNonRoot false", func(c *ContainerSecurity) { c.RunAsNonRoot = ptr(false) }, Fail, "runAsNonRoot not true"},
		{"root", func(c *ContainerSecurity) { c.RunAsUser = ptr(int64(0)) }, Fail, "runAsUser 0 (want 26)"},
		{"no uid", func(c *ContainerSecurity) { c.RunAsUser = nil }, Fail, "runAsUser not set"},
		{"privilege escalation unset", func(c *ContainerSecurity) { c.AllowPrivilegeEscalation = nil }, Fail, "allowPrivilegeEscalation not false"},
		{"privilege escalation", func(c *ContainerSecurity) { c.AllowPrivilegeEscalation = ptr(true) }, Fail, "allowPrivilegeEscalation not false"},
		{"privileged", func(c *ContainerSecurity) { c.Privileged = ptr(true) }, Fail, "privileged"},
		{"capabilities kept", func(c *ContainerSecurity) { c.CapDrop = []string{"NET_RAW"} }, Fail, "do not drop ALL"},
		{"a capability added", func(c *ContainerSecurity) { c.CapAdd = []string{"SYS_ADMIN"} }, Fail, "add SYS_ADMIN"},
		{"writable root", func(c *ContainerSecurity) { c.ReadOnlyRootFilesystem = ptr(false) }, Fail, "readOnlyRootFilesystem"},
		{"no seccomp", func(c *ContainerSecurity) { c.Seccomp = "" }, Fail, "seccomp profile none"},
		{"unconfined", func(c *ContainerSecurity) { c.Seccomp = "Unconfined" }, Fail, "seccomp profile Unconfined"},
		{"host PID", func(c *ContainerSecurity) { c.HostPID = true }, Fail, "host namespace"},
		{"token automounted", func(c *ContainerSecurity) { c.AutomountServiceAccountToken = nil }, Fail, "automountServiceAccountToken"},
	}
	for _, c := range cases {
		init := pgwardContainer()
		init.Container = "bootstrap"
		broken := pgwardContainer()
		c.mutate(&broken)
		got := DecidePodSecurity([]ContainerSecurity{init, broken}, 26)
		if got.Status != c.st || !strings.Contains(got.Evidence, c.want) {
			t.Errorf("%s: %v %q, want %v with %q", c.name, got.Status, got.Evidence, c.st, c.want)
		}
		if c.st == Fail && strings.Contains(got.Evidence, "bootstrap") {
			t.Errorf("%s: the healthy container is named: %s", c.name, got.Evidence)
		}
	}
	if got := DecidePodSecurity(nil, 26); got.Status != Warn {
		t.Errorf("no pod: %v, want WARN", got.Status)
	}
}

func TestDecideProjectionModes(t *testing.T) {
	ok := Projection{Pod: "c-1", Volume: "config", Secret: "c-server", Key: "tls.key", Mode: 0o400}
	cases := []struct {
		name string
		p    Projection
		st   Status
		want string
	}{
		{"0400", ok, Pass, "each projected alone"},
		{"0600", Projection{Pod: "c-1", Volume: "config", Secret: "c-server", Key: "tls.key", Mode: 0o600}, Pass, ""},
		{"0640", Projection{Pod: "c-1", Volume: "config", Secret: "c-server", Key: "tls.key", Mode: 0o640}, Fail, "tls.key is 0640"},
		{"0644 (Kubernetes' default)", Projection{Pod: "c-1", Volume: "config", Secret: "c-server", Key: "tls.key", Mode: 0o644}, Fail, "is 0644"},
		{"0700 (executable)", Projection{Pod: "c-1", Volume: "config", Secret: "c-server", Key: "tls.key", Mode: 0o700}, Fail, "is 0700"},
		{"a whole secret", Projection{Pod: "c-1", Volume: "extra", Secret: "c-app", Mode: 0o400}, Fail, "mounted whole"},
		{"the CA's certificate", Projection{Pod: "c-1", Volume: "config", Secret: "c-ca", Key: "ca.crt", Mode: 0o400}, Pass, ""},
		{"the CA's key", Projection{Pod: "c-1", Volume: "extra", Secret: "c-ca", Key: "ca.key", Mode: 0o400}, Fail, "secret c-ca key ca.key is never to be in a pod"},
		{"the CA's secret whole", Projection{Pod: "c-1", Volume: "extra", Secret: "c-ca", Mode: 0o400}, Fail, "with a key never to be in a pod"},
		{"the controller certificate", Projection{Pod: "c-1", Volume: "extra", Secret: "c-controller", Key: "tls.key", Mode: 0o400}, Fail, "never to be in a pod"},
	}
	for _, c := range cases {
		got := DecideProjectionModes([]Projection{ok, c.p}, []string{"c-ca/ca.key", "c-controller"})
		if got.Status != c.st || !strings.Contains(got.Evidence, c.want) {
			t.Errorf("%s: %v %q, want %v with %q", c.name, got.Status, got.Evidence, c.st, c.want)
		}
	}
	if got := DecideProjectionModes(nil, nil); got.Status != Warn {
		t.Errorf("nothing projected: %v, want WARN", got.Status)
	}
}

func TestDecideNetworkPolicies(t *testing.T) {
	all := []PolicyCheck{{Name: "c-postgresql", Found: true}, {Name: "c-status", Found: true}, {Name: "c-metrics", Found: true}}
	cases := []struct {
		name    string
		enabled bool
		checks  []PolicyCheck
		st      Status
		want    string
	}{
		{"disabled", false, nil, Pass, "not enabled"},
		{"all present", true, all, Pass, "c-postgresql, c-status, c-metrics"},
		{"one missing", true, []PolicyCheck{all[0], {Name: "c-status"}, all[2]}, Fail, "c-status is missing"},
		{"one widened", true, []PolicyCheck{all[0], all[1], {Name: "c-metrics", Found: true, Differs: "ingress rules"}}, Fail, "c-metrics differs from pgward's: ingress rules"},
	}
	for _, c := range cases {
		got := DecideNetworkPolicies(c.enabled, c.checks)
		if got.Status != c.st || !strings.Contains(got.Evidence, c.want) {
			t.Errorf("%s: %v %q, want %v with %q", c.name, got.Status, got.Evidence, c.st, c.want)
		}
	}
}

func TestDecideSuperuserSecretAndPassword(t *testing.T) {
	cases := []struct {
		name           string
		access, exists bool
		st             Status
	}{
		{"access off, no secret", false, false, Pass},
		{"access off, a secret", false, true, Fail},
		{"access on, a secret", true, true, Pass},
	}
	for _, c := range cases {
		if got := DecideSuperuserSecret(c.access, "c-superuser", c.exists); got.Status != c.st {
			t.Errorf("%s: %v, want %v (%s)", c.name, got.Status, c.st, got.Evidence)
		}
	}
	if DecideSuperuserPassword("c-1", true).Status != Fail || DecideSuperuserPassword("c-1", false).Status != Pass {
		t.Error("DecideSuperuserPassword: a password must fail, none pass")
	}
}

func TestDecideAutoConfNames(t *testing.T) {
	if got := DecideAutoConfNames("c-1", nil); got.Status != Pass {
		t.Errorf("empty: %v", got.Status)
	}
	if got := DecideAutoConfNames("c-1", []string{"ssl_min_protocol_version"}); got.Status != Fail || !strings.Contains(got.Evidence, "ssl_min_protocol_version") {
		t.Errorf("drift: %v %q", got.Status, got.Evidence)
	}
}
