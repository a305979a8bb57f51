package v1

import (
	"strings"
	"testing"
)

func initdbCluster(mutate func(in *BootstrapInitDB, c *Cluster)) *Cluster {
	c := &Cluster{Spec: ClusterSpec{Instances: 1}}
	c.APIVersion, c.Kind, c.Name = APIVersion, Kind, "demo"
	c.Spec.Bootstrap = &BootstrapConfiguration{InitDB: &BootstrapInitDB{}}
	c.Spec.ExternalClusters = []ExternalCluster{{Name: "src",
		ConnectionParameters: map[string]string{"host": "src.example", "user": "app", "dbname": "app", "sslmode": "verify-full"},
		SSLRootCert:          &SecretKeySelector{Name: "src-ca", Key: "ca.crt"},
		Password:             &SecretKeySelector{Name: "src-app", Key: "password"},
	}}
	mutate(c.Spec.Bootstrap.InitDB, c)
	SetDefaults(c)
	return c
}

func microservice(in *BootstrapInitDB) *Import {
	in.Import = &Import{Type: ImportMicroservice, Databases: []string{"app"}, Source: ImportSource{ExternalCluster: "src"}}
	return in.Import
}

func monolith(in *BootstrapInitDB) *Import {
	in.Import = &Import{Type: ImportMonolith, Databases: []string{"shop"}, Roles: []string{"*"}, Source: ImportSource{ExternalCluster: "src"}}
	return in.Import
}

