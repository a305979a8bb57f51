package cli

import (
	"strings"
	"testing"
)

const validCluster = `apiVersion: postgresql.pgward.io/v1
kind: Cluster
metadata:
  name: shop
spec:
  instances: 2
  bootstrap:
    initdb:
      database: app
      owner: app
      secret:
        name: app-creds
`

// tlsCluster names its own server certificate, as CloudNativePG's
// cert-manager sample does.
const (
	tlsCluster = `apiVersion: postgresql.pgward.io/v1
kind: Cluster
metadata:
  name: shop
spec:
  instances: 1
  certificates:
    serverCASecret: srv
    serverTLSSecret: srv
`
	emptyServerSecret = "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: srv\n"
	serverCertificate = "---\napiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata:\n  name: srv-cert\nspec:\n  secretName: srv\n"
)

// dbDoc is CloudNativePG's Database sample shape, for the Cluster "shop".
const dbDoc = "---\napiVersion: postgresql.cnpg.io/v1\nkind: Database\nmetadata:\n  name: shop-one\nspec:\n  name: one\n  owner: app\n  cluster:\n    name: shop\n"

func TestValidateManifestFile(t *testing.T) {
	for _, tc := range []struct {
		name, file, want string
	}{
		{"a Cluster alone", validCluster, `Cluster "shop" is valid (2 instance(s)); 0 Secret(s) checked`},
		{"with its Secret", validCluster + "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: app-creds\ntype: kubernetes.io/basic-auth\nstringData:\n  username: app\n  password: s3cret-s3cret\n",
			"1 Secret(s) checked"},
		{"a Secret for another user", validCluster + "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: app-creds\ndata:\n  username: b3RoZXI=\n  password: eA==\n",
			`Secret "app-creds" (spec.bootstrap.initdb.secret) is for user "other", not "app"`},
		{"a Secret without a password", validCluster + "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: app-creds\nstringData:\n  username: app\n",
			`Secret "app-creds" (spec.bootstrap.initdb.secret) has no key "password"`},
		{"an unknown field in a Secret", validCluster + "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: x\nstrngData:\n  a: b\n", `unknown field "strngData"`},
		{"a Database", validCluster + dbDoc, "1 Database(s) checked"},
		{"a Database of another Cluster", validCluster + strings.Replace(dbDoc, "    name: shop\n", "    name: other\n", 1), `kind Database "shop-one": spec.cluster.name`},
		{"a Database PostgreSQL 15 cannot make", validCluster + strings.Replace(dbDoc, "owner: app", "owner: app\n  icuRules: fr", 1), "spec.icuRules: Forbidden"},
		{"a Database dropping the app database", validCluster + strings.Replace(dbDoc, "name: one", "name: app\n  ensure: absent", 1), "spec.ensure: Forbidden"},
		{"a Database with foreign servers", validCluster + dbDoc + "  servers: [{name: s, fdw: f}]\n", `"spec.servers" is a Cloud Native PostgreSQL field that pgward does not support yet`},
		{"another kind", validCluster + "---\napiVersion: cert-manager.io/v1\nkind: Issuer\nmetadata:\n  name: c\n", `skipped: Issuer "c" (not read by pgward)`},
		{"a ConfigMap", validCluster + "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n", "1 ConfigMap(s) checked"},
		{"a ConfigMap without the key a SQL reference names", strings.Replace(validCluster, "      owner: app\n", "      owner: app\n      postInitSQLRefs:\n        configMapRefs: [{name: c, key: x.sql}]\n", 1) +
			"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  y.sql: SELECT 1\n", `ConfigMap "c" (a bootstrap.initdb SQL reference) has no key "x.sql"`},
		{"another kind", validCluster + "---\napiVersion: monitoring.coreos.com/v1\nkind: PodMonitor\nmetadata:\n  name: c\n", `skipped: PodMonitor "c" (not read by pgward)`},
		{"custom queries in a ConfigMap", strings.Replace(validCluster, "spec:\n", "spec:\n  monitoring:\n    customQueriesConfigMap: [{name: q, key: k}]\n", 1) +
			"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: q\ndata:\n  k: |\n    x:\n      query: SELECT 1 AS a\n      metrics: [{a: {usage: GAUGE}}]\n", "1 ConfigMap(s) checked"},
		{"a custom query that writes", strings.Replace(validCluster, "spec:\n", "spec:\n  monitoring:\n    customQueriesConfigMap: [{name: q, key: k}]\n", 1) +
			"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: q\ndata:\n  k: |\n    x:\n      query: DELETE FROM t\n      metrics: [{a: {usage: GAUGE}}]\n",
			`spec.monitoring.customQueriesConfigMap[0] (ConfigMap q, key k): query "x", key query: starts with "DELETE"`},
		{"a generated secret as a source", strings.Replace(validCluster, "spec:\n", "spec:\n  monitoring:\n    customQueriesSecret: [{name: shop-ca, key: ca.key}]\n", 1),
			`spec.monitoring.customQueriesSecret[0]: pgward generates secret "shop-ca"`},
		{"a missing key", strings.Replace(validCluster, "spec:\n", "spec:\n  monitoring:\n    customQueriesConfigMap: [{name: q, key: other}]\n", 1) +
			"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: q\ndata:\n  k: x\n", `spec.monitoring.customQueriesConfigMap[0]: ConfigMap "q" has no key "other"`},
		{"a labelled Secret", validCluster + "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: x\n  namespace: db\n  labels:\n    a: b\n  annotations:\n    c: d\n", "1 Secret(s) checked"},
		{"a Secret cert-manager fills", tlsCluster + emptyServerSecret + serverCertificate,
			`not checked: Secret "srv" (filled by cert-manager's Certificate "srv-cert"`},
		{"an empty Secret nobody fills", tlsCluster + emptyServerSecret,
			`Secret "srv" (spec.certificates.serverTLSSecret) has no key "tls.crt"`},
		{"two Clusters", validCluster + "---\n" + validCluster, "a second Cluster"},
		{"no Cluster", "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\n", "no Cluster in the file"},
		{"an invalid Cluster", strings.Replace(validCluster, "instances: 2", "instances: 0", 1), "spec.instances: must be at least 1"},
		{"empty", "# nothing\n", "the manifest is empty"},
		{"its catalog", catalog("15", "15") + strings.Replace(validCluster, "instances: 2", "instances: 2\n  imageCatalogRef: {kind: ImageCatalog, name: images, major: 15}", 1),
			`Cluster "shop" is valid`},
		{"its catalog without 15", catalog("16", "16") + strings.Replace(validCluster, "instances: 2", "instances: 2\n  imageCatalogRef: {kind: ImageCatalog, name: images, major: 15}", 1),
			`spec.imageCatalogRef: ImageCatalog "images" in this file has no image for major 15`},
		{"a catalog whose tag contradicts", catalog("16", "15") + validCluster, `spec.images[0].image`},
		{"a catalog of pooler images", strings.TrimSuffix(catalog("15", "15"), "---\n") + "  componentImages:\n    - {key: pgbouncer, image: x}\n---\n" + validCluster, `field "spec.componentImages" is a Cloud Native PostgreSQL field that pgward does not support yet`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := validateManifestFile([]byte(tc.file))
			got := out
			if err != nil {
				got = err.Error()
			}
			if !strings.Contains(got, tc.want) {
				t.Errorf("got %q, want it to contain %q", got, tc.want)
			}
		})
	}
}

// catalog is an ImageCatalog "images" (CloudNativePG's apiVersion) with
// one entry: the image's tag and its major.
func catalog(tag, major string) string {
	return "apiVersion: postgresql.cnpg.io/v1\nkind: ImageCatalog\nmetadata:\n  name: images\n  labels: {a: b}\nspec:\n  images:\n    - image: ghcr.io/cloudnative-pg/postgresql:" + tag + "\n      major: " + major + "\n---\n"
}
