package e2e

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestUpRefusesBadManifests runs `pgward local up` on manifests a careless
// or hostile user might write: each is refused with an error naming the
// field, and nothing is created.
func TestUpRefusesBadManifests(t *testing.T) {
	head := "apiVersion: postgresql.pgward.io/v1\nkind: Cluster\nmetadata:\n  name: bad\nspec:\n  instances: 2\n"
	cases := []struct {
		name, spec string
		want       []string
	}{
		{"fixed parameter", "  postgresql:\n    parameters:\n      port: \"5433\"\n",
			[]string{"spec.postgresql.parameters[port]", `parameter "port" is managed by pgward`}},
		{"newline in a parameter value", "  postgresql:\n    parameters:\n      work_mem: \"4MB\\nlisten_addresses='*'\"\n",
			[]string{"spec.postgresql.parameters[work_mem]", "U+000A"}},
		{"newline in a pg_hba line", "  postgresql:\n    pg_hba:\n      - \"host all all all md5\\nhost all all all trust\"\n",
			[]string{"spec.postgresql.pg_hba[0]", "U+000A"}},
		{"trust over the network", "  postgresql:\n    pg_hba:\n      - host all all 0.0.0.0/0 trust\n",
			[]string{"spec.postgresql.pg_hba[0]", `"trust"`}},
		{"LDAP in clear text", "  postgresql:\n    ldap:\n      server: ldap.example.org\n      bindAsAuth: {prefix: \"uid=\"}\n",
			[]string{"spec.postgresql.ldap.scheme", "in clear text"}},
		{"LDAP bind password leaving its quotes", "  postgresql:\n    ldap:\n      server: ldap.example.org\n      scheme: ldaps\n" +
			"      bindSearchAuth: {baseDN: \"dc=x\", bindDN: \"cn=s\", bindPassword: {name: bind, key: password}}\n" +
			"---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: bind\nstringData:\n  password: \"x\\\" ldapscheme=ldap y=\\\"\"\n",
			[]string{"spec.postgresql.ldap.bindSearchAuth.bindPassword", "double quote"}},
		{"no LDAP bind secret", "  postgresql:\n    ldap:\n      server: ldap.example.org\n      scheme: ldaps\n" +
			"      bindSearchAuth: {baseDN: \"dc=x\", bindDN: \"cn=s\", bindPassword: {name: nope, key: password}}\n",
			[]string{"spec.postgresql.ldap.bindSearchAuth.bindPassword", `no secret "nope"`}},
		{"unknown field", "  postgresql:\n    parameterz:\n      work_mem: 4MB\n",
			[]string{`unknown field "spec.postgresql.parameterz"`}},
		{"unsupported Cloud Native PostgreSQL field", "  tablespaces:\n    - name: t\n      storage:\n        pvcTemplate: {}\n",
			[]string{`"spec.tablespaces[0].storage.pvcTemplate"`, "not support yet"}},
		{"ident over the network", "  postgresql:\n    pg_hba:\n      - host all postgres samenet ident map=m\n",
			[]string{"spec.postgresql.pg_hba[0]", `"ident" is not allowed on host rules`}},
		{"a map making the replication certificate a superuser", "  postgresql:\n    pg_hba:\n      - hostssl all postgres all cert map=certs\n" +
			"    pg_ident:\n      - certs streaming_replica postgres\n",
			[]string{"spec.postgresql.pg_ident[0]", "mapping to the superuser"}},
		{"a way in for postgres without superuser access", "  postgresql:\n    pg_hba:\n      - hostssl all postgres all cert\n",
			[]string{"spec.postgresql.pg_hba[0]", "needs enableSuperuserAccess: true"}},
		{"a parameter PostgreSQL does not have", "  postgresql:\n    parameters:\n      shared_bufers: 1GB\n",
			[]string{"spec.postgresql.parameters[shared_bufers]", `did you mean "shared_buffers"`}},
		{"a value out of range", "  postgresql:\n    parameters:\n      shared_buffers: 64kB\n",
			[]string{"spec.postgresql.parameters[shared_buffers]", "outside the valid range"}},
		// Only the server can tell these: pgward asks it (postgres -C)
		// before writing anything, and names the field.
		{"a time zone the server does not know", "  postgresql:\n    parameters:\n      timezone: Mars/Olympus\n",
			[]string{"spec.postgresql.parameters[timezone]", `invalid value for parameter "TimeZone": "Mars/Olympus"`}},
		{"a locale this machine does not have", "  bootstrap:\n    initdb:\n      database: app\n      owner: app\n      localeCType: xx_YY.UTF-8\n",
			[]string{"spec.bootstrap.initdb.localeCType", "locale not installed on this machine"}},
		{"credentials over the cluster's CA", "  bootstrap:\n    initdb:\n      database: app\n      owner: app\n      secret:\n        name: bad-ca\n",
			[]string{"spec.bootstrap.initdb.secret.name", "is the name of a secret pgward generates"}},
		{"a SQL reference to a ConfigMap the file lacks", "  bootstrap:\n    initdb:\n      postInitSQLRefs:\n        configMapRefs: [{name: nope, key: a.sql}]\n",
			[]string{"spec.bootstrap.initdb.postInitSQLRefs.configMapRefs[0]", `no ConfigMap "nope" in the manifest file`}},
		{"a Backup object locally", "  bootstrap:\n    recovery:\n      backup: {name: backup-example}\n",
			[]string{"spec.bootstrap.recovery.backup", "Kubernetes Backup object", "recoveryTarget.backupID"}},
		{"an initdb option in the ICU locale", "  bootstrap:\n    initdb:\n      localeProvider: icu\n      icuLocale: \"--auth=trust\"\n",
			[]string{"spec.bootstrap.initdb.icuLocale", "BCP 47"}},
		{"an option PostgreSQL would refuse", "  postgresql:\n    pg_hba:\n      - hostssl all all all scram-sha-256 map=m\n",
			[]string{"spec.postgresql.pg_hba[0]", `option "map" only applies to method`}},
		{"sync failure domains locally", "  minSyncReplicas: 1\n  maxSyncReplicas: 1\n  postgresql:\n    syncReplicaElectionConstraint:\n      enabled: true\n      nodeLabelsAntiAffinity: [az]\n",
			[]string{"spec.postgresql.syncReplicaElectionConstraint", "one failure domain"}},
		{"pod selectors locally", "  podSelectorRefs:\n    - name: app\n      selector: {matchLabels: {app: web}}\n  postgresql:\n    pg_hba:\n      - hostssl app app ${podselector:app} scram-sha-256\n",
			[]string{"spec.podSelectorRefs", "locally there are no pods"}},
		{"volume snapshots locally", "  backup:\n    volumeSnapshot:\n      className: csi\n",
			[]string{"spec.backup.volumeSnapshot", "Kubernetes-only"}},
		{"snapshot recovery locally", "  bootstrap:\n    recovery:\n      volumeSnapshots:\n        storage: {name: s, kind: VolumeSnapshot, apiGroup: snapshot.storage.k8s.io}\n",
			[]string{"spec.bootstrap.recovery.volumeSnapshots", "Kubernetes-only"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := newStateDir(t, "refused-"+strings.ReplaceAll(c.name, " ", "-"))
			manifest := filepath.Join(workRoot, strings.ReplaceAll(c.name, " ", "-")+".yaml")
			if err := os.WriteFile(manifest, []byte(head+c.spec), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := pgward(context.Background(), "local", "up", "-f", manifest, "--dir", dir)
			if err == nil {
				t.Fatalf("accepted:\n%s", out)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("error lacks %q:\n%s", w, out)
				}
			}
			if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a refused manifest created %s", dir)
			}
		})
	}
}