// TestValidateInitDBExtras: each class of bad input in the initdb
// options, the SQL references and the import is refused by validation,
// before either runtime writes anything, naming the field.
func TestValidateInitDBExtras(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(in *BootstrapInitDB, c *Cluster)
		want   string // "" valid; else a substring of the error
	}{
		{"plain", func(*BootstrapInitDB, *Cluster) {}, ""},
		// Locales.
		{"icu", func(in *BootstrapInitDB, _ *Cluster) { in.LocaleProvider, in.ICULocale = "icu", "de-DE-u-co-phonebk" }, ""},
		{"icu without a locale", func(in *BootstrapInitDB, _ *Cluster) { in.LocaleProvider = "icu" }, "initdb.icuLocale: Required"},
		{"icu locale with a quote", func(in *BootstrapInitDB, _ *Cluster) { in.LocaleProvider, in.ICULocale = "icu", "en'; DROP" }, "initdb.icuLocale: Invalid"},
		{"icu locale with an option", func(in *BootstrapInitDB, _ *Cluster) { in.LocaleProvider, in.ICULocale = "icu", "--pwfile=/etc/shadow" }, "initdb.icuLocale: Invalid"},
		{"icu locale with a newline", func(in *BootstrapInitDB, _ *Cluster) { in.LocaleProvider, in.ICULocale = "icu", "en\nUS" }, "initdb.icuLocale: Invalid"},
		{"icu locale without icu", func(in *BootstrapInitDB, _ *Cluster) { in.ICULocale = "en-US" }, "initdb.icuLocale: Forbidden"},
		{"icu with latin1", func(in *BootstrapInitDB, _ *Cluster) {
			in.LocaleProvider, in.ICULocale, in.Encoding = "icu", "en-US", "LATIN1"
		}, "initdb.encoding: Invalid value: \"LATIN1\": must be UTF8"},
		{"builtin", func(in *BootstrapInitDB, _ *Cluster) { in.LocaleProvider = "builtin" }, "needs PostgreSQL 17"},
		{"unknown provider", func(in *BootstrapInitDB, _ *Cluster) { in.LocaleProvider = "glibc" }, "initdb.localeProvider: Unsupported value"},
		{"icu rules", func(in *BootstrapInitDB, _ *Cluster) {
			in.LocaleProvider, in.ICULocale, in.ICURules = "icu", "en-US", "&A < g"
		}, "initdb.icuRules: Forbidden: ICU tailoring rules need PostgreSQL 16"},
		{"builtin locale", func(in *BootstrapInitDB, _ *Cluster) { in.BuiltinLocale = "C.UTF-8" }, "initdb.builtinLocale: Forbidden"},
		{"locale", func(in *BootstrapInitDB, _ *Cluster) { in.Locale = "C.UTF-8" }, ""},
		{"locale with a space", func(in *BootstrapInitDB, _ *Cluster) { in.Locale = "C --no-sync" }, "initdb.locale: Invalid"},
		// WAL segment size.
		{"wal 64", func(in *BootstrapInitDB, _ *Cluster) { in.WalSegmentSize = 64 }, ""},
		{"wal 1024", func(in *BootstrapInitDB, _ *Cluster) { in.WalSegmentSize = 1024 }, ""},
		{"wal 48", func(in *BootstrapInitDB, _ *Cluster) { in.WalSegmentSize = 48 }, "initdb.walSegmentSize: Invalid value: 48: must be a power of 2"},
		{"wal 2048", func(in *BootstrapInitDB, _ *Cluster) { in.WalSegmentSize = 2048 }, "initdb.walSegmentSize"},
		{"wal negative", func(in *BootstrapInitDB, _ *Cluster) { in.WalSegmentSize = -2 }, "initdb.walSegmentSize"},
		// initdb options: an allow-list.
		{"checksums option", func(in *BootstrapInitDB, _ *Cluster) { in.Options = []string{"-k", "--data-checksums"} }, ""},
		{"checksums option against the field", func(in *BootstrapInitDB, _ *Cluster) {
			in.DataChecksums = new(false)
			in.Options = []string{"-k"}
		}, "initdb.options[0]: Invalid value: \"-k\": contradicts"},
		{"auth option", func(in *BootstrapInitDB, _ *Cluster) { in.Options = []string{"--auth=trust"} }, "initdb.options[0]: Invalid"},
		{"superuser option", func(in *BootstrapInitDB, _ *Cluster) { in.Options = []string{"--data-checksums", "-U", "root"} }, "initdb.options[1]: Invalid"},
		{"waldir option", func(in *BootstrapInitDB, _ *Cluster) { in.Options = []string{"--waldir=/tmp/x"} }, "initdb.options[0]"},
		{"group access option", func(in *BootstrapInitDB, _ *Cluster) { in.Options = []string{"--allow-group-access"} }, "initdb.options[0]"},
		{"ignored by pgward's postgresql.conf", func(in *BootstrapInitDB, _ *Cluster) { in.Options = []string{"--text-search-config=english"} }, "would be ignored"},
		// SQL references.
		{"refs", func(in *BootstrapInitDB, _ *Cluster) {
			in.PostInitApplicationSQLRefs = &SQLRefs{SecretRefs: []SecretKeySelector{{Name: "s", Key: "a.sql"}}, ConfigMapRefs: []ConfigMapKeySelector{{Name: "c", Key: "b.sql"}}}
		}, ""},
		{"ref to a path", func(in *BootstrapInitDB, _ *Cluster) {
			in.PostInitSQLRefs = &SQLRefs{SecretRefs: []SecretKeySelector{{Name: "../../etc", Key: "passwd"}}}
		}, "initdb.postInitSQLRefs.secretRefs[0].name"},
		{"ref key with a slash", func(in *BootstrapInitDB, _ *Cluster) {
			in.PostInitTemplateSQLRefs = &SQLRefs{ConfigMapRefs: []ConfigMapKeySelector{{Name: "c", Key: "../x"}}}
		}, "initdb.postInitTemplateSQLRefs.configMapRefs[0].key"},
		{"ref without a key", func(in *BootstrapInitDB, _ *Cluster) {
			in.PostInitApplicationSQLRefs = &SQLRefs{ConfigMapRefs: []ConfigMapKeySelector{{Name: "c"}}}
		}, "initdb.postInitApplicationSQLRefs.configMapRefs[0].key"},
		// Import.
		{"microservice", func(in *BootstrapInitDB, _ *Cluster) { microservice(in) }, ""},
		{"monolith", func(in *BootstrapInitDB, _ *Cluster) { monolith(in) }, ""},
		{"microservice of two", func(in *BootstrapInitDB, _ *Cluster) { microservice(in).Databases = []string{"a", "b"} }, "import.databases: Invalid value: 2"},
		{"microservice with roles", func(in *BootstrapInitDB, _ *Cluster) { microservice(in).Roles = []string{"x"} }, "import.roles: Forbidden"},
		{"unknown type", func(in *BootstrapInitDB, _ *Cluster) { microservice(in).Type = "full" }, "import.type: Unsupported value"},
		{"no source", func(in *BootstrapInitDB, _ *Cluster) { microservice(in).Source.ExternalCluster = "" }, "import.source.externalCluster: Required"},
		{"unknown source", func(in *BootstrapInitDB, _ *Cluster) { microservice(in).Source.ExternalCluster = "nope" }, "import.source.externalCluster: Not found"},
		{"source in clear text", func(in *BootstrapInitDB, c *Cluster) {
			microservice(in)
			c.Spec.ExternalClusters[0].ConnectionParameters["sslmode"] = "require"
		}, "connectionParameters[sslmode]"},
		{"database option", func(in *BootstrapInitDB, _ *Cluster) { monolith(in).Databases = []string{"--file=/x"} }, "import.databases[0]: Invalid"},
		{"database with a quote", func(in *BootstrapInitDB, _ *Cluster) { monolith(in).Databases = []string{"a'b"} }, "import.databases[0]: Invalid"},
		{"template database", func(in *BootstrapInitDB, _ *Cluster) { monolith(in).Databases = []string{"template1"} }, "import.databases[0]"},
		{"monolith onto the application database", func(in *BootstrapInitDB, _ *Cluster) { monolith(in).Databases = []string{"app"} }, "is the application database"},
		{"star beside names", func(in *BootstrapInitDB, _ *Cluster) { monolith(in).Databases = []string{"*", "shop"} }, "list nothing beside it"},
		{"duplicate", func(in *BootstrapInitDB, _ *Cluster) { monolith(in).Databases = []string{"shop", "shop"} }, "import.databases[1]: Duplicate"},
		{"postgres role", func(in *BootstrapInitDB, _ *Cluster) { monolith(in).Roles = []string{"postgres"} }, "import.roles[0]"},
		{"replication role", func(in *BootstrapInitDB, _ *Cluster) { monolith(in).Roles = []string{"streaming_replica"} }, "import.roles[0]"},
		{"owner role", func(in *BootstrapInitDB, _ *Cluster) { monolith(in).Roles = []string{"app"} }, "import.roles[0]"},
		{"predefined role", func(in *BootstrapInitDB, _ *Cluster) { monolith(in).Roles = []string{"pg_read_server_files"} }, "import.roles[0]"},
		{"post-import SQL in a monolith", func(in *BootstrapInitDB, _ *Cluster) { monolith(in).PostImportApplicationSQL = []string{"SELECT 1"} }, "postImportApplicationSQL: Forbidden"},
		{"jobs", func(in *BootstrapInitDB, _ *Cluster) {
			im := microservice(in)
			im.PgDumpExtraOptions, im.PgRestoreExtraOptions = []string{"--jobs=2", "--no-comments"}, []string{"--jobs=64", "--no-tablespaces"}
		}, ""},
		{"dump to a file", func(in *BootstrapInitDB, _ *Cluster) { microservice(in).PgDumpExtraOptions = []string{"--file=/etc/x"} }, "pgDumpExtraOptions[0]: Invalid"},
		{"dump another host", func(in *BootstrapInitDB, _ *Cluster) { microservice(in).PgDumpExtraOptions = []string{"-h", "evil"} }, "pgDumpExtraOptions[0]"},
		{"restore as another role", func(in *BootstrapInitDB, _ *Cluster) {
			microservice(in).PgRestoreExtraOptions = []string{"--role=postgres"}
		}, "pgRestoreExtraOptions[0]: Invalid"},
		{"restore elsewhere", func(in *BootstrapInitDB, _ *Cluster) {
			microservice(in).PgRestoreExtraOptions = []string{"--dbname=postgres"}
		}, "pgRestoreExtraOptions[0]"},
		{"jobs in two arguments", func(in *BootstrapInitDB, _ *Cluster) { microservice(in).PgRestoreExtraOptions = []string{"-j", "2"} }, "must be --jobs=N"},
		{"too many jobs", func(in *BootstrapInitDB, _ *Cluster) { microservice(in).PgDumpExtraOptions = []string{"--jobs=65"} }, "must be --jobs=N"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := initdbCluster(tc.mutate).Validate().ToAggregate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("accepted, want %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("got %v\nwant %q", err, tc.want)
			}
		})
	}
}

