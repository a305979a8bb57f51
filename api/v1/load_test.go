package v1

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const minimalManifest = `apiVersion: postgresql.pgward.io/v1
kind: Cluster
metadata:
  name: pg
spec:
  instances: 3
`

func TestLoadCluster(t *testing.T) {
	c, err := LoadCluster([]byte(`---
# a comment before the object
apiVersion: postgresql.pgward.io/v1
kind: Cluster
metadata:
  name: pg
  namespace: prod
  labels: {team: db}
  creationTimestamp: "2024-01-02T03:04:05Z"
spec:
  instances: 3
  enableSuperuserAccess: false
  minSyncReplicas: 1
  maxSyncReplicas: 1
  postgresql:
    parameters:
      max_connections: "100"
    pg_hba: [local all all peer]
    pg_ident: ["m a b"]
  bootstrap:
    initdb:
      database: shop
      secret: {name: shop-app}
      dataChecksums: true
      postInitSQL: [SELECT 1]
  superuserSecret: {name: su}
  certificates:
    serverAltDNSNames: [db.example.com]
  storage:
    size: 2Gi
...
`))
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case c.APIVersion != APIVersion || c.Kind != Kind || c.Name != "pg" || c.Namespace != "prod":
		t.Errorf("metadata = %+v %+v", c.TypeMeta, c.ObjectMeta)
	case c.Labels["team"] != "db" || c.CreationTimestamp.Year() != 2024:
		t.Errorf("metadata = %+v", c.ObjectMeta)
	case c.Spec.Instances != 3 || c.Spec.MaxSyncReplicas != 1 || c.Spec.EnableSuperuserAccess == nil:
		t.Errorf("spec = %+v", c.Spec)
	case c.Spec.PostgresConfiguration.Parameters["max_connections"] != "100":
		t.Errorf("postgresql = %+v", c.Spec.PostgresConfiguration)
	case c.Spec.Bootstrap.InitDB.Database != "shop" || c.Spec.Bootstrap.InitDB.Owner != "":
		t.Errorf("LoadCluster must not default: initdb = %+v", c.Spec.Bootstrap.InitDB)
	case c.Spec.Certificates.ServerAltDNSNames[0] != "db.example.com" || c.Spec.StorageConfiguration.Size != "2Gi":
		t.Errorf("spec = %+v", c.Spec)
	}
}

func TestLoadClusterJSON(t *testing.T) {
	c, err := LoadCluster([]byte(`{"apiVersion": "postgresql.pgward.io/v1", "kind": "Cluster",
		"metadata": {"name": "pg"}, "spec": {"instances": 2}}`))
	if err != nil || c.Spec.Instances != 2 {
		t.Fatalf("LoadCluster(JSON) = %+v, %v", c, err)
	}
}

func TestLoadClusterDocumentMarkers(t *testing.T) {
	for name, manifest := range map[string]string{
		"CRLF line ends":              strings.ReplaceAll(minimalManifest, "\n", "\r\n"),
		"start marker with a comment": "--- # the cluster\n" + minimalManifest,
		"directive":                   "%YAML 1.1\n---\n" + minimalManifest,
		"empty documents around":      "---\n# nothing\n---\n" + minimalManifest + "...\n---\n",
		"document end marker":         minimalManifest + "...\n# trailing comment\n",
	} {
		c, err := LoadCluster([]byte(manifest))
		if err != nil || c.Spec.Instances != 3 {
			t.Errorf("%s: LoadCluster = %+v, %v", name, c, err)
		}
	}
}

func TestLoadClusterForeignAPIVersion(t *testing.T) {
	for _, v := range foreignAPIVersions {
		c, err := LoadCluster([]byte(strings.Replace(minimalManifest, APIVersion, v, 1)))
		if err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		if c.APIVersion != APIVersion {
			t.Errorf("%s: apiVersion = %q, want it normalized to %q", v, c.APIVersion, APIVersion)
		}
	}
}