// TestUpFailsFastWhenTheServerWillNotStart: a manifest that passes every
// check but whose PostgreSQL cannot start (shared memory it cannot have)
// makes `up` fail in seconds with the server's message and the field, not
// wait for its timeout.
func TestUpFailsFastWhenTheServerWillNotStart(t *testing.T) {
	runAsUser(t)
	manifest := filepath.Join(workRoot, "too-big.yaml")
	if err := os.WriteFile(manifest, []byte("apiVersion: postgresql.pgward.io/v1\nkind: Cluster\nmetadata:\n  name: big\nspec:\n"+
		"  instances: 1\n  postgresql:\n    parameters:\n      max_locks_per_transaction: \"2147483647\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := newStateDir(t, "too-big")
	t.Cleanup(func() { _, _ = pgward(context.Background(), "local", "down", "--purge", "--dir", dir) })
	start := time.Now()
	out, err := pgward(context.Background(), "local", "up", "-f", manifest, "--dir", dir, "--timeout", "2m")
	took := time.Since(start)
	if err == nil {
		t.Fatalf("up succeeded:\n%s", out)
	}
	for _, want := range []string{"spec.postgresql.parameters[max_locks_per_transaction]", "FATAL:", "shared memory"} {
		if !strings.Contains(out, want) {
			t.Errorf("up's error lacks %q:\n%s", want, out)
		}
	}
	if took > 40*time.Second {
		t.Errorf("up took %s to give up", took.Round(time.Second))
	}
	t.Logf("up gave up after %s", took.Round(100*time.Millisecond))
}

// TestUpRefusesTheOperatorsCATrigger: pgward.io/rotate-ca means something to
// the operator only; locally it is refused, not ignored.
func TestUpRefusesTheOperatorsCATrigger(t *testing.T) {
	runAsUser(t)
	manifest := filepath.Join(workRoot, "rotate-ca-annotation.yaml")
	if err := os.WriteFile(manifest, []byte("apiVersion: postgresql.pgward.io/v1\nkind: Cluster\nmetadata:\n  name: rot\n"+
		"  annotations:\n    pgward.io/rotate-ca: \"1\"\nspec:\n  instances: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := newStateDir(t, "rotate-ca-annotation")
	out, err := pgward(context.Background(), "local", "up", "-f", manifest, "--dir", dir)
	if err == nil || !strings.Contains(out, "metadata.annotations[pgward.io/rotate-ca]") || !strings.Contains(out, "pgward local rotate-ca") {
		t.Fatalf("up with pgward.io/rotate-ca: %v\n%s", err, out)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a refused manifest created %s", dir)
	}
}

// TestUpRefusesADirTooDeep: a state directory whose socket path would not
// fit in sun_path is refused at once, naming it, before anything is made
// (every start would fail after initdb otherwise, until up's timeout).
func TestUpRefusesADirTooDeep(t *testing.T) {
	runAsUser(t)
	dir := filepath.Join(workRoot, strings.Repeat("d", 90))
	out, err := pgward(t.Context(), "local", "up", "-f", filepath.Join(repoRoot, "config", "samples", "cluster-example.yaml"), "--dir", dir)
	if err == nil || !strings.Contains(out, "too deep") {
		t.Errorf("want a refusal naming the path, got %v\n%s", err, out)
	}
	if _, err := os.Stat(dir); err == nil {
		_, _ = pgward(t.Context(), "local", "down", "--purge", "--dir", dir)
		t.Error("a refused up created the directory")
	}
}