// TestResolveSQLRefsOrder: CloudNativePG's order (the Secrets, then the
// ConfigMaps, each list in order), a missing key named by its field, and
// a NUL byte refused.
func TestResolveSQLRefsOrder(t *testing.T) {
	c := initdbCluster(func(in *BootstrapInitDB, _ *Cluster) {
		in.PostInitSQLRefs = &SQLRefs{
			ConfigMapRefs: []ConfigMapKeySelector{{Name: "c", Key: "1"}, {Name: "c", Key: "2"}},
			SecretRefs:    []SecretKeySelector{{Name: "s", Key: "1"}, {Name: "s", Key: "2"}},
		}
	})
	vals := map[string]string{"s/1": "s1", "s/2": "s2", "c/1": "c1", "c/2": "c2"}
	get := func(_ bool, name, key string) (string, error) {
		v, ok := vals[name+"/"+key]
		if !ok {
			return "", errMissing
		}
		return v, nil
	}
	got, err := c.Spec.ResolveSQLRefs(get)
	if err != nil || strings.Join(got.PostInitSQL, ",") != "s1,s2,c1,c2" {
		t.Fatalf("got %v, %v", got, err)
	}
	delete(vals, "c/2")
	if _, err := c.Spec.ResolveSQLRefs(get); err == nil || !strings.Contains(err.Error(), "spec.bootstrap.initdb.postInitSQLRefs.configMapRefs[1]") {
		t.Fatalf("missing key: %v", err)
	}
	vals["c/2"] = "a\x00b"
	if _, err := c.Spec.ResolveSQLRefs(get); err == nil || !strings.Contains(err.Error(), "NUL") {
		t.Fatalf("NUL byte: %v", err)
	}
}

var errMissing = &missingErr{}

type missingErr struct{}

func (*missingErr) Error() string { return "missing" }