//nolint:misspell // The manifests misspell field names on purpose.
func TestLoadClusterErrors(t *testing.T) {
	tests := []struct {
		name     string
		manifest string
		want     []string // every line of the error, in order
	}{
		{"empty", "", []string{"the manifest is empty"}},
		{"only comments", "# nothing\n---\n# still nothing\n", []string{"the manifest is empty"}},
		{"not an object", "- a\n- b\n", []string{"the manifest must be an object (a Cluster), not a list"}},
		{"scalar", "hello\n", []string{"the manifest must be an object (a Cluster), not a string"}},
		{"two documents", minimalManifest + "---\n" + minimalManifest,
			[]string{"the manifest holds 2 YAML documents: give exactly one Cluster"}},
		{"document after end marker", minimalManifest + "...\nkind: Pooler\n",
			[]string{"the manifest holds 2 YAML documents: give exactly one Cluster"}},
		{"duplicate key", minimalManifest + "  instances: 4\n", []string{
			`the manifest is not valid YAML: yaml: unmarshal errors: line 7: key "instances" already set in map`,
		}},
		{"duplicate keys", minimalManifest + "  instances: 4\nkind: Cluster\n", []string{
			`yaml: unmarshal errors: line 7: key "instances" already set in map; line 8: key "kind" already set in map`,
		}},
		{"duplicate key in JSON", `{"kind": "Cluster", "kind": "Cluster"}`, []string{`key "kind" already set in map`}},
		{"bad YAML", "spec: [\n", []string{"the manifest is not valid YAML"}},
		{"missing apiVersion and kind", "metadata: {name: pg}\n", []string{
			`field "apiVersion" is required: use postgresql.pgward.io/v1`,
			`field "kind" is required: use Cluster`,
		}},
		{"wrong apiVersion and kind", "apiVersion: v1\nkind: [Cluster]\n", []string{
			`apiVersion "v1" is not supported: use postgresql.pgward.io/v1`,
			`kind a list is not supported: use Cluster`,
		}},
		{"status", minimalManifest + "status:\n  phase: healthy\n", []string{
			`field "status" is written by pgward and cannot be set in a manifest`,
		}},
		{"unknown and CNP fields, sorted by path", minimalManifest + `  backup: {volumeSnapshot: {groupSnapshot: true}}
  externalClusters: [{name: a, plugin: {name: x}}]
  Instances: 4
  nodeMaintenanceWindow: {inProgress: true}
  postgresql:
    paramters: {a: b}
    synchronous: {method: any, standbyNamesPre: [a]}
  bootstrap:
    recovery: {backup: {name: b, endpointCA: {name: x, key: y}}}
    initdb:
      dtabase: app
  storage:
    pvcTemplate: {}
  walStorage:
    pvcTemplate: {}
  probes: {liveness: {isolationCheck: {enabled: true}}}
  nope: 1
metadata2: {}
`, []string{
			`unknown field "metadata2"`,
			`unknown field "spec.Instances"`,
			`field "spec.backup.volumeSnapshot.groupSnapshot" is a Cloud Native PostgreSQL field that pgward does not support yet`,
			`unknown field "spec.bootstrap.initdb.dtabase"`,
			`field "spec.bootstrap.recovery.backup.endpointCA" is a Cloud Native PostgreSQL field that pgward does not support yet`,
			`field "spec.externalClusters[0].plugin" is a Cloud Native PostgreSQL field that pgward does not support yet`,
			`field "spec.nodeMaintenanceWindow" is a Cloud Native PostgreSQL field that pgward does not support yet`,
			`unknown field "spec.nope"`,
			`unknown field "spec.postgresql.paramters"`,
			`field "spec.postgresql.synchronous.standbyNamesPre" is a Cloud Native PostgreSQL field that pgward does not support yet`,
			`field "spec.probes.liveness.isolationCheck" is a Cloud Native PostgreSQL field that pgward does not support yet`,
			// The type is shared with storage, which supports it.
			`field "spec.walStorage.pvcTemplate" is a Cloud Native PostgreSQL field that pgward does not support yet`,
		}},
		{"barman-cloud's options and S3 server-side encryption: refused with the reason", minimalManifest + `  backup:
    barmanObjectStore:
      destinationPath: s3://b/
      wal: {encryption: AES256, archiveAdditionalCommandArgs: ["--x"]}
      data: {encryption: "aws:kms", additionalCommandArgs: ["-vv"]}
  externalClusters: [{name: a, barmanObjectStore: {destinationPath: "s3://b/", data: {encryption: AES256}}}]
`, []string{
			`field "spec.backup.barmanObjectStore.data.additionalCommandArgs" is a Cloud Native PostgreSQL field that pgward refuses: extra command-line options of barman-cloud`,
			`field "spec.backup.barmanObjectStore.data.encryption" is a Cloud Native PostgreSQL field that pgward refuses: S3 server-side encryption`,
			`field "spec.backup.barmanObjectStore.wal.archiveAdditionalCommandArgs" is a Cloud Native PostgreSQL field that pgward refuses: extra command-line options of barman-cloud`,
			`field "spec.backup.barmanObjectStore.wal.encryption" is a Cloud Native PostgreSQL field that pgward refuses: S3 server-side encryption`,
			`field "spec.externalClusters[0].barmanObjectStore.data.encryption" is a Cloud Native PostgreSQL field that pgward refuses: S3 server-side encryption`,
		}},
		{"CloudNativePG's primaryLease: duration and renew deadline implemented, the others not yet", minimalManifest + "  primaryLease: {leaseDurationSeconds: 15, renewDeadlineSeconds: 10, retryPeriodSeconds: 2, releasedLeaseDurationSeconds: 1}\n", []string{
			`field "spec.primaryLease.releasedLeaseDurationSeconds" is a Cloud Native PostgreSQL field that pgward does not support yet`,
			`field "spec.primaryLease.retryPeriodSeconds" is a Cloud Native PostgreSQL field that pgward does not support yet`,
		}},
		{"unknown metadata and list item fields", `apiVersion: postgresql.pgward.io/v1
kind: Cluster
metadata:
  name: pg
  nmae: x
  ownerReferences: [{apiVersion: v1, kind: X, name: w, uid: u, colour: red}]
spec:
  instances: 1
`, []string{
			`unknown field "metadata.nmae"`,
			`unknown field "metadata.ownerReferences[0].colour"`,
		}},
		{"wrong types", `apiVersion: postgresql.pgward.io/v1
kind: Cluster
metadata: {name: pg, labels: {a: 1}}
spec:
  instances: "3"
  minSyncReplicas: 1.5
  enableSuperuserAccess: "yes"
  postgresql:
    parameters:
      max_connections: 100
      wal_log_hints: on
    pg_hba: local all all peer
  bootstrap: []
  certificates: {serverAltDNSNames: [1]}
  storage: {size: 1}
`, []string{
			`field "metadata.labels[a]" must be a string, not the number 1 (put the value in quotes)`,
			`field "spec.bootstrap" must be an object, not a list`,
			`field "spec.certificates.serverAltDNSNames[0]" must be a string, not the number 1 (put the value in quotes)`,
			`field "spec.enableSuperuserAccess" must be a boolean (true or false), not a string`,
			`field "spec.instances" must be an integer, not a string`,
			`field "spec.minSyncReplicas" must be an integer, not the number 1.5`,
			`field "spec.postgresql.parameters[max_connections]" must be a string, not the number 100 (put the value in quotes)`,
			`field "spec.postgresql.parameters[wal_log_hints]" must be a string, not a boolean (put the value in quotes)`,
			`field "spec.postgresql.pg_hba" must be a list, not a string`,
			`field "spec.storage.size" must be a string, not the number 1 (put the value in quotes)`,
		}},
		{"bad timestamp", `apiVersion: postgresql.pgward.io/v1
kind: Cluster
metadata: {name: pg, creationTimestamp: yesterday}
`, []string{`field "metadata.creationTimestamp": parsing time "yesterday"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := LoadCluster([]byte(tt.manifest))
			if err == nil {
				t.Fatalf("LoadCluster = %+v, want an error", c)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("got %d error lines, want %d:\n%s", len(lines), len(tt.want), err)
			}
			for i, w := range tt.want {
				if !strings.Contains(lines[i], w) {
					t.Errorf("error line %d = %q, want it to contain %q", i, lines[i], w)
				}
			}
			// The same input always gives the same message.
			_, again := LoadCluster([]byte(tt.manifest))
			if again.Error() != err.Error() {
				t.Errorf("error is not deterministic:\n%s\n---\n%s", err, again)
			}
		})
	}
}

func TestLoadClusterTooLarge(t *testing.T) {
	data := []byte(minimalManifest + "# " + strings.Repeat("x", MaxManifestSize) + "\n")
	if _, err := LoadCluster(data); err == nil || !strings.Contains(err.Error(), "more than the") {
		t.Fatalf("LoadCluster(huge) = %v", err)
	}
}

func TestLoadAndValidate(t *testing.T) {
	c, err := LoadAndValidate([]byte(minimalManifest))
	if err != nil {
		t.Fatal(err)
	}
	if c.Spec.Bootstrap.InitDB.Owner != "app" || *c.Spec.EnableSuperuserAccess {
		t.Errorf("defaults not applied: %+v", c.Spec)
	}

	_, err = LoadAndValidate([]byte(minimalManifest + `  maxSyncReplicas: 3
  postgresql:
    parameters: {port: "1"}
    pg_hba: ["host all all all trust"]
`))
	want := `[spec.postgresql.parameters[port]: Invalid value: parameter "port" is managed by pgward and cannot be set, ` +
		`spec.postgresql.pg_hba[0]: Invalid value: method "trust" is not allowed on host rules: it lets anyone who reaches ` +
		`the server log in without a password (use it only on local), ` +
		`spec.maxSyncReplicas: Invalid value: 3: must be less than instances (3): only replicas can be synchronous]`
	if err == nil || err.Error() != want {
		t.Fatalf("LoadAndValidate = %v\nwant %s", err, want)
	}

	if _, err := LoadAndValidate([]byte("kind: Cluster\n")); err == nil || !strings.Contains(err.Error(), "apiVersion") {
		t.Fatalf("LoadAndValidate must report load errors, got %v", err)
	}
}

// TestSamples loads and validates every manifest shipped in config/samples.
func TestSamples(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "config", "samples", "*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no samples found in config/samples")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := LoadAndValidate(data); err != nil {
				t.Fatal(err)
			}
		})
	}
}
