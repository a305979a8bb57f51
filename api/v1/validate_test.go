package v1

import (
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// validCluster returns a defaulted Cluster that passes Validate.
func validCluster() *Cluster {
	c := &Cluster{Spec: ClusterSpec{Instances: 3}}
	c.Name = "pg"
	SetDefaults(c)
	return c
}

// errorSummary renders errors as "path: detail" for comparisons.
func errorSummary(errs field.ErrorList) []string {
	out := make([]string, 0, len(errs))
	for _, e := range errs {
		out = append(out, e.Field+": "+e.ErrorBody())
	}
	return out
}

// checkErrors fails unless errs has exactly one error per want entry, in
// order, each starting with its path and containing the rest of the entry.
// An entry is "path" or "path|substring of the message".
func checkErrors(t *testing.T, errs field.ErrorList, want []string) {
	t.Helper()
	got := errorSummary(errs)
	if len(got) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i, w := range want {
		path, detail, _ := strings.Cut(w, "|")
		if errs[i].Field != path || !strings.Contains(got[i], detail) {
			t.Errorf("error %d = %q, want path %q containing %q", i, got[i], path, detail)
		}
	}
}

func TestValidate(t *testing.T) {
	long := strings.Repeat("a", 51)
	tests := []struct {
		name   string
		mutate func(c *Cluster)
		want   []string
	}{
		{"valid", func(*Cluster) {}, nil},
		{"valid with everything", func(c *Cluster) {
			c.Namespace = "prod"
			c.Spec.PostgresConfiguration = PostgresConfiguration{
				Parameters: map[string]string{"max_connections": "100", "wal_level": "logical", "wal_log_hints": "on"},
				PgHBA:      []string{"host app app 10.0.0.0/8 scram-sha-256", "local all all peer"},
				PgIdent:    []string{"m alice app"},
			}
			c.Spec.SuperuserSecret = &LocalObjectReference{Name: "pg-super"}
			c.Spec.Certificates = &CertificatesConfiguration{
				ServerCASecret: "ca", ServerTLSSecret: "tls", ClientCASecret: "client-ca", ReplicationTLSSecret: "repl",
			}
			c.Spec.MinSyncReplicas, c.Spec.MaxSyncReplicas = 1, 2
			c.Spec.StorageConfiguration.Size = "10Gi"
			c.Spec.Bootstrap.InitDB.Secret = &LocalObjectReference{Name: "app.secret"}
			c.Spec.Bootstrap.InitDB.PostInitSQL = []string{"CREATE EXTENSION pgcrypto"}
		}, nil},
		{"single instance may use minimal WAL", func(c *Cluster) {
			c.Spec.Instances = 1
			c.Spec.PostgresConfiguration.Parameters = map[string]string{"wal_level": "minimal", "wal_log_hints": "off"}
		}, nil},
		{"foreign apiVersion and kind", func(c *Cluster) {
			c.APIVersion, c.Kind = "postgresql.cnpg.io/v1", "Pooler"
		}, []string{"apiVersion|Unsupported value", "kind|Unsupported value"}},
		{"missing name", func(c *Cluster) { c.Name = "" }, []string{"metadata.name|Required"}},
		{"name too long", func(c *Cluster) { c.Name = long }, []string{"metadata.name|Too long"}},
		{"name 50 chars", func(c *Cluster) { c.Name = long[:50] }, nil},
		{"name not DNS-1035", func(c *Cluster) { c.Name = "1pg" }, []string{"metadata.name|DNS-1035"}},
		{"name upper case", func(c *Cluster) { c.Name = "Pg" }, []string{"metadata.name"}},
		{"bad namespace", func(c *Cluster) { c.Namespace = "a_b" }, []string{"metadata.namespace"}},
		{"zero instances", func(c *Cluster) { c.Spec.Instances = 0 }, []string{"spec.instances|must be at least 1"}},
		{"fixed parameter", func(c *Cluster) {
			c.Spec.PostgresConfiguration.Parameters = map[string]string{"port": "5433", "max_connections": "100"}
		}, []string{`spec.postgresql.parameters[port]|parameter "port" is managed by pgward and cannot be set`}},
		{"parameters in name order", func(c *Cluster) {
			c.Spec.PostgresConfiguration.Parameters = map[string]string{
				"ssl": "off", "archive_command": "x", "work_mem": "1\n", "bad name": "1",
			}
		}, []string{
			"spec.postgresql.parameters[archive_command]",
			"spec.postgresql.parameters[bad name]|not a valid name",
			"spec.postgresql.parameters[ssl]",
			"spec.postgresql.parameters[work_mem]|U+000A",
		}},
		{"parameter value is not echoed", func(c *Cluster) {
			c.Spec.PostgresConfiguration.Parameters = map[string]string{"work_mem": "secret\x00"}
		}, []string{"spec.postgresql.parameters[work_mem]|Invalid value: parameter"}},
		{"case-folded duplicate", func(c *Cluster) {
			c.Spec.PostgresConfiguration.Parameters = map[string]string{"Work_Mem": "1MB", "work_mem": "2MB"}
		}, []string{
			"spec.postgresql.parameters[Work_Mem]|lower case",
			`spec.postgresql.parameters[work_mem]|duplicates "Work_Mem"`,
		}},
		{"minimal WAL with replicas", func(c *Cluster) {
			c.Spec.PostgresConfiguration.Parameters = map[string]string{"wal_level": "Minimal"}
		}, []string{"spec.postgresql.parameters[wal_level]|cannot feed replicas"}},
		{"wal_log_hints off with replicas", func(c *Cluster) {
			c.Spec.PostgresConfiguration.Parameters = map[string]string{"wal_log_hints": "OFF"}
		}, []string{"spec.postgresql.parameters[wal_log_hints]|pg_rewind"}},
		{"wal_log_hints false prefix with replicas", func(c *Cluster) {
			c.Spec.PostgresConfiguration.Parameters = map[string]string{"wal_log_hints": "fal"}
		}, []string{"spec.postgresql.parameters[wal_log_hints]"}},
		{"full_page_writes off with replicas", func(c *Cluster) {
			c.Spec.PostgresConfiguration.Parameters = map[string]string{"full_page_writes": "0"}
		}, []string{"spec.postgresql.parameters[full_page_writes]"}},
		{"pg_hba", func(c *Cluster) {
			c.Spec.PostgresConfiguration.PgHBA = []string{
				"local all all peer", "host all all all trust",
				"hostssl all all all ldap ldapbindpasswd=hunter2 bogus",
			}
		}, []string{
			`spec.postgresql.pg_hba[1]|method "trust" is not allowed`,
			`spec.postgresql.pg_hba[2]|unexpected field "bogus"`,
		}},
		{"pg_ident", func(c *Cluster) {
			c.Spec.PostgresConfiguration.PgIdent = []string{"m a b", "m a", "include x y"}
		}, []string{"spec.postgresql.pg_ident[1]|has 2", "spec.postgresql.pg_ident[2]|include"}},
		{"no bootstrap", func(c *Cluster) { c.Spec.Bootstrap = nil }, []string{"spec.bootstrap.initdb|Required"}},
		{"bad database and owner", func(c *Cluster) {
			c.Spec.Bootstrap.InitDB.Database = "App"
			c.Spec.Bootstrap.InitDB.Owner = "x;drop"
		}, []string{"spec.bootstrap.initdb.database|identifier", "spec.bootstrap.initdb.owner|identifier"}},
		{"empty database", func(c *Cluster) { c.Spec.Bootstrap.InitDB.Database = "" },
			[]string{"spec.bootstrap.initdb.database|Required"}},
		{"long identifier", func(c *Cluster) { c.Spec.Bootstrap.InitDB.Owner = strings.Repeat("o", 64) },
			[]string{"spec.bootstrap.initdb.owner|identifier"}},
		{"reserved database", func(c *Cluster) { c.Spec.Bootstrap.InitDB.Database = "template1" },
			[]string{"spec.bootstrap.initdb.database|reserved"}},
		{"connection slots PostgreSQL refuses", func(c *Cluster) {
			c.Spec.PostgresConfiguration.Parameters = map[string]string{"max_connections": "5", "superuser_reserved_connections": "5"}
		}, []string{"spec.postgresql.parameters[max_connections]|must be greater than superuser_reserved_connections (5)"}},
		{"process slots and stats PostgreSQL refuses together", func(c *Cluster) {
			c.Spec.PostgresConfiguration.Parameters = map[string]string{"max_connections": "262000", "max_wal_senders": "200",
				"log_statement_stats": "on", "log_parser_stats": "on"}
		}, []string{
			"spec.postgresql.parameters[log_statement_stats]|cannot be on while",
			"spec.postgresql.parameters[max_connections]|above PostgreSQL's limit of 262143",
			"spec.postgresql.parameters[max_wal_senders]|above PostgreSQL's limit",
		}},
		{"no room for pgward's sessions", func(c *Cluster) {
			c.Spec.PostgresConfiguration.Parameters = map[string]string{"superuser_reserved_connections": "1"}
		}, []string{"spec.postgresql.parameters[superuser_reserved_connections]|must be at least 3"}},
		{"unknown and bad parameters", func(c *Cluster) {
			c.Spec.PostgresConfiguration.Parameters = map[string]string{"work_mem": "4XB", "shared_bufers": "1GB", "pg_stat_statements.max": "x"}
		}, []string{
			"spec.postgresql.parameters[shared_bufers]|did you mean \"shared_buffers\"", "spec.postgresql.parameters[work_mem]|invalid unit",
			"spec.postgresql.parameters[pg_stat_statements.max]|which is not loaded",
		}},
		{"preloaded libraries", func(c *Cluster) {
			c.Spec.PostgresConfiguration.SharedPreloadLibraries = []string{"pg_stat_statements", "auto_explain"}
			c.Spec.PostgresConfiguration.Parameters = map[string]string{"pg_stat_statements.track": "all", "auto_explain.log_min_duration": "0"}
		}, nil},
		{"libraries pgward does not preload", func(c *Cluster) {
			c.Spec.PostgresConfiguration.SharedPreloadLibraries = []string{"pg_stat_statements", "/tmp/evil", "pg_stat_statements"}
		}, []string{"spec.postgresql.shared_preload_libraries[1]|Unsupported value", "spec.postgresql.shared_preload_libraries[2]|Duplicate value"}},
		{"operator annotations", func(c *Cluster) {
			c.Annotations = map[string]string{"cnpg.io/hibernation": "on", "cnpg.io/fencedInstances": `["*"]`, "cnpg.io/reconciliationLoop": "disabled",
				"pgward.io/anything": "x", "kubectl.kubernetes.io/last-applied-configuration": "{}", "team": "db",
				"pgward.io/rotate-ca": "2026-11-30", "x.pgward.io/rotate-ca": "1", "pgward.io/rotate-ca-now": "1"}
		}, []string{
			"metadata.annotations[cnpg.io/reconciliationLoop]|CloudNativePG annotation that pgward does not implement",
			"metadata.annotations[pgward.io/anything]|pgward reads no annotation but pgward.io/rotate-ca",
			"metadata.annotations[pgward.io/rotate-ca-now]|pgward reads no annotation",
			"metadata.annotations[x.pgward.io/rotate-ca]|pgward reads no annotation",
		}},
		{"fencing and hibernation", func(c *Cluster) {
			c.Annotations = map[string]string{"cnpg.io/fencedInstances": `["pg-1","*"]`, "cnpg.io/hibernation": "off", "pgward.io/restart": "*"}
		}, nil},
		{"restart of one instance", func(c *Cluster) { c.Annotations = map[string]string{"pgward.io/restart": "pg-2"} }, nil},
		{"restart of no instance", func(c *Cluster) { c.Annotations = map[string]string{"pgward.io/restart": "pg-2; x"} },
			[]string{"metadata.annotations[pgward.io/restart]|or an instance of cluster pg is expected"}},
		{"reload request", func(c *Cluster) {
			c.Annotations = map[string]string{"pgward.io/reloadedAt": "2026-12-06T18:00:00.123456789Z"}
		}, nil},
		{"reload request with a newline", func(c *Cluster) { c.Annotations = map[string]string{"pgward.io/reloadedAt": "now\nlevel=ERROR"} },
			[]string{"metadata.annotations[pgward.io/reloadedAt]|printable ASCII without spaces"}},
		{"reload request empty or long", func(c *Cluster) {
			c.Annotations = map[string]string{"pgward.io/reloadedAt": strings.Repeat("1", 65)}
		}, []string{"metadata.annotations[pgward.io/reloadedAt]|1 to 64 characters"}},
		{"fencing and hibernation values", func(c *Cluster) {
			c.Annotations = map[string]string{"cnpg.io/fencedInstances": `["pg-4","other-1","pg-01"]`, "cnpg.io/hibernation": "yes"}
		}, []string{
			"metadata.annotations[cnpg.io/fencedInstances]|\"pg-4\" is not an instance of cluster pg",
			"metadata.annotations[cnpg.io/hibernation]|on or off is expected",
		}},
		{"fencing list not JSON", func(c *Cluster) {
			c.Annotations = map[string]string{"cnpg.io/fencedInstances": `pg-1; rm -rf /`}
		}, []string{"metadata.annotations[cnpg.io/fencedInstances]|a JSON list of instance names"}},
		{"catch-all networks", func(c *Cluster) {
			c.Spec.PostgresConfiguration.CatchAllNetworks = []string{"10.0.0.0/8", "10.1.2.3/8", "samenet", "fd00::/8"}
		}, []string{"spec.postgresql.catchAllNetworks[1]|host bits set: the network is 10.0.0.0/8",
			"spec.postgresql.catchAllNetworks[2]|must be a CIDR"}},
		{"too many catch-all networks", func(c *Cluster) {
			for i := range MaxCatchAllNetworks + 1 {
				c.Spec.PostgresConfiguration.CatchAllNetworks = append(c.Spec.PostgresConfiguration.CatchAllNetworks, fmt.Sprintf("10.%d.0.0/16", i))
			}
		}, []string{"spec.postgresql.catchAllNetworks|Too many"}},
		{"a way in for postgres without superuser access", func(c *Cluster) {
			c.Spec.PostgresConfiguration.PgHBA = []string{
				"hostssl all postgres all cert", "hostssl app app,Postgres 10.0.0.0/8 scram-sha-256",
				"host all postgres all reject", "hostssl all +postgres all cert",
			}
		}, []string{"spec.postgresql.pg_hba[0]|enableSuperuserAccess: true", "spec.postgresql.pg_hba[1]|enableSuperuserAccess: true"}},
		{"a way in for postgres with superuser access", func(c *Cluster) {
			c.Spec.EnableSuperuserAccess = new(true)
			c.Spec.PostgresConfiguration.PgHBA = []string{"hostssl all postgres 10.0.0.0/8 cert"}
		}, nil},
		{"owner public", func(c *Cluster) { c.Spec.Bootstrap.InitDB.Owner = "public" },
			[]string{"spec.bootstrap.initdb.owner|reserved role"}},
		{"encoding initdb refuses", func(c *Cluster) { c.Spec.Bootstrap.InitDB.Encoding = "BOGUS" },
			[]string{"spec.bootstrap.initdb.encoding|not a valid server encoding"}},
		{"encoding and locale mismatch", func(c *Cluster) {
			c.Spec.Bootstrap.InitDB.Encoding = "latin1"
			c.Spec.Bootstrap.InitDB.LocaleCollate = "C.UTF-8"
			c.Spec.Bootstrap.InitDB.LocaleCType = "de_DE.ISO-8859-1"
		}, []string{"spec.bootstrap.initdb.localeCollate|uses encoding UTF8, which does not match the database encoding LATIN1"}},
		{"encodings that match", func(c *Cluster) {
			c.Spec.Bootstrap.InitDB.Encoding = "Unicode"
			c.Spec.Bootstrap.InitDB.LocaleCollate = "C"
			c.Spec.Bootstrap.InitDB.LocaleCType = "en_US.utf8"
		}, nil},
		{"owner postgres", func(c *Cluster) { c.Spec.Bootstrap.InitDB.Owner = "postgres" },
			[]string{"spec.bootstrap.initdb.owner|reserved role"}},
		{"owner streaming_replica", func(c *Cluster) { c.Spec.Bootstrap.InitDB.Owner = "streaming_replica" },
			[]string{"spec.bootstrap.initdb.owner|reserved role"}},
		{"owner pg_ role", func(c *Cluster) { c.Spec.Bootstrap.InitDB.Owner = "pg_monitor" },
			[]string{"spec.bootstrap.initdb.owner|reserved role"}},
		{"bad secret names", func(c *Cluster) {
			c.Spec.Bootstrap.InitDB.Secret = &LocalObjectReference{Name: "Bad_Name"}
			c.Spec.SuperuserSecret = &LocalObjectReference{}
		}, []string{"spec.bootstrap.initdb.secret.name|RFC 1123", "spec.superuserSecret.name|Required"}},
		{"bad locales", func(c *Cluster) {
			c.Spec.Bootstrap.InitDB.Encoding = "UTF8; rm"
			c.Spec.Bootstrap.InitDB.LocaleCollate = "en_US.UTF-8"
			c.Spec.Bootstrap.InitDB.LocaleCType = "C'"
		}, []string{"spec.bootstrap.initdb.encoding", "spec.bootstrap.initdb.localeCType"}},
		{"NUL in SQL", func(c *Cluster) {
			c.Spec.Bootstrap.InitDB.PostInitSQL = []string{"SELECT 1", "SELECT\x002"}
			c.Spec.Bootstrap.InitDB.PostInitApplicationSQL = []string{"\x00"}
		}, []string{
			"spec.bootstrap.initdb.postInitSQL[1]|NUL byte at byte 6",
			"spec.bootstrap.initdb.postInitApplicationSQL[0]|NUL",
		}},
		{"TLS secrets without CAs", func(c *Cluster) {
			c.Spec.Certificates = &CertificatesConfiguration{ServerTLSSecret: "tls", ReplicationTLSSecret: "repl"}
		}, []string{"spec.certificates.serverCASecret|Required", "spec.certificates.clientCASecret|Required"}},
		{"alt names with serverTLSSecret", func(c *Cluster) {
			c.Spec.Certificates = &CertificatesConfiguration{
				ServerCASecret: "ca", ServerTLSSecret: "tls", ServerAltDNSNames: []string{"db.example.com"},
			}
		}, []string{"spec.certificates.serverAltDNSNames|Forbidden"}},
		{"alt names", func(c *Cluster) {
			c.Spec.Certificates = &CertificatesConfiguration{
				ServerAltDNSNames: []string{"db.example.com", "*.example.com", "bad_name", "db.example.com", "a.*.com"},
			}
		}, []string{
			"spec.certificates.serverAltDNSNames[2]",
			"spec.certificates.serverAltDNSNames[3]|Duplicate",
			"spec.certificates.serverAltDNSNames[4]",
		}},
		{"bad certificate secret name", func(c *Cluster) {
			c.Spec.Certificates = &CertificatesConfiguration{ClientCASecret: "-x"}
		}, []string{"spec.certificates.clientCASecret"}},
		{"min above max sync replicas", func(c *Cluster) { c.Spec.MinSyncReplicas = 1 },
			[]string{"spec.minSyncReplicas|maxSyncReplicas (0)"}},
		{"max sync replicas not below instances", func(c *Cluster) { c.Spec.MaxSyncReplicas = 3 },
			[]string{"spec.maxSyncReplicas|less than instances (3)"}},
		{"negative sync replicas", func(c *Cluster) { c.Spec.MinSyncReplicas, c.Spec.MaxSyncReplicas = -1, -1 },
			[]string{"spec.minSyncReplicas|negative", "spec.maxSyncReplicas|negative"}},
		{"bad storage size", func(c *Cluster) { c.Spec.StorageConfiguration.Size = "1 GB" },
			[]string{"spec.storage.size|quantity"}},
		{"zero storage size", func(c *Cluster) { c.Spec.StorageConfiguration.Size = "0Gi" },
			[]string{"spec.storage.size|greater than zero"}},
		{"negative storage size", func(c *Cluster) { c.Spec.StorageConfiguration.Size = "-1Gi" },
			[]string{"spec.storage.size|greater than zero"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validCluster()
			tt.mutate(c)
			checkErrors(t, c.Validate(), tt.want)
		})
	}
}

func TestValidateOmitsSecrets(t *testing.T) {
	for name, mutate := range map[string]func(c *Cluster){
		"pg_hba line": func(c *Cluster) {
			c.Spec.PostgresConfiguration.PgHBA = []string{"hostssl all all all ldap ldapbindpasswd=hunter2 oops"}
		},
		"pg_ident line":     func(c *Cluster) { c.Spec.PostgresConfiguration.PgIdent = []string{"m hunter2 app extra"} },
		"pg_ident regexp":   func(c *Cluster) { c.Spec.PostgresConfiguration.PgIdent = []string{`m "/hunter2(" app`} },
		"numeric parameter": func(c *Cluster) { c.Spec.PostgresConfiguration.Parameters = map[string]string{"work_mem": "hunter2"} },
		"boolean parameter": func(c *Cluster) { c.Spec.PostgresConfiguration.Parameters = map[string]string{"fsync": "hunter2"} },
		"enum parameter":    func(c *Cluster) { c.Spec.PostgresConfiguration.Parameters = map[string]string{"wal_level": "hunter2"} },
		"unit":              func(c *Cluster) { c.Spec.PostgresConfiguration.Parameters = map[string]string{"work_mem": "1hunter2"} },
		"value with newline": func(c *Cluster) {
			c.Spec.PostgresConfiguration.Parameters = map[string]string{"application_name": "hunter2\n"}
		},
		"extension parameter": func(c *Cluster) { c.Spec.PostgresConfiguration.Parameters = map[string]string{"x.y": "hunter2\n"} },
	} {
		c := validCluster()
		mutate(c)
		errs := c.Validate()
		if len(errs) == 0 {
			t.Errorf("%s: accepted, the check below proves nothing", name)
			continue
		}
		if msg := errs.ToAggregate().Error(); strings.Contains(msg, "hunter2") {
			t.Errorf("%s: the error echoes the value: %s", name, msg)
		}
	}
}

func TestIsPostgresFalse(t *testing.T) {
	for v, want := range map[string]bool{
		"off": true, "OFF": true, "of": true, "false": true, "f": true, "no": true, "n": true, "0": true,
		" off ": true, "on": false, "o": false, "true": false, "1": false, "": false, "yes": false, "offf": false,
	} {
		if got := isPostgresFalse(v); got != want {
			t.Errorf("isPostgresFalse(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestValidateUpdate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(old, updated *Cluster)
		want   []string
	}{
		{"no change", func(_, _ *Cluster) {}, nil},
		{"scale and grow storage", func(old, updated *Cluster) {
			old.Spec.StorageConfiguration.Size = "1Gi"
			updated.Spec.StorageConfiguration.Size = "1500Mi"
			updated.Spec.Instances = 5
		}, nil},
		{"same size, other unit", func(old, updated *Cluster) {
			old.Spec.StorageConfiguration.Size = "1Gi"
			updated.Spec.StorageConfiguration.Size = "1024Mi"
		}, nil},
		{"defaulted fields left out are no change", func(_, updated *Cluster) {
			updated.Spec.Bootstrap = nil
			updated.Spec.EnableSuperuserAccess = nil
		}, []string{"spec.bootstrap.initdb|Required"}}, // the new object itself is not defaulted
		{"shrink storage", func(old, updated *Cluster) {
			old.Spec.StorageConfiguration.Size = "2Gi"
			updated.Spec.StorageConfiguration.Size = "1Gi"
		}, []string{"spec.storage.size|cannot shrink from 2Gi to 1Gi"}},
		{"remove storage size", func(old, updated *Cluster) {
			old.Spec.StorageConfiguration.Size = "2Gi"
			updated.Spec.StorageConfiguration.Size = ""
		}, []string{"spec.storage.size|cannot be removed"}},
		{"change bootstrap", func(_, updated *Cluster) {
			updated.Spec.Bootstrap.InitDB.Database = "other"
			updated.Spec.Bootstrap.InitDB.Owner = "other"
		}, []string{"spec.bootstrap|immutable"}},
		{"rename", func(_, updated *Cluster) {
			updated.Name = "pg2"
			updated.Namespace = "other"
		}, []string{"metadata.name|immutable", "metadata.namespace|immutable"}},
		{"new object invalid too", func(old, updated *Cluster) {
			old.Spec.StorageConfiguration.Size = "2Gi"
			updated.Spec.StorageConfiguration.Size = "1Gi"
			updated.Spec.Instances = 0
		}, []string{"spec.instances", "spec.storage.size|shrink"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old, updated := validCluster(), validCluster()
			tt.mutate(old, updated)
			checkErrors(t, ValidateUpdate(old, updated), tt.want)
		})
	}
}

func TestValidateUpdateComparesDefaulted(t *testing.T) {
	old := &Cluster{}
	old.Name = "pg"
	updated := old.DeepCopy()
	SetDefaults(old)
	SetDefaults(updated)
	updated.Spec.Bootstrap.InitDB.PostInitSQL = []string{} // empty and nil are the same
	checkErrors(t, ValidateUpdate(old, updated), nil)
	// A stored, defaulted object and a manifest that leaves defaults out.
	bare := &Cluster{}
	bare.Name = "pg"
	errs := ValidateUpdate(old, bare)
	for _, e := range errs {
		if e.Field == "spec.bootstrap" {
			t.Fatalf("leaving out a defaulted bootstrap counts as a change: %v", errs)
		}
	}
}

// Secret references may not name the secrets pgward generates for the
// cluster, nor one secret for two different things.
func TestValidateSecretReferences(t *testing.T) {
	base := func() *Cluster {
		c := &Cluster{}
		c.APIVersion, c.Kind = APIVersion, Kind
		c.Name = "c"
		c.Spec.Instances = 2
		SetDefaults(c)
		return c
	}
	for _, tc := range []struct {
		name    string
		edit    func(c *Cluster)
		wantErr string
	}{
		{"initdb secret is the CA", func(c *Cluster) { c.Spec.Bootstrap.InitDB.Secret = &LocalObjectReference{Name: "c-ca"} },
			"spec.bootstrap.initdb.secret.name: Invalid value: \"c-ca\": is the name of a secret pgward generates"},
		{"superuser secret is the replication certificate", func(c *Cluster) { c.Spec.SuperuserSecret = &LocalObjectReference{Name: "c-replication"} },
			"spec.superuserSecret.name"},
		{"client CA is the controller's certificate", func(c *Cluster) {
			c.Spec.Certificates = &CertificatesConfiguration{ClientCASecret: "c-controller", ReplicationTLSSecret: "r"}
		}, "spec.certificates.clientCASecret"},
		{"server TLS secret is an instance's config", func(c *Cluster) {
			c.Spec.Certificates = &CertificatesConfiguration{ServerCASecret: "ca", ServerTLSSecret: "c-12-config"} // #nosec G101 -- secret names
		}, "spec.certificates.serverTLSSecret"},
		{"superuser secret is the metrics certificate", func(c *Cluster) { c.Spec.SuperuserSecret = &LocalObjectReference{Name: "c-metrics"} },
			"spec.superuserSecret.name"},
		{"app secret is the generated app secret", func(c *Cluster) { c.Spec.Bootstrap.InitDB.Secret = &LocalObjectReference{Name: "c-app"} },
			"spec.bootstrap.initdb.secret.name"},
		{"the operator's webhook secret", func(c *Cluster) { c.Spec.SuperuserSecret = &LocalObjectReference{Name: "pgward-webhook-cert"} },
			"is the operator's own secret"},
		{"app and superuser credentials in one secret", func(c *Cluster) {
			c.Spec.Bootstrap.InitDB.Secret = &LocalObjectReference{Name: "creds"}
			c.Spec.SuperuserSecret = &LocalObjectReference{Name: "creds"}
		}, "spec.superuserSecret.name: Invalid value: \"creds\": is also spec.bootstrap.initdb.secret.name"},
		{"credentials in the server CA", func(c *Cluster) {
			c.Spec.Certificates = &CertificatesConfiguration{ServerCASecret: "tls", ServerTLSSecret: "tls"}
			c.Spec.SuperuserSecret = &LocalObjectReference{Name: "tls"}
		}, "one secret cannot hold both"},
		{"replication certificate in the server certificate", func(c *Cluster) {
			c.Spec.Certificates = &CertificatesConfiguration{ServerCASecret: "ca", ServerTLSSecret: "tls", ClientCASecret: "cca", ReplicationTLSSecret: "tls"}
		}, "spec.certificates.replicationTLSSecret"},
		// Allowed: a certificate with its CA in one secret, one CA for all.
		{"cert-manager style secrets", func(c *Cluster) {
			c.Spec.Certificates = &CertificatesConfiguration{ServerCASecret: "srv", ServerTLSSecret: "srv", ClientCASecret: "repl", ReplicationTLSSecret: "repl"}
		}, ""},
		{"one CA for server and clients", func(c *Cluster) {
			c.Spec.Certificates = &CertificatesConfiguration{ServerCASecret: "ca", ServerTLSSecret: "srv", ClientCASecret: "ca", ReplicationTLSSecret: "repl"}
		}, ""},
		{"another cluster's app secret name is just a name here", func(c *Cluster) { c.Spec.Bootstrap.InitDB.Secret = &LocalObjectReference{Name: "d-app"} }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.edit(c)
			errs := c.Validate().ToAggregate()
			switch {
			case tc.wantErr == "" && errs != nil:
				t.Fatalf("refused: %v", errs)
			case tc.wantErr != "" && (errs == nil || !strings.Contains(errs.Error(), tc.wantErr)):
				t.Fatalf("got %v, want %q", errs, tc.wantErr)
			}
		})
	}
}

// Values that break a promise pgward makes are refused, naming the field;
// the safe values of the same parameters are accepted.
func TestValidateWeakeningParameters(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		sync        bool
		wantErr     string
	}{
		{"fsync", "off", false, "loses committed data"},
		{"fsync", "on", false, ""},
		{"full_page_writes", "false", false, "torn pages"},
		{"ignore_checksum_failure", "on", false, "corrupted pages"},
		{"ignore_checksum_failure", "off", false, ""},
		{"synchronous_commit", "off", true, "a failover would lose them"},
		{"synchronous_commit", "local", true, "a failover would lose them"},
		{"synchronous_commit", "remote_write", true, ""},
		{"synchronous_commit", "off", false, ""}, // asynchronous: the user's choice
		{"data_sync_retry", "on", false, "managed by pgward"},
		{"ssl_ciphers", "ALL", false, "managed by pgward"},
		{"plperl.on_init", "system('x')", false, "managed by pgward"},
	} {
		t.Run(tc.name+"="+tc.value, func(t *testing.T) {
			c := &Cluster{}
			c.APIVersion, c.Kind = APIVersion, Kind
			c.Name = "c"
			c.Spec.Instances = 3
			if tc.sync {
				c.Spec.MinSyncReplicas, c.Spec.MaxSyncReplicas = 1, 1
			}
			c.Spec.PostgresConfiguration.Parameters = map[string]string{tc.name: tc.value}
			SetDefaults(c)
			errs := c.Validate().ToAggregate()
			switch {
			case tc.wantErr == "" && errs != nil:
				t.Fatalf("refused: %v", errs)
			case tc.wantErr != "" && (errs == nil || !strings.Contains(errs.Error(), tc.wantErr) ||
				!strings.Contains(errs.Error(), "spec.postgresql.parameters["+tc.name+"]")):
				t.Fatalf("got %v, want %q naming the field", errs, tc.wantErr)
			}
		})
	}
}

// Every count a manifest sets is bounded, with an error naming the field;
// an explicit instances: 0 is refused rather than turned into 1; a wildcard
// certificate name cannot cover a public suffix.
func TestValidateBounds(t *testing.T) {
	head := "apiVersion: postgresql.pgward.io/v1\nkind: Cluster\nmetadata:\n  name: c\nspec:\n"
	if _, err := LoadAndValidate([]byte(head + "  instances: 0\n")); err == nil || !strings.Contains(err.Error(), "spec.instances: must be at least 1") {
		t.Errorf("instances 0: %v", err)
	}
	if c, err := LoadAndValidate([]byte(head + "  storage:\n    size: 1Gi\n")); err != nil || c.Spec.Instances != 1 {
		t.Errorf("instances left out: %v, %d", err, c.Spec.Instances)
	}
	many := func(n int, line string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = line
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		edit    func(c *Cluster)
		wantErr string
	}{
		{"instances", func(c *Cluster) { c.Spec.Instances = 100000 }, "spec.instances: Invalid value: 100000: must be at most 32"},
		{"pg_hba", func(c *Cluster) { c.Spec.PostgresConfiguration.PgHBA = many(1001, "host all all all scram-sha-256") }, "spec.postgresql.pg_hba: Too many: 1001"},
		{"pg_ident", func(c *Cluster) { c.Spec.PostgresConfiguration.PgIdent = many(1001, "m alice app") }, "spec.postgresql.pg_ident: Too many"},
		{"parameters", func(c *Cluster) {
			c.Spec.PostgresConfiguration.Parameters = map[string]string{}
			for i := range 1001 {
				c.Spec.PostgresConfiguration.Parameters[fmt.Sprintf("x.p%d", i)] = "1"
			}
		}, "spec.postgresql.parameters: Too many"},
		{"SANs", func(c *Cluster) {
			c.Spec.Certificates = &CertificatesConfiguration{ServerAltDNSNames: many(101, "db.example.com")}
		}, "spec.certificates.serverAltDNSNames: Too many"},
		{"wildcard over a TLD", func(c *Cluster) {
			c.Spec.Certificates = &CertificatesConfiguration{ServerAltDNSNames: []string{"*.com"}}
		}, "covers other people's hosts"},
		{"wildcard over a two-label public suffix", func(c *Cluster) {
			c.Spec.Certificates = &CertificatesConfiguration{ServerAltDNSNames: []string{"*.co.uk"}}
		}, "covers other people's hosts"},
		{"a wildcard of one's own", func(c *Cluster) {
			c.Spec.Certificates = &CertificatesConfiguration{ServerAltDNSNames: []string{"*.db.example.co.uk"}}
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Cluster{}
			c.APIVersion, c.Kind = APIVersion, Kind
			c.Name = "c"
			SetDefaults(c)
			tc.edit(c)
			errs := c.Validate().ToAggregate()
			switch {
			case tc.wantErr == "" && errs != nil:
				t.Fatalf("refused: %v", errs)
			case tc.wantErr != "" && (errs == nil || !strings.Contains(errs.Error(), tc.wantErr)):
				t.Fatalf("got %v, want %q", errs, tc.wantErr)
			}
		})
	}
}
